//! Asymmetric signing keys of the default key store (RSA, and ECDSA on the NIST curves and
//! secp256k1): generating their PKCS#8 material, parsing it once into aws-lc-rs key pairs,
//! signing and verifying as AWS pairs algorithms with key specs, and the public key as DER
//! SubjectPublicKeyInfo (GetPublicKey).
//!
//! Parsed once when the data plane places the key: the key pair, its public key's DER, and
//! one parsed public key per algorithm the key allows, so that neither Sign nor Verify parses
//! anything per call. The only randomness drawn is the algorithm's own (PSS salt, ECDSA nonce).

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, ParsedPublicKey, RsaKeyPair,
    VerificationAlgorithm,
};

use crate::err;
use crate::error::{Constraint, KmsError, Result};
use crate::secret::SecretBytes;
use crate::types::limits::MESSAGE_LEN;
use crate::types::{KeySpec, MessageType, SigningAlgorithm};

/// A parsed signing key.
pub struct SigningKey {
    spec: KeySpec,
    pair: Pair,
    /// DER SubjectPublicKeyInfo.
    public_der: Vec<u8>,
    /// One parsed public key per algorithm the key allows.
    verifiers: Vec<(SigningAlgorithm, ParsedPublicKey)>,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
}

fn internal(what: &str) -> KmsError {
    err!(KMSInternalException, "{what}")
}

fn ecdsa_algorithm(spec: KeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    Some(match spec {
        KeySpec::EccNistP256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        KeySpec::EccNistP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        KeySpec::EccNistP521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        KeySpec::EccSecgP256k1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        _ => return None,
    })
}

fn rsa_size(spec: KeySpec) -> Option<KeySize> {
    Some(match spec {
        KeySpec::Rsa2048 => KeySize::Rsa2048,
        KeySpec::Rsa3072 => KeySize::Rsa3072,
        KeySpec::Rsa4096 => KeySize::Rsa4096,
        _ => return None,
    })
}

/// The digest an algorithm signs.
fn digest_of(alg: SigningAlgorithm) -> Option<&'static digest::Algorithm> {
    use SigningAlgorithm::*;
    Some(match alg {
        RsassaPssSha256 | RsassaPkcs1V15Sha256 | EcdsaSha256 => &digest::SHA256,
        RsassaPssSha384 | RsassaPkcs1V15Sha384 | EcdsaSha384 => &digest::SHA384,
        RsassaPssSha512 | RsassaPkcs1V15Sha512 | EcdsaSha512 => &digest::SHA512,
        Sm2dsa | MlDsaShake256 | Ed25519Sha512 | Ed25519PhSha512 => return None,
    })
}

fn rsa_encoding(alg: SigningAlgorithm) -> Option<&'static dyn signature::RsaEncoding> {
    use SigningAlgorithm::*;
    Some(match alg {
        RsassaPssSha256 => &signature::RSA_PSS_SHA256,
        RsassaPssSha384 => &signature::RSA_PSS_SHA384,
        RsassaPssSha512 => &signature::RSA_PSS_SHA512,
        RsassaPkcs1V15Sha256 => &signature::RSA_PKCS1_SHA256,
        RsassaPkcs1V15Sha384 => &signature::RSA_PKCS1_SHA384,
        RsassaPkcs1V15Sha512 => &signature::RSA_PKCS1_SHA512,
        _ => return None,
    })
}

fn verification(
    spec: KeySpec,
    alg: SigningAlgorithm,
) -> Option<&'static dyn VerificationAlgorithm> {
    use SigningAlgorithm::*;
    Some(match (spec, alg) {
        (KeySpec::EccNistP256, EcdsaSha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (KeySpec::EccNistP384, EcdsaSha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (KeySpec::EccNistP521, EcdsaSha512) => &signature::ECDSA_P521_SHA512_ASN1,
        (KeySpec::EccSecgP256k1, EcdsaSha256) => &signature::ECDSA_P256K1_SHA256_ASN1,
        (_, RsassaPssSha256) => &signature::RSA_PSS_2048_8192_SHA256,
        (_, RsassaPssSha384) => &signature::RSA_PSS_2048_8192_SHA384,
        (_, RsassaPssSha512) => &signature::RSA_PSS_2048_8192_SHA512,
        (_, RsassaPkcs1V15Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (_, RsassaPkcs1V15Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (_, RsassaPkcs1V15Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

/// Whether kmscks makes signing keys of this spec.
pub const fn is_signing_spec(spec: KeySpec) -> bool {
    !spec.signing_algorithms().is_empty()
}

/// Fresh PKCS#8 (v1) DER of a new key of a signing spec.
pub fn generate_pkcs8(spec: KeySpec) -> Result<SecretBytes> {
    if let Some(size) = rsa_size(spec) {
        let der: Pkcs8V1Der<'static> = RsaKeyPair::generate(size)
            .and_then(|k| k.as_der())
            .map_err(|_| internal("RSA key generation failed"))?;
        Ok(SecretBytes::from_slice(der.as_ref()))
    } else if let Some(alg) = ecdsa_algorithm(spec) {
        let doc = EcdsaKeyPair::generate(alg)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|_| internal("EC key generation failed"))?;
        Ok(SecretBytes::from_slice(doc.as_ref()))
    } else {
        Err(internal(&format!("no signing key of spec {spec}")))
    }
}

impl SigningKey {
    /// Parses stored PKCS#8 of a key of `spec`.
    pub fn parse(spec: KeySpec, pkcs8: &[u8]) -> Result<SigningKey> {
        let bad = || internal(&format!("stored material is not a {spec} key"));
        let (pair, public_der, raw_public) = if rsa_size(spec).is_some() {
            let k = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| bad())?;
            let der: PublicKeyX509Der<'static> = k.public_key().as_der().map_err(|_| bad())?;
            let raw = k.public_key().as_ref().to_vec();
            (Pair::Rsa(k), der.as_ref().to_vec(), raw)
        } else if let Some(alg) = ecdsa_algorithm(spec) {
            let k = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(|_| bad())?;
            let der: PublicKeyX509Der<'static> = k.public_key().as_der().map_err(|_| bad())?;
            let raw = k.public_key().as_ref().to_vec();
            (Pair::Ecdsa(k), der.as_ref().to_vec(), raw)
        } else {
            return Err(bad());
        };
        let verifiers = spec
            .signing_algorithms()
            .iter()
            .map(|&a| {
                let v = verification(spec, a).ok_or_else(bad)?;
                let parsed = ParsedPublicKey::new(v, &raw_public).map_err(|_| bad())?;
                Ok((a, parsed))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SigningKey {
            spec,
            pair,
            public_der,
            verifiers,
        })
    }

    /// The key's spec.
    pub const fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The public key, DER SubjectPublicKeyInfo.
    pub fn public_der(&self) -> &[u8] {
        &self.public_der
    }

    /// Checks `alg` against the key and the message against its type; the digest to sign.
    fn prepare(
        &self,
        alg: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
        arn: &str,
    ) -> Result<Digest> {
        if !self.spec.signing_algorithms().contains(&alg) {
            return Err(err!(
                InvalidKeyUsageException,
                "{arn} key spec is {} which is not valid for SigningAlgorithm {alg}.",
                self.spec
            ));
        }
        // Invariant: every algorithm a key of a signing spec allows has a digest.
        let d = digest_of(alg).ok_or_else(|| internal("algorithm without a digest"))?;
        match message_type {
            MessageType::Raw => {
                if message.len() > MESSAGE_LEN.1 {
                    return Err(KmsError::validation_of_secret(
                        "message",
                        Constraint::MaxLength(MESSAGE_LEN.1),
                    ));
                }
                Ok(digest::digest(d, message))
            }
            MessageType::Digest => Digest::import_less_safe(message, d).map_err(|_| {
                err!(
                    ValidationException,
                    "Digest is invalid length for algorithm {alg}: {} bytes, {} expected.",
                    message.len(),
                    d.output_len()
                )
            }),
            MessageType::ExternalMu => Err(err!(
                ValidationException,
                "MessageType EXTERNAL_MU is valid for ML-DSA keys only."
            )),
        }
    }

    /// Signs `message` (of `message_type`) with `alg` for the key `arn`.
    pub fn sign(
        &self,
        alg: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
        arn: &str,
    ) -> Result<Vec<u8>> {
        let d = self.prepare(alg, message_type, message, arn)?;
        let failed = |_| internal("signing failed");
        match &self.pair {
            Pair::Rsa(k) => {
                // Invariant: the key's algorithms are RSA ones.
                let enc = rsa_encoding(alg).ok_or_else(|| internal("not an RSA algorithm"))?;
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign_digest(enc, &d, &mut sig).map_err(failed)?;
                Ok(sig)
            }
            Pair::Ecdsa(k) => Ok(k.sign_digest(&d).map_err(failed)?.as_ref().to_vec()),
        }
    }

    /// Verifies `signature` of `message` (of `message_type`) with `alg`: `Ok(false)` when it
    /// does not verify.
    pub fn verify(
        &self,
        alg: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
        signature: &[u8],
        arn: &str,
    ) -> Result<bool> {
        let d = self.prepare(alg, message_type, message, arn)?;
        let Some((_, key)) = self.verifiers.iter().find(|(a, _)| *a == alg) else {
            return Err(internal("no verifier for an allowed algorithm"));
        };
        Ok(key.verify_digest_sig(&d, signature).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signing_spec_signs_and_verifies_raw_and_digest_messages_with_each_of_its_algorithms() {
        for &spec in KeySpec::ALL.iter().filter(|s| is_signing_spec(**s)) {
            if spec == KeySpec::Rsa4096 {
                continue; // slow to generate in debug builds; the integration tests make one
            }
            let pkcs8 = generate_pkcs8(spec).unwrap();
            let key = SigningKey::parse(spec, pkcs8.expose()).unwrap();
            assert_eq!(key.spec(), spec);
            for &alg in spec.signing_algorithms() {
                let sig = key.sign(alg, MessageType::Raw, b"hello", "arn").unwrap();
                assert!(key
                    .verify(alg, MessageType::Raw, b"hello", &sig, "arn")
                    .unwrap());
                assert!(!key
                    .verify(alg, MessageType::Raw, b"hellp", &sig, "arn")
                    .unwrap());
                let d = digest::digest(digest_of(alg).unwrap(), b"hello");
                assert!(key
                    .verify(alg, MessageType::Digest, d.as_ref(), &sig, "arn")
                    .unwrap());
                let by_digest = key
                    .sign(alg, MessageType::Digest, d.as_ref(), "arn")
                    .unwrap();
                assert!(key
                    .verify(alg, MessageType::Raw, b"hello", &by_digest, "arn")
                    .unwrap());
            }
        }
    }

    #[test]
    fn a_wrong_algorithm_is_invalid_key_usage_and_a_wrong_digest_length_a_validation_error() {
        let spec = KeySpec::EccNistP256;
        let key = SigningKey::parse(spec, generate_pkcs8(spec).unwrap().expose()).unwrap();
        let e = key
            .sign(SigningAlgorithm::EcdsaSha384, MessageType::Raw, b"m", "arn")
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidKeyUsageException);
        let e = key
            .sign(
                SigningAlgorithm::EcdsaSha256,
                MessageType::Digest,
                &[0; 31],
                "arn",
            )
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::ValidationException);
    }
}
