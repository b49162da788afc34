// The error table: one row per kind, `Name = code, http_status;`, in the `kms_errors!` form.
//
// Not a module: `src/error.rs` includes it to define `ErrorKind`, and `build.rs` includes it to
// generate the C API's `kmscks_result` codes, so that both come from these rows alone. Numbers
// are never reused; a retired kind keeps its number as a comment.

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
    DryRunOperationException = 1028, 412;
    /// A grant id is malformed.
    InvalidGrantIdException = 1029, 400;
    /// VerifyMac: the MAC does not verify for the message, key and algorithm.
    KMSInvalidMacException = 1030, 400;
    /// Verify: the signature does not verify for the message, key and algorithm.
    KMSInvalidSignatureException = 1031, 400;
    /// The import token is past its `ParametersValidTo`.
    ExpiredImportTokenException = 1032, 400;
    /// The import token is not one GetParametersForImport gave for this key.
    InvalidImportTokenException = 1033, 400;
    /// The key material imported is not the material the key had before.
    IncorrectKeyMaterialException = 1034, 400;
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
    /// The access key id of a signed HTTP request is not known (`--http-credentials`).
    UnrecognizedClientException = 1105, 400;
    /// The signature of an HTTP request does not match, or its date is too far off.
    InvalidSignatureException = 1106, 400;
    /// An HTTP request carries no signature where one is required (`--http-credentials`).
    MissingAuthenticationTokenException = 1107, 403;
    /// An HTTP request's `Authorization` header lacks a part SigV4 needs, or its date.
    IncompleteSignatureException = 1108, 400;
    // --- CloudHSM (cloudhsmv2 API and CloudHSM CLI) exceptions, for the simulated cluster side.
    /// The caller may not perform this CloudHSM action (also a failed login).
    CloudHsmAccessDeniedException = 1200, 400;
    /// The CloudHSM service failed internally.
    CloudHsmInternalFailureException = 1201, 500;
    /// The CloudHSM request is invalid in the resource's current state.
    CloudHsmInvalidRequestException = 1202, 400;
    /// No such cluster, HSM, backup, user or key object.
    CloudHsmResourceNotFoundException = 1203, 400;
    /// A CloudHSM service-side error.
    CloudHsmServiceException = 1204, 400;
    /// A CloudHSM resource quota is exhausted (clusters per Region, HSMs per cluster).
    CloudHsmResourceLimitExceededException = 1205, 400;
    /// A CloudHSM tagging request is invalid (too many tags).
    CloudHsmTagException = 1206, 400;
    // --- kmscks's own local failures, named so that callers can tell them apart.
    /// The data directory could not be read or written, or is damaged (names file and offset).
    StorageException = 1300, 500;
    /// The data directory is open in another process.
    StoreInUseException = 1301, 500;
    /// A client refused the socket: the daemon behind it runs as a uid the client does not
    /// trust, or the socket's per-user directory is not private (names path, owner and mode).
    UntrustedSocketException = 1302, 500;
}
