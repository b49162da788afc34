//! [`PolicyAction`]: the name of an IAM policy action (`kms:Encrypt`, `cloudhsm:CreateHsm`), the
//! vocabulary key policies and access checks share; [`PolicyVerdict`]: what a key policy
//! answers, which the control plane and the engine weigh against grants the same way.
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

/// A key policy's answer to one request, as AWS evaluates policies: an explicit `Deny` that
/// applies overrides every `Allow` and every grant; without one, an `Allow` lets the request
/// through, and otherwise a grant may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyVerdict {
    /// A statement allows it and none denies it.
    Allow,
    /// No statement allows it, and none denies it: a grant may still allow it.
    ImplicitDeny,
    /// A statement denies it: nothing else may allow it.
    ExplicitDeny,
}

impl fmt::Display for PolicyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
