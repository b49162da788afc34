//! Enumerations with AWS's spellings: key, store, cluster and HSM states, connection error
//! codes, origins, specs. Each name is written once, in `aws_enum!`, which derives the serde
//! names, `as_str` and parsing from it.

use serde::{Deserialize, Serialize};

macro_rules! aws_enum {
    ($(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $text:literal, )* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
        #[allow(missing_docs)] // variants are AWS's own names, documented by AWS
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $text)] $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// AWS's spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses AWS's spelling (case-sensitive, as AWS is).
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

aws_enum! {
    /// A KMS key's state (spec §4.2).
    KeyState {
        Creating = "Creating",
        Enabled = "Enabled",
        Disabled = "Disabled",
        PendingDeletion = "PendingDeletion",
        PendingImport = "PendingImport",
        PendingReplicaDeletion = "PendingReplicaDeletion",
        Unavailable = "Unavailable",
        Updating = "Updating",
    }
}

aws_enum! {
    /// A custom key store's connection state (spec §2).
    ConnectionState {
        Connected = "CONNECTED",
        Connecting = "CONNECTING",
        Failed = "FAILED",
        Disconnected = "DISCONNECTED",
        Disconnecting = "DISCONNECTING",
    }
}

aws_enum! {
    /// Why a connection attempt FAILED (spec §2.1). XKS codes are never emitted.
    ConnectionErrorCode {
        InvalidCredentials = "INVALID_CREDENTIALS",
        ClusterNotFound = "CLUSTER_NOT_FOUND",
        NetworkErrors = "NETWORK_ERRORS",
        InternalError = "INTERNAL_ERROR",
        InsufficientCloudhsmHsms = "INSUFFICIENT_CLOUDHSM_HSMS",
        UserLockedOut = "USER_LOCKED_OUT",
        UserNotFound = "USER_NOT_FOUND",
        UserLoggedIn = "USER_LOGGED_IN",
        SubnetNotFound = "SUBNET_NOT_FOUND",
        InsufficientFreeAddressesInSubnet = "INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET",
    }
}

aws_enum! {
    /// Custom key store type. Only AWS_CLOUDHSM is supported by kmscks.
    CustomKeyStoreType {
        AwsCloudhsm = "AWS_CLOUDHSM",
        ExternalKeyStore = "EXTERNAL_KEY_STORE",
    }
}

aws_enum! {
    /// Where a key's material came from.
    Origin {
        AwsKms = "AWS_KMS",
        External = "EXTERNAL",
        AwsCloudhsm = "AWS_CLOUDHSM",
        ExternalKeyStore = "EXTERNAL_KEY_STORE",
    }
}

aws_enum! {
    /// Who manages a key.
    KeyManager {
        Aws = "AWS",
        Customer = "CUSTOMER",
    }
}

aws_enum! {
    /// What a key is for.
    KeyUsage {
        EncryptDecrypt = "ENCRYPT_DECRYPT",
        SignVerify = "SIGN_VERIFY",
        GenerateVerifyMac = "GENERATE_VERIFY_MAC",
        KeyAgreement = "KEY_AGREEMENT",
    }
}

aws_enum! {
    /// A key's type (KeySpec and the deprecated CustomerMasterKeySpec).
    KeySpec {
        SymmetricDefault = "SYMMETRIC_DEFAULT",
        Rsa2048 = "RSA_2048",
        Rsa3072 = "RSA_3072",
        Rsa4096 = "RSA_4096",
        EccNistP256 = "ECC_NIST_P256",
        EccNistP384 = "ECC_NIST_P384",
        EccNistP521 = "ECC_NIST_P521",
        EccSecgP256k1 = "ECC_SECG_P256K1",
        EccNistEdwards25519 = "ECC_NIST_EDWARDS25519",
        Hmac224 = "HMAC_224",
        Hmac256 = "HMAC_256",
        Hmac384 = "HMAC_384",
        Hmac512 = "HMAC_512",
        Sm2 = "SM2",
        MlDsa44 = "ML_DSA_44",
        MlDsa65 = "ML_DSA_65",
        MlDsa87 = "ML_DSA_87",
    }
}

impl KeySpec {
    /// The key usages AWS accepts for a key of this spec (CreateKey's `KeyUsage`); kmscks may
    /// make fewer (`crypto::private_key::usages`).
    pub const fn aws_usages(self) -> &'static [KeyUsage] {
        use KeyUsage::*;
        match self {
            KeySpec::SymmetricDefault => &[EncryptDecrypt],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[EncryptDecrypt, SignVerify],
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
                &[SignVerify, KeyAgreement]
            }
            KeySpec::EccSecgP256k1
            | KeySpec::EccNistEdwards25519
            | KeySpec::MlDsa44
            | KeySpec::MlDsa65
            | KeySpec::MlDsa87 => &[SignVerify],
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
                &[GenerateVerifyMac]
            }
            KeySpec::Sm2 => &[EncryptDecrypt, SignVerify, KeyAgreement],
        }
    }
}

aws_enum! {
    /// The encryption algorithms of Encrypt, Decrypt and ReEncrypt (AWS's whole list; a key
    /// allows some of them, [`KeySpec::encryption_algorithms`]).
    EncryptionAlgorithm {
        SymmetricDefault = "SYMMETRIC_DEFAULT",
        RsaesOaepSha1 = "RSAES_OAEP_SHA_1",
        RsaesOaepSha256 = "RSAES_OAEP_SHA_256",
        Sm2Pke = "SM2PKE",
    }
}

impl EncryptionAlgorithm {
    /// Whether this is the algorithm of symmetric keys, which the symmetric path (ciphertext
    /// blobs, encryption contexts) serves; `None` (the member left out) is AWS's default,
    /// SYMMETRIC_DEFAULT.
    pub const fn is_symmetric(alg: Option<EncryptionAlgorithm>) -> bool {
        matches!(alg, None | Some(EncryptionAlgorithm::SymmetricDefault))
    }
}

impl KeySpec {
    /// The encryption algorithms an ENCRYPT_DECRYPT key of this spec allows, in AWS's order
    /// (DescribeKey's and GetPublicKey's `EncryptionAlgorithms`).
    pub const fn encryption_algorithms(self) -> &'static [EncryptionAlgorithm] {
        use EncryptionAlgorithm::*;
        match self {
            KeySpec::SymmetricDefault => &[SymmetricDefault],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                &[RsaesOaepSha1, RsaesOaepSha256]
            }
            KeySpec::Sm2 => &[Sm2Pke],
            _ => &[],
        }
    }

    /// The key agreement algorithms a KEY_AGREEMENT key of this spec allows.
    pub const fn key_agreement_algorithms(self) -> &'static [KeyAgreementAlgorithm] {
        match self {
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 | KeySpec::Sm2 => {
                &[KeyAgreementAlgorithm::Ecdh]
            }
            _ => &[],
        }
    }
}

aws_enum! {
    /// DeriveSharedSecret `KeyAgreementAlgorithm`.
    KeyAgreementAlgorithm {
        Ecdh = "ECDH",
    }
}

aws_enum! {
    /// GenerateDataKey `KeySpec`.
    DataKeySpec {
        Aes256 = "AES_256",
        Aes128 = "AES_128",
    }
}

impl DataKeySpec {
    /// Data key length in bytes.
    pub const fn byte_len(self) -> usize {
        match self {
            DataKeySpec::Aes256 => 32,
            DataKeySpec::Aes128 => 16,
        }
    }
}

aws_enum! {
    /// GenerateDataKeyPair(WithoutPlaintext) `KeyPairSpec`: the type of the data key pair.
    DataKeyPairSpec {
        Rsa2048 = "RSA_2048",
        Rsa3072 = "RSA_3072",
        Rsa4096 = "RSA_4096",
        EccNistP256 = "ECC_NIST_P256",
        EccNistP384 = "ECC_NIST_P384",
        EccNistP521 = "ECC_NIST_P521",
        EccSecgP256k1 = "ECC_SECG_P256K1",
        Sm2 = "SM2",
        EccNistEdwards25519 = "ECC_NIST_EDWARDS25519",
    }
}

aws_enum! {
    /// GenerateMac / VerifyMac `MacAlgorithm`: one per HMAC key spec.
    MacAlgorithm {
        HmacSha224 = "HMAC_SHA_224",
        HmacSha256 = "HMAC_SHA_256",
        HmacSha384 = "HMAC_SHA_384",
        HmacSha512 = "HMAC_SHA_512",
    }
}

impl KeySpec {
    /// The one MAC algorithm of an HMAC key spec (AWS pairs them one to one); `None` for
    /// every other spec.
    pub const fn mac_algorithm(self) -> Option<MacAlgorithm> {
        match self {
            KeySpec::Hmac224 => Some(MacAlgorithm::HmacSha224),
            KeySpec::Hmac256 => Some(MacAlgorithm::HmacSha256),
            KeySpec::Hmac384 => Some(MacAlgorithm::HmacSha384),
            KeySpec::Hmac512 => Some(MacAlgorithm::HmacSha512),
            _ => None,
        }
    }

    /// The key length in bytes of an HMAC key spec (the spec's number of bits); `None` for
    /// every other spec.
    pub const fn hmac_key_len(self) -> Option<usize> {
        match self {
            KeySpec::Hmac224 => Some(28),
            KeySpec::Hmac256 => Some(32),
            KeySpec::Hmac384 => Some(48),
            KeySpec::Hmac512 => Some(64),
            _ => None,
        }
    }
}

aws_enum! {
    /// Sign / Verify `SigningAlgorithm` (AWS's whole list, in its order; a key allows some of
    /// them, [`KeySpec::signing_algorithms`]). Naming one that no key of kmscks allows (the
    /// ML-DSA and Ed25519 ones, SM2DSA) is AWS's `InvalidKeyUsageException`, not a
    /// `ValidationException`.
    SigningAlgorithm {
        RsassaPssSha256 = "RSASSA_PSS_SHA_256",
        RsassaPssSha384 = "RSASSA_PSS_SHA_384",
        RsassaPssSha512 = "RSASSA_PSS_SHA_512",
        RsassaPkcs1V15Sha256 = "RSASSA_PKCS1_V1_5_SHA_256",
        RsassaPkcs1V15Sha384 = "RSASSA_PKCS1_V1_5_SHA_384",
        RsassaPkcs1V15Sha512 = "RSASSA_PKCS1_V1_5_SHA_512",
        EcdsaSha256 = "ECDSA_SHA_256",
        EcdsaSha384 = "ECDSA_SHA_384",
        EcdsaSha512 = "ECDSA_SHA_512",
        Sm2dsa = "SM2DSA",
        MlDsaShake256 = "ML_DSA_SHAKE_256",
        Ed25519Sha512 = "ED25519_SHA_512",
        Ed25519PhSha512 = "ED25519_PH_SHA_512",
    }
}

aws_enum! {
    /// Sign / Verify `MessageType`: the message itself, or its digest.
    MessageType {
        Raw = "RAW",
        Digest = "DIGEST",
        ExternalMu = "EXTERNAL_MU",
    }
}

impl KeySpec {
    /// The signing algorithms a SIGN_VERIFY key of this spec allows (AWS's pairs), in AWS's
    /// order (DescribeKey's and GetPublicKey's `SigningAlgorithms`: PKCS #1 v1.5 before PSS for
    /// RSA); empty for specs kmscks does not sign with.
    pub const fn signing_algorithms(self) -> &'static [SigningAlgorithm] {
        use SigningAlgorithm::*;
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[
                RsassaPkcs1V15Sha256,
                RsassaPkcs1V15Sha384,
                RsassaPkcs1V15Sha512,
                RsassaPssSha256,
                RsassaPssSha384,
                RsassaPssSha512,
            ],
            KeySpec::EccNistP256 | KeySpec::EccSecgP256k1 => &[EcdsaSha256],
            KeySpec::EccNistP384 => &[EcdsaSha384],
            KeySpec::EccNistP521 => &[EcdsaSha512],
            _ => &[],
        }
    }
}

aws_enum! {
    /// A CloudHSM cluster's state (spec §3.1).
    ClusterState {
        CreateInProgress = "CREATE_IN_PROGRESS",
        Uninitialized = "UNINITIALIZED",
        InitializeInProgress = "INITIALIZE_IN_PROGRESS",
        Initialized = "INITIALIZED",
        Active = "ACTIVE",
        UpdateInProgress = "UPDATE_IN_PROGRESS",
        ModifyInProgress = "MODIFY_IN_PROGRESS",
        RollbackInProgress = "ROLLBACK_IN_PROGRESS",
        DeleteInProgress = "DELETE_IN_PROGRESS",
        Deleted = "DELETED",
        Degraded = "DEGRADED",
    }
}

aws_enum! {
    /// An HSM's state.
    HsmState {
        CreateInProgress = "CREATE_IN_PROGRESS",
        Active = "ACTIVE",
        Degraded = "DEGRADED",
        DeleteInProgress = "DELETE_IN_PROGRESS",
        Deleted = "DELETED",
    }
}

aws_enum! {
    /// A CloudHSM user's role.
    HsmUserRole {
        Admin = "admin",
        CryptoUser = "crypto-user",
    }
}

aws_enum! {
    /// A CloudHSM backup's state.
    BackupState {
        CreateInProgress = "CREATE_IN_PROGRESS",
        Ready = "READY",
        Deleted = "DELETED",
        PendingDeletion = "PENDING_DELETION",
    }
}

aws_enum! {
    /// An operation a grant may allow (CreateGrant's `Operations`), AWS's list: the key's
    /// cryptographic operations, DescribeKey, and the grant operations CreateGrant and
    /// RetireGrant.
    GrantOperation {
        Decrypt = "Decrypt",
        Encrypt = "Encrypt",
        GenerateDataKey = "GenerateDataKey",
        GenerateDataKeyWithoutPlaintext = "GenerateDataKeyWithoutPlaintext",
        ReEncryptFrom = "ReEncryptFrom",
        ReEncryptTo = "ReEncryptTo",
        Sign = "Sign",
        Verify = "Verify",
        GetPublicKey = "GetPublicKey",
        CreateGrant = "CreateGrant",
        RetireGrant = "RetireGrant",
        DescribeKey = "DescribeKey",
        GenerateDataKeyPair = "GenerateDataKeyPair",
        GenerateDataKeyPairWithoutPlaintext = "GenerateDataKeyPairWithoutPlaintext",
        GenerateMac = "GenerateMac",
        VerifyMac = "VerifyMac",
        DeriveSharedSecret = "DeriveSharedSecret",
    }
}

aws_enum! {
    /// How a key's material was rotated (ListKeyRotations' `RotationType`).
    RotationType {
        Automatic = "AUTOMATIC",
        OnDemand = "ON_DEMAND",
    }
}

aws_enum! {
    /// How key material is wrapped for ImportKeyMaterial (GetParametersForImport's
    /// `WrappingAlgorithm`, AWS's `AlgorithmSpec`).
    WrappingAlgorithm {
        RsaesPkcs1V15 = "RSAES_PKCS1_V1_5",
        RsaesOaepSha1 = "RSAES_OAEP_SHA_1",
        RsaesOaepSha256 = "RSAES_OAEP_SHA_256",
        RsaAesKeyWrapSha1 = "RSA_AES_KEY_WRAP_SHA_1",
        RsaAesKeyWrapSha256 = "RSA_AES_KEY_WRAP_SHA_256",
        Sm2Pke = "SM2PKE",
    }
}

aws_enum! {
    /// The public key GetParametersForImport returns (`WrappingKeySpec`).
    WrappingKeySpec {
        Rsa2048 = "RSA_2048",
        Rsa3072 = "RSA_3072",
        Rsa4096 = "RSA_4096",
        Sm2 = "SM2",
    }
}

aws_enum! {
    /// Whether imported key material expires (ImportKeyMaterial's `ExpirationModel`).
    ExpirationModel {
        KeyMaterialExpires = "KEY_MATERIAL_EXPIRES",
        KeyMaterialDoesNotExpire = "KEY_MATERIAL_DOES_NOT_EXPIRE",
    }
}

aws_enum! {
    /// ImportKeyMaterial's `ImportType`: the key's first material or a reimport of it.
    ImportType {
        NewKeyMaterial = "NEW_KEY_MATERIAL",
        ExistingKeyMaterial = "EXISTING_KEY_MATERIAL",
    }
}

impl GrantOperation {
    /// Whether a grant on a key of `usage` may allow this operation (AWS's CreateGrant refuses
    /// a grant for an operation the key cannot perform); `symmetric`: a SYMMETRIC_DEFAULT key.
    pub const fn fits(self, usage: KeyUsage, symmetric: bool) -> bool {
        use GrantOperation::*;
        match self {
            DescribeKey | CreateGrant | RetireGrant => true,
            Encrypt | Decrypt | ReEncryptFrom | ReEncryptTo => {
                matches!(usage, KeyUsage::EncryptDecrypt)
            }
            GenerateDataKey
            | GenerateDataKeyWithoutPlaintext
            | GenerateDataKeyPair
            | GenerateDataKeyPairWithoutPlaintext => symmetric,
            Sign | Verify => matches!(usage, KeyUsage::SignVerify),
            GetPublicKey => !symmetric && !matches!(usage, KeyUsage::GenerateVerifyMac),
            GenerateMac | VerifyMac => matches!(usage, KeyUsage::GenerateVerifyMac),
            DeriveSharedSecret => matches!(usage, KeyUsage::KeyAgreement),
        }
    }

    /// The grant operation a policy action names (`kms:Decrypt` → `Decrypt`); `None` for an
    /// action no grant can allow.
    pub fn of_action(action: &str) -> Option<GrantOperation> {
        GrantOperation::parse(action.strip_prefix("kms:")?)
    }

    /// Whether a request of this operation carries an encryption context, so that a grant's
    /// constraints apply to it (AWS: the cryptographic operations on symmetric keys; not
    /// DescribeKey, RetireGrant, nor the asymmetric and HMAC operations).
    pub const fn takes_context(self) -> bool {
        matches!(
            self,
            GrantOperation::Decrypt
                | GrantOperation::Encrypt
                | GrantOperation::GenerateDataKey
                | GrantOperation::GenerateDataKeyWithoutPlaintext
                | GrantOperation::ReEncryptFrom
                | GrantOperation::ReEncryptTo
                | GrantOperation::GenerateDataKeyPair
                | GrantOperation::GenerateDataKeyPairWithoutPlaintext
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_through_serde_and_parse() {
        for &s in ConnectionErrorCode::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(ConnectionErrorCode::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            KeyState::parse("PendingDeletion"),
            Some(KeyState::PendingDeletion)
        );
        assert_eq!(KeyState::parse("pendingdeletion"), None);
        assert_eq!(ConnectionState::Connected.to_string(), "CONNECTED");
        assert_eq!(DataKeySpec::Aes128.byte_len(), 16);
    }

    #[test]
    fn signing_algorithms_are_awss_whole_list_in_awss_order() {
        // AWS's SigningAlgorithmSpec, as its API reference lists it.
        let names: Vec<&str> = SigningAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_384",
                "RSASSA_PSS_SHA_512",
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
                "RSASSA_PKCS1_V1_5_SHA_512",
                "ECDSA_SHA_256",
                "ECDSA_SHA_384",
                "ECDSA_SHA_512",
                "SM2DSA",
                "ML_DSA_SHAKE_256",
                "ED25519_SHA_512",
                "ED25519_PH_SHA_512",
            ]
        );
    }
}
