//! RSA keys of the default key store made for ENCRYPT_DECRYPT: Encrypt and Decrypt with
//! RSAES-OAEP as AWS pairs it with the key specs (SHA-1 or SHA-256, MGF1 with the same hash,
//! no label), over the raw RSA ciphertext — no kmscks blob header, so a ciphertext made with
//! GetPublicKey's public key by any tool decrypts here, and ours anywhere.
//!
//! Why apart from `signing`: the same PKCS#8 material, but another aws-lc-rs key type (an
//! `RsaKeyPair` cannot decrypt) and other rules (plaintext limits per algorithm instead of
//! message types). Parsed once when the data plane places the key, with the public key
//! parsed for encryption beside it, so neither operation parses anything per call.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};

use crate::err;
use crate::error::{ErrorKind, KmsError, Result};
use crate::secret::SecretBytes;
use crate::types::{EncryptionAlgorithm, KeySpec};

/// A parsed RSA decryption key with its public half.
pub struct DecryptingKey {
    spec: KeySpec,
    private: OaepPrivateDecryptingKey,
    public: OaepPublicEncryptingKey,
    /// DER SubjectPublicKeyInfo.
    public_der: Vec<u8>,
}

fn oaep(alg: EncryptionAlgorithm) -> Option<&'static OaepAlgorithm> {
    match alg {
        EncryptionAlgorithm::RsaesOaepSha1 => Some(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithm::RsaesOaepSha256 => Some(&OAEP_SHA256_MGF1SHA256),
        EncryptionAlgorithm::SymmetricDefault | EncryptionAlgorithm::Sm2Pke => None,
    }
}

/// Whether kmscks makes ENCRYPT_DECRYPT keys of this spec with RSAES-OAEP.
pub fn is_rsa_encryption_spec(spec: KeySpec) -> bool {
    spec.encryption_algorithms()
        .iter()
        .any(|&a| oaep(a).is_some())
}

impl DecryptingKey {
    /// Parses stored PKCS#8 of a key of `spec` (as `signing::generate_pkcs8` makes it).
    pub fn parse(spec: KeySpec, pkcs8: &[u8]) -> Result<DecryptingKey> {
        let bad = || err!(KMSInternalException, "stored material is not a {spec} key");
        if !is_rsa_encryption_spec(spec) {
            return Err(bad());
        }
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| bad())?;
        let public_key = key.public_key();
        let der: PublicKeyX509Der<'static> = public_key.as_der().map_err(|_| bad())?;
        Ok(DecryptingKey {
            spec,
            private: OaepPrivateDecryptingKey::new(key).map_err(|_| bad())?,
            public: OaepPublicEncryptingKey::new(public_key).map_err(|_| bad())?,
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

    /// The OAEP parameters of `alg`, or AWS's `InvalidKeyUsageException` when the key does not
    /// allow it.
    fn algorithm(&self, alg: EncryptionAlgorithm, arn: &str) -> Result<&'static OaepAlgorithm> {
        match oaep(alg) {
            Some(a) if self.spec.encryption_algorithms().contains(&alg) => Ok(a),
            _ => Err(err!(
                InvalidKeyUsageException,
                "{arn} key spec is {} which is not valid for EncryptionAlgorithm {alg}.",
                self.spec
            )),
        }
    }

    /// The longest plaintext `alg` encrypts under this key: the modulus less twice the
    /// digest and two bytes (RFC 8017, 7.1.1).
    pub fn max_plaintext(&self, alg: EncryptionAlgorithm, arn: &str) -> Result<usize> {
        Ok(self.public.max_plaintext_size(self.algorithm(alg, arn)?))
    }

    /// Checks that `alg` suits the key and that a plaintext of `len` bytes fits it
    /// (`ValidationException` when longer than the algorithm allows); its OAEP parameters.
    pub fn check_plaintext(
        &self,
        alg: EncryptionAlgorithm,
        len: usize,
        arn: &str,
    ) -> Result<&'static OaepAlgorithm> {
        let oaep = self.algorithm(alg, arn)?;
        let max = self.public.max_plaintext_size(oaep);
        if len > max {
            return Err(err!(
                ValidationException,
                "Plaintext of {len} bytes is too long for {alg} with key spec {}: at most {max} \
                 bytes",
                self.spec
            ));
        }
        Ok(oaep)
    }

    /// Encrypt: the raw RSAES-OAEP ciphertext of `plaintext` (as long as the modulus);
    /// `ValidationException` when the plaintext is longer than the algorithm allows.
    pub fn encrypt(&self, alg: EncryptionAlgorithm, plaintext: &[u8], arn: &str) -> Result<Vec<u8>> {
        let oaep = self.check_plaintext(alg, plaintext.len(), arn)?;
        let mut out = vec![0u8; self.public.ciphertext_size()];
        let n = self
            .public
            .encrypt(oaep, plaintext, &mut out, None)
            .map_err(|_| err!(KMSInternalException, "RSA encryption failed"))?
            .len();
        out.truncate(n);
        Ok(out)
    }

    /// Decrypt: the plaintext of a raw RSAES-OAEP `ciphertext`; any failure (wrong length,
    /// wrong algorithm, another key's, tampered) is AWS's `InvalidCiphertextException`, with
    /// AWS's empty message, since which check failed must not be told.
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
        arn: &str,
    ) -> Result<SecretBytes> {
        let oaep = self.algorithm(alg, arn)?;
        let mut out = SecretBytes::zeroed(self.private.min_output_size());
        let n = self
            .private
            .decrypt(oaep, ciphertext, out.expose_mut(), None)
            .map_err(|_| KmsError::new(ErrorKind::InvalidCiphertextException, ""))?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signing::generate_pkcs8;

    fn key() -> DecryptingKey {
        DecryptingKey::parse(
            KeySpec::Rsa2048,
            generate_pkcs8(KeySpec::Rsa2048).unwrap().expose(),
        )
        .unwrap()
    }

    #[test]
    fn each_oaep_algorithm_round_trips_and_needs_the_same_algorithm_to_decrypt() {
        let k = key();
        for (alg, other) in [
            (EncryptionAlgorithm::RsaesOaepSha1, EncryptionAlgorithm::RsaesOaepSha256),
            (EncryptionAlgorithm::RsaesOaepSha256, EncryptionAlgorithm::RsaesOaepSha1),
        ] {
            let c = k.encrypt(alg, b"secret", "arn").unwrap();
            assert_eq!(c.len(), 256);
            assert_eq!(k.decrypt(alg, &c, "arn").unwrap().expose(), b"secret");
            let e = k.decrypt(other, &c, "arn").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidCiphertextException);
            assert_eq!(e.message(), "");
        }
    }

    #[test]
    fn plaintext_limits_are_awss_per_spec_and_algorithm() {
        let k = key();
        let sha1 = EncryptionAlgorithm::RsaesOaepSha1;
        let sha256 = EncryptionAlgorithm::RsaesOaepSha256;
        assert_eq!(k.max_plaintext(sha1, "arn").unwrap(), 214);
        assert_eq!(k.max_plaintext(sha256, "arn").unwrap(), 190);
        assert!(k.encrypt(sha256, &[1; 190], "arn").is_ok());
        let e = k.encrypt(sha256, &[1; 191], "arn").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationException);
    }

    #[test]
    fn the_symmetric_algorithm_is_invalid_key_usage_and_a_tampered_ciphertext_invalid() {
        let k = key();
        let e = k
            .encrypt(EncryptionAlgorithm::SymmetricDefault, b"x", "arn")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidKeyUsageException);
        let alg = EncryptionAlgorithm::RsaesOaepSha256;
        let mut c = k.encrypt(alg, b"x", "arn").unwrap();
        c[100] ^= 1;
        assert_eq!(
            k.decrypt(alg, &c, "arn").unwrap_err().kind(),
            ErrorKind::InvalidCiphertextException
        );
        assert!(k.decrypt(alg, &c[..255], "arn").is_err());
        assert!(DecryptingKey::parse(KeySpec::EccNistP256, &[0; 8]).is_err());
    }
}
