//! The `aws kms` operations kmscks accepts by name but refuses, one table of them.

use super::*;

macro_rules! refused_operations {
    ($($name:ident,)*) => {
        /// An `aws kms` operation kmscks accepts by name but refuses (`kms::unsupported` says
        /// with which exception).
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, bincode::Encode,
            bincode::Decode,
        )]
        #[allow(missing_docs)] // AWS operation names
        pub enum Refused {
            $($name,)*
        }

        impl Refused {
            /// Every refused operation, in table order (the CLI has one verb for each).
            pub const ALL: &'static [Refused] = &[$(Refused::$name),*];

            /// The AWS operation name, e.g. `ReplicateKey`.
            pub const fn name(self) -> &'static str {
                match self { $(Refused::$name => stringify!($name),)* }
            }

            /// The policy action AWS checks before refusing, e.g. `kms:ReplicateKey`.
            pub const fn action(self) -> PolicyAction {
                match self {
                    $(Refused::$name => PolicyAction::from_table(concat!("kms:", stringify!($name))),)*
                }
            }
        }
    };
}

// The operations kmscks refuses: the one list of them (the CLI's verbs derive from it).
refused_operations! {
    ReplicateKey,
    UpdatePrimaryRegion,
}

/// A refused operation on a key (the multi-Region ones: every kmscks key is single-Region).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct RefusedRequest {
    /// Which operation.
    pub operation: Refused,
    /// The key.
    pub key_id: String,
}
