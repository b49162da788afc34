//! The one error type of kmscks.
//!
//! Every failure a caller can see is a [`KmsError`]: an [`ErrorKind`] named exactly as the AWS
//! exception it stands for, plus a message in AWS's wording. The table in `kms_errors!` is the
//! single source of truth for the AWS name, the HTTP status an AWS JSON endpoint would answer
//! with, and the stable numeric code used by the socket protocol and the C API. Numbers are
//! never reused; a retired kind keeps its number as a comment.

use std::fmt;

macro_rules! kms_errors {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $status:literal; )*) => {
        /// The AWS exception a [`KmsError`] stands for. Variant names are the AWS names.
        #[allow(clippy::enum_variant_names)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $( $(#[$doc])* $variant = $code, )*
        }

        impl ErrorKind {
            /// Every kind, in table order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant),*];

            /// The AWS exception name, e.g. `CustomKeyStoreNotFoundException`.
            pub const fn aws_name(self) -> &'static str {
                match self { $(ErrorKind::$variant => stringify!($variant),)* }
            }

            /// The HTTP status AWS answers this exception with.
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorKind::$variant => $status,)* }
            }

            /// The stable numeric code (socket protocol, C API).
            pub const fn code(self) -> u32 {
                self as u32
            }

            /// The kind with this stable numeric code.
            pub fn from_code(code: u32) -> Option<ErrorKind> {
                match code { $($code => Some(ErrorKind::$variant),)* _ => None }
            }

            /// The kind with this AWS exception name.
            pub fn from_aws_name(name: &str) -> Option<ErrorKind> {
                match name { $(stringify!($variant) => Some(ErrorKind::$variant),)* _ => None }
            }
        }
    };
}

include!("error/kinds.rs");

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.aws_name())
    }
}

/// A failed kmscks operation: the AWS exception and its message.
#[derive(Clone, PartialEq, Eq)]
pub struct KmsError {
    kind: ErrorKind,
    message: String,
    /// Raised by this process's side of a socket to the daemon (see [`KmsError::transport`]).
    transport: bool,
}

impl KmsError {
    /// An error of `kind` with `message` (AWS wording where AWS has one).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> KmsError {
        KmsError {
            kind,
            message: message.into(),
            transport: false,
        }
    }

    /// An error of `kind` raised by the client side of the daemon's socket (nothing listens,
    /// the connection broke mid-call): the kind is still the AWS exception the call reports,
    /// and [`KmsError::is_transport`] tells an interface that wants to say "I/O" (the C
    /// API's `KMSCKS_IO`) apart from the same kind answered by the service.
    pub fn transport(kind: ErrorKind, message: impl Into<String>) -> KmsError {
        KmsError {
            transport: true,
            ..KmsError::new(kind, message)
        }
    }

    /// Whether the socket to the daemon failed (see [`KmsError::transport`]); never true for an
    /// error the service itself answered.
    pub fn is_transport(&self) -> bool {
        self.transport
    }

    /// Which AWS exception this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The AWS exception name, e.g. `NotFoundException`.
    pub fn aws_name(&self) -> &'static str {
        self.kind.aws_name()
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// AWS's `ValidationException` wording for one failed member constraint (a [`Constraint`],
    /// or AWS's text for one, e.g. a pattern).
    pub fn validation(
        value: impl fmt::Display,
        member: &str,
        constraint: impl fmt::Display,
    ) -> KmsError {
        KmsError::violation(format_args!("Value '{value}' at '{member}'"), constraint)
    }

    /// AWS's `ValidationException` wording for one failed constraint of `what` (`Value '…' at
    /// '…'`, or as much of it as may be told).
    fn violation(what: fmt::Arguments<'_>, constraint: impl fmt::Display) -> KmsError {
        KmsError::new(
            ErrorKind::ValidationException,
            format!(
                "1 validation error detected: {what} failed to satisfy constraint: {constraint}"
            ),
        )
    }
}

/// A member constraint in AWS's wording, as [`KmsError::validation`] states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// `Member must have value greater than or equal to <min>`.
    MinValue(u64),
    /// `Member must have value less than or equal to <max>`.
    MaxValue(u64),
    /// `Member must have length greater than or equal to <min>`.
    MinLength(usize),
    /// `Member must have length less than or equal to <max>`.
    MaxLength(usize),
    /// `Member must have length between <min> and <max>`.
    LengthBetween(usize, usize),
    /// `Member must satisfy regular expression pattern: <pattern>`.
    Pattern(&'static str),
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::MinValue(n) => {
                write!(f, "Member must have value greater than or equal to {n}")
            }
            Constraint::MaxValue(n) => {
                write!(f, "Member must have value less than or equal to {n}")
            }
            Constraint::MinLength(n) => {
                write!(f, "Member must have length greater than or equal to {n}")
            }
            Constraint::MaxLength(n) => {
                write!(f, "Member must have length less than or equal to {n}")
            }
            Constraint::LengthBetween(min, max) => {
                write!(f, "Member must have length between {min} and {max}")
            }
            Constraint::Pattern(p) => {
                write!(f, "Member must satisfy regular expression pattern: {p}")
            }
        }
    }
}

/// AWS's wording for the errors that several layers raise (the engine's shards, the control
/// plane, the data-plane gate), so that each message has one home beside the table.
/// `value` of the integer member `member` if it lies within `(min, max)` (inclusive), else
/// AWS's `ValidationException` naming the bound it crosses.
#[inline]
pub fn check_value(member: &str, value: u32, (min, max): (u32, u32)) -> Result<u32> {
    let constraint = if value < min {
        Constraint::MinValue(min.into())
    } else if value > max {
        Constraint::MaxValue(max.into())
    } else {
        return Ok(value);
    };
    Err(KmsError::validation(value, member, constraint))
}

impl KmsError {
    /// `ValidationException` for a member whose value is not echoed (a plaintext, a
    /// ciphertext): AWS's wording without the value.
    pub fn validation_of_secret(member: &str, constraint: Constraint) -> KmsError {
        KmsError::violation(format_args!("Value at '{member}'"), constraint)
    }

    /// `ValidationException` for a value whose member cannot be told (two members of a
    /// request hold it): AWS's wording without the member.
    pub fn validation_of_value(
        value: impl fmt::Display,
        constraint: impl fmt::Display,
    ) -> KmsError {
        KmsError::violation(format_args!("Value '{value}'"), constraint)
    }

    /// `NotFoundException`: no key with this key ARN.
    pub fn key_not_found(key_arn: impl fmt::Display) -> KmsError {
        KmsError::new(
            ErrorKind::NotFoundException,
            format!("Key '{key_arn}' does not exist"),
        )
    }

    /// `NotFoundException`: no alias with this alias ARN.
    pub fn alias_not_found(alias_arn: impl fmt::Display) -> KmsError {
        KmsError::new(
            ErrorKind::NotFoundException,
            format!("Alias {alias_arn} is not found."),
        )
    }

    /// `AccessDeniedException`: the key policy does not allow `principal` the `action`
    /// (`kms:Encrypt`, …) on the key `key_arn`.
    pub fn not_authorized(
        principal: impl fmt::Display,
        action: impl fmt::Display,
        key_arn: impl fmt::Display,
    ) -> KmsError {
        KmsError::policy_refusal(false, principal, action, key_arn)
    }

    /// `AccessDeniedException` for a request the key policy does not allow, in AWS's wording:
    /// `explicit`, a statement denies it (no grant can then allow it); otherwise no statement
    /// allows it.
    pub fn policy_refusal(
        explicit: bool,
        principal: impl fmt::Display,
        action: impl fmt::Display,
        key_arn: impl fmt::Display,
    ) -> KmsError {
        let why = if explicit {
            "with an explicit deny in a resource-based policy".to_owned()
        } else {
            format!("because no resource-based policy allows the {action} action")
        };
        KmsError::new(
            ErrorKind::AccessDeniedException,
            format!(
                "User: {principal} is not authorized to perform: {action} on resource: \
                 {key_arn} {why}"
            ),
        )
    }

    /// `KMSInvalidStateException`: the key is pending deletion.
    pub fn pending_deletion(key_arn: impl fmt::Display) -> KmsError {
        KmsError::new(
            ErrorKind::KMSInvalidStateException,
            format!("{key_arn} is pending deletion."),
        )
    }

    /// `DisabledException`: the key is disabled.
    pub fn disabled(key_arn: impl fmt::Display) -> KmsError {
        KmsError::new(
            ErrorKind::DisabledException,
            format!("{key_arn} is disabled."),
        )
    }

    /// `DryRunOperationException`: what a `DryRun` request answers when every check passed.
    pub fn dry_run_succeeded() -> KmsError {
        KmsError::new(
            ErrorKind::DryRunOperationException,
            "The request would have succeeded, but the DryRun option is set.",
        )
    }

    /// AWS's `ValidationException` for a required member the request lacks (`member` in
    /// AWS's camelCase, e.g. `wrappingAlgorithm`): "Value null at … Member must not be null".
    pub fn not_null(member: &str) -> KmsError {
        KmsError::validation("null", member, "Member must not be null")
    }

    /// `ValidationException`: the request lacks `member` (`KeyId`, …).
    pub fn required(member: &str) -> KmsError {
        KmsError::new(
            ErrorKind::ValidationException,
            format!("{member} is required"),
        )
    }

    /// `LimitExceededException`: a key would have more than `max` `things` (`tags`,
    /// `aliases`); `max` is the quota from `types::limits`.
    pub fn per_key_limit(max: usize, things: &str) -> KmsError {
        KmsError::new(
            ErrorKind::LimitExceededException,
            format!("A KMS key can have at most {max} {things}"),
        )
    }

    /// `KMSInvalidStateException`: the CloudHSM cluster behind a custom key store cannot be
    /// reached (`why`: the cluster's reachability code).
    pub fn cluster_unreachable(
        cluster_id: impl fmt::Display,
        store_id: impl fmt::Display,
        why: impl fmt::Display,
    ) -> KmsError {
        KmsError::new(
            ErrorKind::KMSInvalidStateException,
            format!(
                "KMS cannot communicate with the CloudHSM cluster {cluster_id} of custom key \
                 store {store_id} ({why})"
            ),
        )
    }

    /// `KMSInvalidStateException`: the key is unavailable (its custom key store is not
    /// connected).
    pub fn unavailable(key_arn: impl fmt::Display) -> KmsError {
        KmsError::new(
            ErrorKind::KMSInvalidStateException,
            format!("{key_arn} is unavailable."),
        )
    }
}

impl fmt::Debug for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.aws_name(), self.message)
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.aws_name(), self.message)
    }
}

impl std::error::Error for KmsError {}

/// Shorthand for building errors: `err!(NotFoundException, "Key '{arn}' does not exist")`.
#[macro_export]
macro_rules! err {
    ($kind:ident, $($fmt:tt)+) => {
        $crate::error::KmsError::new($crate::error::ErrorKind::$kind, format!($($fmt)+))
    };
}

/// Result with [`KmsError`].
pub type Result<T, E = KmsError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_codes_and_statuses_round_trip() {
        let mut codes = HashSet::new();
        for &kind in ErrorKind::ALL {
            assert!(codes.insert(kind.code()), "code {} reused", kind.code());
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
            assert_eq!(ErrorKind::from_aws_name(kind.aws_name()), Some(kind));
            assert!(kind.aws_name().ends_with("Exception"), "{kind}");
            // 403 is AWS's status for a request without credentials, 412 its answer to a
            // DryRun that would have succeeded.
            assert!(
                matches!(kind.http_status(), 400 | 403 | 412 | 500 | 503),
                "{kind}"
            );
        }
        assert_eq!(ErrorKind::from_code(0), None);
        assert_eq!(ErrorKind::from_aws_name("Bogus"), None);
    }

    #[test]
    fn display_and_validation_wording() {
        let e = KmsError::validation(
            3,
            "pendingWindowInDays",
            "Member must have value greater than or equal to 7",
        );
        assert_eq!(e.kind(), ErrorKind::ValidationException);
        assert!(e.to_string().starts_with(
            "ValidationException: 1 validation error detected: Value '3' at 'pendingWindowInDays'"
        ));
        let e = err!(NotFoundException, "Key '{}' does not exist", "arn:x");
        assert_eq!(e.aws_name(), "NotFoundException");
        assert_eq!(e.message(), "Key 'arn:x' does not exist");
    }

    #[test]
    fn shared_wordings_are_aws_wordings() {
        let arn = "arn:aws:kms:us-east-1:111122223333:key/k";
        let cases = [
            (
                KmsError::key_not_found(arn),
                ErrorKind::NotFoundException,
                format!("Key '{arn}' does not exist"),
            ),
            (
                KmsError::alias_not_found("arn:aws:kms:us-east-1:111122223333:alias/a"),
                ErrorKind::NotFoundException,
                "Alias arn:aws:kms:us-east-1:111122223333:alias/a is not found.".to_string(),
            ),
            (
                KmsError::not_authorized("arn:aws:iam::111122223333:user/u", "kms:Encrypt", arn),
                ErrorKind::AccessDeniedException,
                format!(
                    "User: arn:aws:iam::111122223333:user/u is not authorized to perform: \
                     kms:Encrypt on resource: {arn} because no resource-based policy allows \
                     the kms:Encrypt action"
                ),
            ),
            (
                KmsError::pending_deletion(arn),
                ErrorKind::KMSInvalidStateException,
                format!("{arn} is pending deletion."),
            ),
            (
                KmsError::disabled(arn),
                ErrorKind::DisabledException,
                format!("{arn} is disabled."),
            ),
            (
                KmsError::unavailable(arn),
                ErrorKind::KMSInvalidStateException,
                format!("{arn} is unavailable."),
            ),
        ];
        let more = [
            (
                KmsError::required("KeyId"),
                ErrorKind::ValidationException,
                "KeyId is required".to_string(),
            ),
            (
                KmsError::per_key_limit(50, "tags"),
                ErrorKind::LimitExceededException,
                "A KMS key can have at most 50 tags".to_string(),
            ),
            (
                KmsError::cluster_unreachable("cluster-1", "cks-1", "no active HSM"),
                ErrorKind::KMSInvalidStateException,
                "KMS cannot communicate with the CloudHSM cluster cluster-1 of custom key store \
                 cks-1 (no active HSM)"
                    .to_string(),
            ),
        ];
        let constraints = [
            (
                KmsError::validation(0, "limit", Constraint::MinValue(1)),
                ErrorKind::ValidationException,
                "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
                 Member must have value greater than or equal to 1"
                    .to_string(),
            ),
            (
                KmsError::validation(2000, "limit", Constraint::MaxValue(1000)),
                ErrorKind::ValidationException,
                "1 validation error detected: Value '2000' at 'limit' failed to satisfy \
                 constraint: Member must have value less than or equal to 1000"
                    .to_string(),
            ),
            (
                KmsError::validation("x", "name", Constraint::LengthBetween(2, 3)),
                ErrorKind::ValidationException,
                "1 validation error detected: Value 'x' at 'name' failed to satisfy constraint: \
                 Member must have length between 2 and 3"
                    .to_string(),
            ),
            (
                KmsError::validation("A", "keyFileName", Constraint::Pattern("[a-z]+")),
                ErrorKind::ValidationException,
                "1 validation error detected: Value 'A' at 'keyFileName' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: [a-z]+"
                    .to_string(),
            ),
            (
                KmsError::validation_of_secret("plaintext", Constraint::MinLength(1)),
                ErrorKind::ValidationException,
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: \
                 Member must have length greater than or equal to 1"
                    .to_string(),
            ),
            (
                KmsError::validation_of_secret("plaintext", Constraint::MaxLength(4096)),
                ErrorKind::ValidationException,
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: \
                 Member must have length less than or equal to 4096"
                    .to_string(),
            ),
            (
                KmsError::validation_of_value(-5, Constraint::MinValue(0)),
                ErrorKind::ValidationException,
                "1 validation error detected: Value '-5' failed to satisfy constraint: Member \
                 must have value greater than or equal to 0"
                    .to_string(),
            ),
        ];
        for (e, kind, message) in cases.into_iter().chain(more).chain(constraints) {
            assert_eq!((e.kind(), e.message()), (kind, message.as_str()));
        }
    }
}
