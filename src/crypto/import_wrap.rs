//! The RSA side of importing key material: a fresh wrapping key pair per
//! GetParametersForImport, and the unwrapping of what the caller sealed under its public key
//! with one of AWS's wrapping algorithms — RSAES-OAEP (SHA-1 or SHA-256, MGF1 with the same
//! hash) directly over the material, or RSA-AES key wrap (an ephemeral AES-256 key under
//! RSAES-OAEP, followed by the material under that key with AES key wrap with padding,
//! RFC 5649 — PKCS #11's `CKM_RSA_AES_KEY_WRAP`).
//!
//! Why here: it is cryptography that knows nothing of keys, states or tokens; `kms::import`
//! decides which algorithm a request may use and what the unwrapped bytes must be.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
use aws_lc_rs::rsa::{
    KeySize, OaepAlgorithm, OaepPrivateDecryptingKey, PrivateDecryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};

use crate::secret::SecretBytes;

/// The hash of RSAES-OAEP and of its mask generation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OaepHash {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl OaepHash {
    fn algorithm(self) -> &'static OaepAlgorithm {
        match self {
            OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
            OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
        }
    }
}

/// How the material was sealed under the wrapping public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealing {
    /// RSAES-OAEP over the material itself.
    Oaep(OaepHash),
    /// RSAES-OAEP over an AES-256 key, then AES key wrap with padding over the material.
    RsaAesKeyWrap(OaepHash),
}

/// Why sealed material did not open. Deliberately without detail: which step failed is no
/// business of a caller holding a wrong blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unopened;

impl fmt::Display for Unopened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the wrapped key material does not decrypt under the import's wrapping key")
    }
}

/// A wrapping key pair: its PKCS #8 private key (secret) and DER SubjectPublicKeyInfo.
pub struct WrappingKeyPair {
    /// The private key, PKCS #8 v1 DER.
    pub pkcs8: SecretBytes,
    /// The public key, DER SubjectPublicKeyInfo.
    pub public_der: Vec<u8>,
}

impl fmt::Debug for WrappingKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappingKeyPair")
            .field("pkcs8", &"<redacted>")
            .field("public_der_len", &self.public_der.len())
            .finish()
    }
}

/// Generates an RSA wrapping key pair of `bits` (2048, 3072 or 4096); for another size, or
/// when aws-lc fails to generate or serialise the key, says which.
pub fn generate(bits: u32) -> Result<WrappingKeyPair, &'static str> {
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => return Err("wrapping keys are RSA 2048, 3072 or 4096 bits"),
    };
    let key = PrivateDecryptingKey::generate(size).map_err(|_| "RSA key generation failed")?;
    let pkcs8 = key
        .as_der()
        .map_err(|_| "the RSA private key does not serialise as PKCS #8")?;
    let public = key
        .public_key()
        .as_der()
        .map_err(|_| "the RSA public key does not serialise as SPKI")?;
    Ok(WrappingKeyPair {
        pkcs8: SecretBytes::from_slice(pkcs8.as_ref()),
        public_der: public.as_ref().to_vec(),
    })
}

/// Opens `sealed` with the private key `pkcs8` (as [`generate`] made it).
pub fn open(pkcs8: &[u8], sealing: Sealing, sealed: &[u8]) -> Result<SecretBytes, Unopened> {
    let key = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| Unopened)?;
    let key = OaepPrivateDecryptingKey::new(key).map_err(|_| Unopened)?;
    let modulus = key.key_size_bytes();
    let oaep = |hash: OaepHash, input: &[u8]| -> Result<SecretBytes, Unopened> {
        let mut out = SecretBytes::zeroed(key.min_output_size());
        let n = key
            .decrypt(hash.algorithm(), input, out.expose_mut(), None)
            .map_err(|_| Unopened)?
            .len();
        out.truncate(n);
        Ok(out)
    };
    match sealing {
        Sealing::Oaep(hash) => oaep(hash, sealed),
        Sealing::RsaAesKeyWrap(hash) => {
            if sealed.len() <= modulus {
                return Err(Unopened);
            }
            let (wrapped_key, wrapped_material) = sealed.split_at(modulus);
            let aes = oaep(hash, wrapped_key)?;
            let kek = AesKek::new(&AES_256, aes.expose()).map_err(|_| Unopened)?;
            let mut out = SecretBytes::zeroed(wrapped_material.len());
            let n = kek
                .unwrap_with_padding(wrapped_material, out.expose_mut())
                .map_err(|_| Unopened)?
                .len();
            out.truncate(n);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey};

    use super::*;

    fn seal_oaep(public_der: &[u8], hash: OaepHash, data: &[u8]) -> Vec<u8> {
        let public = PublicEncryptingKey::from_der(public_der).unwrap();
        let public = OaepPublicEncryptingKey::new(public).unwrap();
        let mut out = vec![0; public.ciphertext_size()];
        let n = public
            .encrypt(hash.algorithm(), data, &mut out, None)
            .unwrap()
            .len();
        out.truncate(n);
        out
    }

    fn seal_rsa_aes(public_der: &[u8], hash: OaepHash, data: &[u8]) -> Vec<u8> {
        let aes = [7u8; 32];
        let mut sealed = seal_oaep(public_der, hash, &aes);
        let kek = AesKek::new(&AES_256, &aes).unwrap();
        let mut wrapped = vec![0; data.len() + 16];
        let n = kek.wrap_with_padding(data, &mut wrapped).unwrap().len();
        sealed.extend_from_slice(&wrapped[..n]);
        sealed
    }

    #[test]
    fn material_sealed_with_each_algorithm_opens_with_the_same_algorithm_only() {
        let pair = generate(2048).unwrap();
        let material = [0x5au8; 32];
        for hash in [OaepHash::Sha1, OaepHash::Sha256] {
            let other = match hash {
                OaepHash::Sha1 => OaepHash::Sha256,
                OaepHash::Sha256 => OaepHash::Sha1,
            };
            let sealed = seal_oaep(&pair.public_der, hash, &material);
            let opened = open(pair.pkcs8.expose(), Sealing::Oaep(hash), &sealed).unwrap();
            assert_eq!(opened.expose(), &material);
            assert_eq!(open(pair.pkcs8.expose(), Sealing::Oaep(other), &sealed).err(), Some(Unopened));

            let sealed = seal_rsa_aes(&pair.public_der, hash, &material);
            let opened =
                open(pair.pkcs8.expose(), Sealing::RsaAesKeyWrap(hash), &sealed).unwrap();
            assert_eq!(opened.expose(), &material);
            assert_eq!(open(pair.pkcs8.expose(), Sealing::Oaep(hash), &sealed).err(), Some(Unopened));
        }
    }

    #[test]
    fn a_tampered_or_truncated_blob_does_not_open() {
        let pair = generate(2048).unwrap();
        let mut sealed = seal_rsa_aes(&pair.public_der, OaepHash::Sha256, &[1u8; 32]);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        let sealing = Sealing::RsaAesKeyWrap(OaepHash::Sha256);
        assert_eq!(open(pair.pkcs8.expose(), sealing, &sealed).err(), Some(Unopened));
        assert_eq!(open(pair.pkcs8.expose(), sealing, &sealed[..256]).err(), Some(Unopened));
        assert_eq!(open(pair.pkcs8.expose(), sealing, &[]).err(), Some(Unopened));
        assert!(generate(1024).is_err());
    }

    #[test]
    fn the_wrapping_key_pair_debug_hides_the_private_key() {
        let pair = generate(2048).unwrap();
        let shown = format!("{pair:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&format!("{:?}", &pair.pkcs8.expose()[..8])), "{shown}");
    }
}
