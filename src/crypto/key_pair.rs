//! Data key pairs (GenerateDataKeyPair): a fresh asymmetric key pair for use outside kmscks,
//! its private key as PKCS#8 DER and its public key as DER SubjectPublicKeyInfo, the encodings
//! AWS returns.
//!
//! Apart from [`signing`](super::signing), which parses *stored* keys once for the data plane:
//! a data key pair is generated, encoded and handed out, never kept. Generating an RSA pair
//! takes milliseconds to a second, which is why the operation runs off the daemon's event loop
//! (see the op table). The private key goes straight from aws-lc-rs's zeroizing document into
//! a [`SecretBytes`].

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use crate::err;
use crate::error::Result;
use crate::secret::SecretBytes;
use crate::types::DataKeyPairSpec;

/// A freshly generated data key pair.
pub struct DataKeyPair {
    /// PKCS#8 (RFC 5208) DER of the private key.
    pub private_key: SecretBytes,
    /// DER SubjectPublicKeyInfo (RFC 5280) of the public key.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for DataKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyPair")
            .field("private_key", &"<redacted>")
            .field("public_key_len", &self.public_key.len())
            .finish()
    }
}

/// How a spec's pair is made, or why kmscks does not make it.
enum Kind {
    Rsa(KeySize),
    Ecdsa(&'static signature::EcdsaSigningAlgorithm),
    Ed25519,
}

fn kind(spec: DataKeyPairSpec) -> Result<Kind> {
    use DataKeyPairSpec::*;
    Ok(match spec {
        Rsa2048 => Kind::Rsa(KeySize::Rsa2048),
        Rsa3072 => Kind::Rsa(KeySize::Rsa3072),
        Rsa4096 => Kind::Rsa(KeySize::Rsa4096),
        EccNistP256 => Kind::Ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        EccNistP384 => Kind::Ecdsa(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        EccNistP521 => Kind::Ecdsa(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
        EccSecgP256k1 => Kind::Ecdsa(&signature::ECDSA_P256K1_SHA256_ASN1_SIGNING),
        EccNistEdwards25519 => Kind::Ed25519,
        // AWS offers SM2 in its China Regions only; kmscks simulates none of them.
        Sm2 => {
            return Err(err!(
                UnsupportedOperationException,
                "KeyPairSpec SM2 is available in the AWS China Regions only"
            ))
        }
    })
}

/// Checks the spec without generating anything (DryRun, and before the key checks).
pub fn check_spec(spec: DataKeyPairSpec) -> Result<()> {
    kind(spec).map(drop)
}

fn failed(spec: DataKeyPairSpec) -> crate::error::KmsError {
    err!(
        KMSInternalException,
        "generating a {spec} data key pair failed"
    )
}

/// A fresh pair of `spec`: randomness is aws-lc's, drawn by the key generation itself.
pub fn generate(spec: DataKeyPairSpec) -> Result<DataKeyPair> {
    let bad = |_| failed(spec);
    match kind(spec)? {
        Kind::Rsa(size) => {
            let pair = RsaKeyPair::generate(size).map_err(bad)?;
            let private: Pkcs8V1Der<'static> = pair.as_der().map_err(bad)?;
            let public: PublicKeyX509Der<'static> = pair.public_key().as_der().map_err(bad)?;
            Ok(DataKeyPair {
                private_key: SecretBytes::from_slice(private.as_ref()),
                public_key: public.as_ref().to_vec(),
            })
        }
        Kind::Ecdsa(alg) => {
            let pair = EcdsaKeyPair::generate(alg).map_err(bad)?;
            let private = pair.to_pkcs8v1().map_err(bad)?;
            let public: PublicKeyX509Der<'static> = pair.public_key().as_der().map_err(bad)?;
            Ok(DataKeyPair {
                private_key: SecretBytes::from_slice(private.as_ref()),
                public_key: public.as_ref().to_vec(),
            })
        }
        Kind::Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(bad)?;
            let private = pair.to_pkcs8v1().map_err(bad)?;
            let public: PublicKeyX509Der<'static> = pair.public_key().as_der().map_err(bad)?;
            Ok(DataKeyPair {
                private_key: SecretBytes::from_slice(private.as_ref()),
                public_key: public.as_ref().to_vec(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};

    #[test]
    fn every_spec_but_sm2_makes_a_pair_whose_private_key_parses_back_to_its_public_key() {
        for &spec in DataKeyPairSpec::ALL {
            if spec == DataKeyPairSpec::Sm2 {
                assert!(check_spec(spec).is_err());
                continue;
            }
            // RSA_3072 and RSA_4096 take seconds in a debug build and go through the same
            // code as RSA_2048; the integration tests make them.
            if matches!(spec, DataKeyPairSpec::Rsa3072 | DataKeyPairSpec::Rsa4096) {
                continue;
            }
            let pair = generate(spec).unwrap();
            let pkcs8 = pair.private_key.expose();
            let public: Vec<u8> = match spec {
                DataKeyPairSpec::Rsa2048 => {
                    let k = RsaKeyPair::from_pkcs8(pkcs8).unwrap();
                    let der: PublicKeyX509Der<'static> = k.public_key().as_der().unwrap();
                    der.as_ref().to_vec()
                }
                DataKeyPairSpec::EccNistEdwards25519 => {
                    let k = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).unwrap();
                    let der: PublicKeyX509Der<'static> = k.public_key().as_der().unwrap();
                    der.as_ref().to_vec()
                }
                _ => {
                    let Kind::Ecdsa(alg) = kind(spec).unwrap() else {
                        unreachable!("the other specs are handled above")
                    };
                    let k = EcdsaKeyPair::from_pkcs8(alg, pkcs8).unwrap();
                    let der: PublicKeyX509Der<'static> = k.public_key().as_der().unwrap();
                    der.as_ref().to_vec()
                }
            };
            assert_eq!(public, pair.public_key, "{spec}");
        }
    }

    #[test]
    fn a_pair_signs_with_its_private_key_and_verifies_with_its_spki() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pair = generate(DataKeyPairSpec::EccNistP256).unwrap();
        let k = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pair.private_key.expose(),
        )
        .unwrap();
        let sig = k.sign(&rng, b"message").unwrap();
        let spki = aws_lc_rs::signature::ParsedPublicKey::new(
            &ECDSA_P256_SHA256_ASN1,
            &pair.public_key,
        )
        .unwrap();
        spki.verify_sig(b"message", sig.as_ref()).unwrap();

        let pair = generate(DataKeyPairSpec::EccNistEdwards25519).unwrap();
        let k = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pair.private_key.expose()).unwrap();
        let sig = k.sign(b"message");
        let raw = k.public_key().as_ref().to_vec();
        UnparsedPublicKey::new(&ED25519, &raw)
            .verify(b"message", sig.as_ref())
            .unwrap();
        assert!(pair.public_key.ends_with(&raw), "SPKI ends with the raw key");
    }

    #[test]
    fn two_pairs_differ_and_debug_never_shows_the_private_key() {
        let a = generate(DataKeyPairSpec::EccNistP256).unwrap();
        let b = generate(DataKeyPairSpec::EccNistP256).unwrap();
        assert_ne!(a.private_key.expose(), b.private_key.expose());
        let shown = format!("{a:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn sm2_is_refused_as_unsupported_naming_the_spec() {
        let e = generate(DataKeyPairSpec::Sm2).unwrap_err();
        assert_eq!(
            e.kind(),
            crate::error::ErrorKind::UnsupportedOperationException
        );
        assert!(e.message().contains("SM2"), "{e}");
    }
}
