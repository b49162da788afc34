//! The keys of the default key store that are not symmetric encryption keys — HMAC keys,
//! signing keys, RSA encryption keys and key agreement keys — from their stored material to
//! the aws-lc-rs key object that serves requests.
//!
//! The control plane stores such a key's material wrapped like any other (raw HMAC key bytes,
//! as long as the spec says; PKCS#8 DER for an asymmetric key, whatever its usage). The data
//! plane parses it once, when the key is placed on the engine's shards, into a [`PrivateKey`]
//! of the key's spec and usage; a request then costs the cryptography alone, with no parsing
//! and no randomness drawn beyond the algorithm's.

use std::fmt;

use aws_lc_rs::hmac;

use crate::crypto::agreement::{is_agreement_spec, AgreementKey};
use crate::crypto::rsa_encryption::{is_rsa_encryption_spec, DecryptingKey};
use crate::crypto::signing::{generate_pkcs8, is_signing_spec, SigningKey};
use crate::err;
use crate::error::{KmsError, Result};
use crate::secret::SecretBytes;
use crate::types::{KeySpec, KeyUsage, MacAlgorithm};

/// A parsed key that never leaves the engine.
// One per key, behind the `Arc` every shard shares: the HMAC variant's size (aws-lc-rs keeps
// the HMAC state inline) costs nothing per request, and boxing it would add a pointer chase.
#[allow(clippy::large_enum_variant)]
pub enum PrivateKey {
    /// An HMAC key (KeyUsage GENERATE_VERIFY_MAC).
    Hmac {
        /// Its one algorithm.
        algorithm: MacAlgorithm,
        /// The aws-lc-rs key.
        key: hmac::Key,
    },
    /// A signing key (KeyUsage SIGN_VERIFY).
    Signing(SigningKey),
    /// An RSA key for encryption (KeyUsage ENCRYPT_DECRYPT).
    Decrypting(DecryptingKey),
    /// An ECC key for DeriveSharedSecret (KeyUsage KEY_AGREEMENT).
    Agreement(AgreementKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivateKey::Hmac { algorithm, .. } => write!(f, "PrivateKey::Hmac({algorithm}, <redacted>)"),
            PrivateKey::Signing(k) => write!(f, "PrivateKey::Signing({}, <redacted>)", k.spec()),
            PrivateKey::Decrypting(k) => {
                write!(f, "PrivateKey::Decrypting({}, <redacted>)", k.spec())
            }
            PrivateKey::Agreement(k) => write!(f, "PrivateKey::Agreement({}, <redacted>)", k.spec()),
        }
    }
}

fn hmac_algorithm(a: MacAlgorithm) -> hmac::Algorithm {
    match a {
        MacAlgorithm::HmacSha224 => hmac::HMAC_SHA224,
        MacAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
        MacAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
        MacAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
    }
}

/// Whether the default key store makes keys of this spec with a [`PrivateKey`] (rather than
/// the 32-byte symmetric material): the specs [`generate_material`] accepts.
pub const fn is_private_spec(spec: KeySpec) -> bool {
    spec.mac_algorithm().is_some() || is_signing_spec(spec)
}

/// The key usages kmscks makes for a spec in the default key store: some of AWS's
/// ([`KeySpec::aws_usages`]); CreateKey refuses the others as unsupported.
pub const fn usages(spec: KeySpec) -> &'static [KeyUsage] {
    match spec {
        KeySpec::SymmetricDefault => &[KeyUsage::EncryptDecrypt],
        KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
            &[KeyUsage::GenerateVerifyMac]
        }
        // AWS's own lists (`KeySpec::aws_usages`) for the specs kmscks makes.
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            &[KeyUsage::EncryptDecrypt, KeyUsage::SignVerify]
        }
        KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
            &[KeyUsage::SignVerify, KeyUsage::KeyAgreement]
        }
        KeySpec::EccSecgP256k1 => &[KeyUsage::SignVerify],
        _ => &[],
    }
}

/// Fresh material for a new key of `spec` (a [`is_private_spec`] spec): the HMAC key bytes,
/// or PKCS#8 DER for an asymmetric key (one format for every usage of the spec).
pub fn generate_material(spec: KeySpec) -> Result<SecretBytes> {
    if is_signing_spec(spec) {
        return generate_pkcs8(spec);
    }
    let Some(len) = spec.hmac_key_len() else {
        return Err(err!(
            KMSInternalException,
            "no private key material for key spec {spec}"
        ));
    };
    let mut bytes = SecretBytes::zeroed(len);
    aws_lc_rs::rand::fill(bytes.expose_mut())
        .map_err(|_| err!(KMSInternalException, "system randomness unavailable"))?;
    Ok(bytes)
}

impl PrivateKey {
    /// Parses stored material of a key of `spec` made for `usage`.
    pub fn parse(spec: KeySpec, usage: KeyUsage, material: &[u8]) -> Result<PrivateKey> {
        match usage {
            KeyUsage::SignVerify if is_signing_spec(spec) => {
                return SigningKey::parse(spec, material).map(PrivateKey::Signing)
            }
            KeyUsage::EncryptDecrypt if is_rsa_encryption_spec(spec) => {
                return DecryptingKey::parse(spec, material).map(PrivateKey::Decrypting)
            }
            KeyUsage::KeyAgreement if is_agreement_spec(spec) => {
                return AgreementKey::parse(spec, material).map(PrivateKey::Agreement)
            }
            _ => {}
        }
        match (spec.mac_algorithm(), spec.hmac_key_len()) {
            (Some(algorithm), Some(len))
                if material.len() == len && usage == KeyUsage::GenerateVerifyMac =>
            {
                Ok(PrivateKey::Hmac {
                algorithm,
                    key: hmac::Key::new(hmac_algorithm(algorithm), material),
                })
            }
            _ => Err(err!(
                KMSInternalException,
                "stored material of {} bytes is not a {spec} {usage} key",
                material.len()
            )),
        }
    }

    /// The HMAC key that serves `algorithm` on the key `arn`, or AWS's
    /// `InvalidKeyUsageException` when `algorithm` is not the key's one algorithm.
    pub fn hmac_key(&self, algorithm: MacAlgorithm, arn: &str) -> Result<&hmac::Key> {
        match self {
            PrivateKey::Hmac {
                algorithm: own,
                key,
            } if *own == algorithm => Ok(key),
            PrivateKey::Hmac { .. } => Err(err!(
                InvalidKeyUsageException,
                "{arn} key spec is {} which is not valid for MacAlgorithm {algorithm}.",
                self.spec()
            )),
            _ => Err(self.wrong_usage(arn, "this operation")),
        }
    }

    /// The RSA encryption key, or AWS's `InvalidKeyUsageException` naming `op` for a key of
    /// another usage.
    pub fn decrypting(&self, arn: &str, op: &str) -> Result<&DecryptingKey> {
        match self {
            PrivateKey::Decrypting(k) => Ok(k),
            _ => Err(self.wrong_usage(arn, op)),
        }
    }

    /// The key agreement key, or AWS's `InvalidKeyUsageException` naming `op` for a key of
    /// another usage.
    pub fn agreement(&self, arn: &str, op: &str) -> Result<&AgreementKey> {
        match self {
            PrivateKey::Agreement(k) => Ok(k),
            _ => Err(self.wrong_usage(arn, op)),
        }
    }

    /// The public key (DER SubjectPublicKeyInfo) of an asymmetric key; None for an HMAC key.
    pub fn public_der(&self) -> Option<&[u8]> {
        match self {
            PrivateKey::Hmac { .. } => None,
            PrivateKey::Signing(k) => Some(k.public_der()),
            PrivateKey::Decrypting(k) => Some(k.public_der()),
            PrivateKey::Agreement(k) => Some(k.public_der()),
        }
    }

    /// AWS's `InvalidKeyUsageException` for an operation the key's usage does not allow.
    pub fn wrong_usage(&self, arn: &str, op: &str) -> KmsError {
        err!(
            InvalidKeyUsageException,
            "{arn} key usage is {} which is not valid for {op}.",
            self.usage()
        )
    }

    /// The key's usage.
    pub const fn usage(&self) -> KeyUsage {
        match self {
            PrivateKey::Hmac { .. } => KeyUsage::GenerateVerifyMac,
            PrivateKey::Signing(_) => KeyUsage::SignVerify,
            PrivateKey::Decrypting(_) => KeyUsage::EncryptDecrypt,
            PrivateKey::Agreement(_) => KeyUsage::KeyAgreement,
        }
    }

    /// The key's spec.
    pub const fn spec(&self) -> KeySpec {
        match self {
            PrivateKey::Hmac { algorithm, .. } => match algorithm {
                MacAlgorithm::HmacSha224 => KeySpec::Hmac224,
                MacAlgorithm::HmacSha256 => KeySpec::Hmac256,
                MacAlgorithm::HmacSha384 => KeySpec::Hmac384,
                MacAlgorithm::HmacSha512 => KeySpec::Hmac512,
            },
            PrivateKey::Signing(k) => k.spec(),
            PrivateKey::Decrypting(k) => k.spec(),
            PrivateKey::Agreement(k) => k.spec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hmac_spec_round_trips_from_generated_material_and_pairs_with_its_algorithm() {
        for &spec in KeySpec::ALL.iter().filter(|s| s.mac_algorithm().is_some()) {
            let material = generate_material(spec).unwrap();
            assert_eq!(Some(material.len()), spec.hmac_key_len());
            let key = PrivateKey::parse(spec, KeyUsage::GenerateVerifyMac, material.expose()).unwrap();
            assert_eq!(key.spec(), spec);
            assert_eq!(key.usage(), KeyUsage::GenerateVerifyMac);
            assert_eq!(usages(spec), &[KeyUsage::GenerateVerifyMac]);
            assert!(!format!("{key:?}").contains(&format!("{:?}", material.expose())));
        }
    }

    #[test]
    fn an_hmac_key_serves_its_own_algorithm_only() {
        let spec = KeySpec::Hmac256;
        let material = generate_material(spec).unwrap();
        let key = PrivateKey::parse(spec, KeyUsage::GenerateVerifyMac, material.expose()).unwrap();
        assert!(key
            .hmac_key(MacAlgorithm::HmacSha256, "arn")
            .is_ok());
        let e = key
            .hmac_key(MacAlgorithm::HmacSha384, "arn")
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidKeyUsageException);
    }

    #[test]
    fn material_of_the_wrong_length_is_refused() {
        let mac = KeyUsage::GenerateVerifyMac;
        assert!(PrivateKey::parse(KeySpec::Hmac256, mac, &[0u8; 31]).is_err());
        assert!(PrivateKey::parse(KeySpec::SymmetricDefault, mac, &[0u8; 32]).is_err());
        assert!(PrivateKey::parse(KeySpec::Hmac256, KeyUsage::SignVerify, &[0u8; 32]).is_err());
        assert!(generate_material(KeySpec::SymmetricDefault).is_err());
    }

    #[test]
    fn one_pkcs8_material_parses_into_the_key_type_of_each_usage_its_spec_allows() {
        for spec in [KeySpec::Rsa2048, KeySpec::EccNistP256, KeySpec::EccNistP521] {
            let material = generate_material(spec).unwrap();
            for &usage in spec.aws_usages() {
                let key = PrivateKey::parse(spec, usage, material.expose()).unwrap();
                assert_eq!((key.spec(), key.usage()), (spec, usage));
                assert!(key.public_der().is_some_and(|d| d[0] == 0x30));
                assert!(format!("{key:?}").contains("<redacted>"));
            }
        }
        for spec in [KeySpec::Rsa2048, KeySpec::EccNistP384, KeySpec::EccSecgP256k1] {
            assert_eq!(usages(spec), spec.aws_usages());
        }
        let material = generate_material(KeySpec::EccSecgP256k1).unwrap();
        let e = PrivateKey::parse(KeySpec::EccSecgP256k1, KeyUsage::KeyAgreement, material.expose());
        assert!(e.is_err());
    }
}
