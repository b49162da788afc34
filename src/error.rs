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

kms_errors! {
    // --- KMS exceptions (spec §1, §4, §9). HTTP 400 for client errors, as the service answers.
    /// An alias (or other unique name) exists already.
    AlreadyExistsException = 1000, 400;
    /// The CloudHSM cluster already backs a store, or is related to one that does.
    CloudHsmClusterInUseException = 1001, 400;
    /// The cluster lacks the HSMs, subnets or security group a custom key store needs.
    CloudHsmClusterInvalidConfigurationException = 1002, 400;
    /// The cluster is not ACTIVE.
    CloudHsmClusterNotActiveException = 1003, 400;
    /// No such CloudHSM cluster in this account and Region.
    CloudHsmClusterNotFoundException = 1004, 400;
    /// The cluster does not share backup history (cluster certificate) with the original.
    CloudHsmClusterNotRelatedException = 1005, 400;
    /// The custom key store still holds KMS keys.
    CustomKeyStoreHasCMKsException = 1006, 400;
    /// The operation is not allowed in the store's connection state.
    CustomKeyStoreInvalidStateException = 1007, 400;
    /// Another custom key store has that name.
    CustomKeyStoreNameInUseException = 1008, 400;
    /// No custom key store with that ID or name.
    CustomKeyStoreNotFoundException = 1009, 400;
    /// A dependency did not answer in time (retryable).
    DependencyTimeoutException = 1010, 503;
    /// The KMS key is disabled.
    DisabledException = 1011, 400;
    /// The ciphertext was made under a different KMS key than the one named.
    IncorrectKeyException = 1012, 400;
    /// The trust anchor is not the cluster's.
    IncorrectTrustAnchorException = 1013, 400;
    /// The alias name is malformed or reserved.
    InvalidAliasNameException = 1014, 400;
    /// The ARN is malformed or names the wrong account or Region.
    InvalidArnException = 1015, 400;
    /// The ciphertext is damaged, or the encryption context does not match.
    InvalidCiphertextException = 1016, 400;
    /// A grant token is malformed.
    InvalidGrantTokenException = 1017, 400;
    /// The key's usage or the algorithm does not fit the operation.
    InvalidKeyUsageException = 1018, 400;
    /// The paging marker was not one this service issued.
    InvalidMarkerException = 1019, 400;
    /// The key is temporarily unusable (not the Unavailable state).
    KeyUnavailableException = 1020, 500;
    /// An internal failure (retryable).
    KMSInternalException = 1021, 500;
    /// The key or store is in a state that does not allow the operation.
    KMSInvalidStateException = 1022, 400;
    /// A quota would be exceeded.
    LimitExceededException = 1023, 400;
    /// The key policy is not valid JSON or not a valid policy.
    MalformedPolicyDocumentException = 1024, 400;
    /// The key or alias does not exist.
    NotFoundException = 1025, 400;
    /// A tag is malformed or reserved.
    TagException = 1026, 400;
    /// The operation is not supported for this key or key store.
    UnsupportedOperationException = 1027, 400;
    /// A `DryRun` request would have succeeded.
    DryRunOperationException = 1028, 400;
    // --- Generic AWS JSON protocol errors (spec §9).
    /// An input failed its constraints.
    ValidationException = 1100, 400;
    /// The caller's principal is not allowed the action.
    AccessDeniedException = 1101, 400;
    /// Too many requests; back off and retry.
    ThrottlingException = 1102, 400;
    /// The operation name is not known.
    UnknownOperationException = 1103, 400;
    /// The request body could not be decoded.
    SerializationException = 1104, 400;
    // --- CloudHSM (cloudhsmv2 API and CloudHSM CLI) exceptions, for the simulated cluster side.
    /// The caller may not perform this CloudHSM action (also a failed login).
    CloudHsmAccessDeniedException = 1200, 400;
    /// The CloudHSM service failed internally.
    CloudHsmInternalFailureException = 1201, 500;
    /// The CloudHSM request is invalid in the resource's current state.
    CloudHsmInvalidRequestException = 1202, 400;
    /// No such cluster, HSM, backup, user or key object.
    CloudHsmResourceNotFoundException = 1203, 400;
    /// A CloudHSM service-side error, e.g. a quota.
    CloudHsmServiceException = 1204, 400;
    // --- kmscks's own local failures, named so that callers can tell them apart.
    /// The data directory could not be read or written, or is damaged (names file and offset).
    StorageException = 1300, 500;
    /// The data directory is open in another process.
    StoreInUseException = 1301, 500;
    /// A client refused the socket: the daemon behind it runs as a uid the client does not
    /// trust, or the socket's per-user directory is not private (names path, owner and mode).
    UntrustedSocketException = 1302, 500;
}

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
}

impl KmsError {
    /// An error of `kind` with `message` (AWS wording where AWS has one).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> KmsError {
        KmsError {
            kind,
            message: message.into(),
        }
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
        KmsError::new(
            ErrorKind::ValidationException,
            format!(
                "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
                 constraint: {constraint}"
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
impl KmsError {
    /// `ValidationException` for a member whose value is not echoed (a plaintext, a
    /// ciphertext): AWS's wording without the value.
    pub fn validation_of_secret(member: &str, constraint: Constraint) -> KmsError {
        KmsError::new(
            ErrorKind::ValidationException,
            format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: \
                 {constraint}"
            ),
        )
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
        KmsError::new(
            ErrorKind::AccessDeniedException,
            format!(
                "User: {principal} is not authorized to perform: {action} on resource: \
                 {key_arn} because no resource-based policy allows the {action} action"
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
            assert!(matches!(kind.http_status(), 400 | 500 | 503));
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
        ];
        for (e, kind, message) in cases.into_iter().chain(more).chain(constraints) {
            assert_eq!((e.kind(), e.message()), (kind, message.as_str()));
        }
    }
}
