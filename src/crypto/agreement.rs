//! Elliptic-curve keys of the default key store made for KEY_AGREEMENT: DeriveSharedSecret
//! with ECDH on the NIST curves, as AWS does it — the peer's public key given as DER
//! SubjectPublicKeyInfo of the key's curve, the answer the raw shared secret (the x
//! coordinate of the shared point, NIST SP 800-56A's Z), no key derivation applied.
//!
//! Why apart from `signing`: the same PKCS#8 material as an ECDSA key of the curve, but
//! aws-lc-rs serves ECDH with another key type (`agreement::PrivateKey`). Parsed once when
//! the data plane places the key; a request parses only the peer's public key.

use aws_lc_rs::agreement::{self, Algorithm, UnparsedPublicKey, ECDH_P256, ECDH_P384, ECDH_P521};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};

use crate::err;
use crate::error::Result;
use crate::secret::SecretBytes;
use crate::types::KeySpec;

/// A parsed key agreement key.
pub struct AgreementKey {
    spec: KeySpec,
    private: agreement::PrivateKey,
    /// DER SubjectPublicKeyInfo.
    public_der: Vec<u8>,
}

fn ecdh(spec: KeySpec) -> Option<&'static Algorithm> {
    Some(match spec {
        KeySpec::EccNistP256 => &ECDH_P256,
        KeySpec::EccNistP384 => &ECDH_P384,
        KeySpec::EccNistP521 => &ECDH_P521,
        _ => return None,
    })
}

/// Whether kmscks makes KEY_AGREEMENT keys of this spec.
pub fn is_agreement_spec(spec: KeySpec) -> bool {
    ecdh(spec).is_some()
}

/// The first byte of DER SubjectPublicKeyInfo (a SEQUENCE); a bare SEC1 point, which
/// aws-lc-rs would also take, starts with 0x02, 0x03 or 0x04 and is not AWS's format.
const DER_SEQUENCE: u8 = 0x30;

impl AgreementKey {
    /// Parses stored PKCS#8 of a key of `spec` (as `signing::generate_pkcs8` makes it).
    pub fn parse(spec: KeySpec, pkcs8: &[u8]) -> Result<AgreementKey> {
        let bad = || err!(KMSInternalException, "stored material is not a {spec} key");
        let alg = ecdh(spec).ok_or_else(bad)?;
        let private = agreement::PrivateKey::from_private_key_der(alg, pkcs8).map_err(|_| bad())?;
        let der: PublicKeyX509Der<'static> = private
            .compute_public_key()
            .and_then(|p| p.as_der())
            .map_err(|_| bad())?;
        Ok(AgreementKey {
            spec,
            private,
            public_der: der.as_ref().to_vec(),
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

    /// The ECDH shared secret with the peer whose public key is `peer_der` (DER
    /// SubjectPublicKeyInfo); `ValidationException` when it is not a public key of the key's
    /// curve.
    pub fn derive(&self, peer_der: &[u8]) -> Result<SecretBytes> {
        let refused = || {
            err!(
                ValidationException,
                "PublicKey is not a DER-encoded X.509 SubjectPublicKeyInfo of a {} public key",
                self.spec
            )
        };
        if peer_der.first() != Some(&DER_SEQUENCE) {
            return Err(refused());
        }
        let peer = UnparsedPublicKey::new(self.private.algorithm(), peer_der);
        agreement::agree(&self.private, peer, (), |z| Ok(SecretBytes::from_slice(z)))
            .map_err(|()| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signing::generate_pkcs8;
    use crate::error::ErrorKind;

    fn key(spec: KeySpec) -> AgreementKey {
        AgreementKey::parse(spec, generate_pkcs8(spec).unwrap().expose()).unwrap()
    }

    #[test]
    fn both_sides_derive_the_same_secret_on_each_nist_curve() {
        for (spec, len) in [
            (KeySpec::EccNistP256, 32),
            (KeySpec::EccNistP384, 48),
            (KeySpec::EccNistP521, 66),
        ] {
            let (a, b) = (key(spec), key(spec));
            let ab = a.derive(b.public_der()).unwrap();
            let ba = b.derive(a.public_der()).unwrap();
            assert_eq!(ab.expose(), ba.expose());
            assert_eq!(ab.len(), len);
        }
    }

    #[test]
    fn a_public_key_of_another_curve_garbage_or_a_bare_point_is_a_validation_error() {
        let a = key(KeySpec::EccNistP256);
        let other = key(KeySpec::EccNistP384);
        for peer in [other.public_der(), b"garbage".as_slice(), &[], &[0x30, 0x03, 1, 2, 3]] {
            let e = a.derive(peer).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValidationException);
        }
        // The uncompressed point at the end of the SPKI, alone, is not AWS's format.
        let b = key(KeySpec::EccNistP256);
        let point = &b.public_der()[b.public_der().len() - 65..];
        assert_eq!(point[0], 4);
        assert!(a.derive(point).is_err());
        assert!(AgreementKey::parse(KeySpec::EccSecgP256k1, &[0; 8]).is_err());
    }
}
