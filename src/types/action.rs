//! [`PolicyAction`]: the name of an IAM policy action (`kms:Encrypt`, `cloudhsm:CreateHsm`), the
//! vocabulary key policies and access checks share.
//!
//! The names themselves are not written here: the operation table (`crate::ops`) and the table
//! of refused operations (`crate::api::kms::Refused`) derive each one from the operation's name
//! at compile time, so a call site names an operation, never an action string.

use std::fmt;

/// An IAM policy action, `service:Name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyAction(&'static str);

impl PolicyAction {
    /// For the tables that derive actions (`concat!("kms:", stringify!(Name))`).
    pub(crate) const fn from_table(name: &'static str) -> PolicyAction {
        PolicyAction(name)
    }

    /// The action's name, e.g. `kms:Encrypt`.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for PolicyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
