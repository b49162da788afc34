//! The cluster's own identity: its ECDSA P-256 key ([`ClusterKey`], a secret kept as PKCS#8)
//! and the cluster CSR it signs ([`cluster_csr_pem`]). Separate from the CA and from the checks
//! because it is the only part that holds the cluster's secret.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair};
use rcgen::{CertificateParams, DnType, KeyPair};
use zeroize::Zeroizing;

use super::error::{generation, PkiError};
use crate::secret::SecretBytes;

/// The cluster's private key: ECDSA P-256, kept as PKCS#8 DER in a zeroizing container.
///
/// Neither `Clone` nor `Debug`-revealing; the caller stores [`pkcs8`](ClusterKey::pkcs8)
/// wrapped, and rebuilds the key with [`from_pkcs8`](ClusterKey::from_pkcs8).
pub struct ClusterKey {
    pkcs8: SecretBytes,
}

impl ClusterKey {
    /// A fresh random P-256 key.
    pub fn generate() -> ClusterKey {
        let doc = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        // Generating a P-256 key can only fail when the system RNG does.
        .expect("system randomness unavailable");
        ClusterKey {
            pkcs8: SecretBytes::from_slice(doc.as_ref()),
        }
    }

    /// Takes a key back from its PKCS#8 DER, checking that it is an ECDSA P-256 key.
    #[cfg(test)]
    pub fn from_pkcs8(pkcs8: SecretBytes) -> Result<ClusterKey, PkiError> {
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.expose())
            .map_err(|e| PkiError::MalformedKey(e.to_string()))?;
        Ok(ClusterKey { pkcs8 })
    }

    /// The PKCS#8 DER of the key (to be stored wrapped, never in the clear).
    pub fn pkcs8(&self) -> &SecretBytes {
        &self.pkcs8
    }

    /// An rcgen signing key, zeroized when dropped.
    fn signing_key(&self) -> Result<Zeroizing<KeyPair>, PkiError> {
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &self.pkcs8.expose().into(),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .map_err(|e| PkiError::MalformedKey(e.to_string()))?;
        Ok(Zeroizing::new(key))
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(ECDSA P-256, <redacted>)")
    }
}

/// The cluster CSR (PEM, PKCS#10) for `cluster_id`, signed by `key`. Its subject is
/// `O=kmscks simulated CloudHSM, CN=HSM:<cluster_id>`. The signature is randomized, so two calls
/// give different PEM, but always with the same subject and public key.
pub fn cluster_csr_pem(key: &ClusterKey, cluster_id: &str) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "kmscks simulated CloudHSM");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("HSM:{cluster_id}"));
    let signing_key = key.signing_key()?;
    params
        .serialize_request(&*signing_key)
        .and_then(|csr| csr.pem())
        .map_err(generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsm::pki::fixtures::{csr_public_key, der_of};
    use crate::hsm::pki::parse::parse_csr;

    #[test]
    fn csr_carries_the_cluster_key_and_cluster_id() {
        let key = ClusterKey::generate();
        let a = cluster_csr_pem(&key, "cluster-1").unwrap();
        let b = cluster_csr_pem(&key, "cluster-1").unwrap();
        assert_eq!(csr_public_key(&a), csr_public_key(&b));
        let other = cluster_csr_pem(&ClusterKey::generate(), "cluster-1").unwrap();
        assert_ne!(csr_public_key(&a), csr_public_key(&other));

        let der = der_of(&a);
        let csr = parse_csr(&der).unwrap();
        let cn: Vec<_> = csr
            .certification_request_info
            .subject
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cn, ["HSM:cluster-1"]);
    }

    #[test]
    fn cluster_key_round_trips_through_pkcs8() {
        let key = ClusterKey::generate();
        let restored = ClusterKey::from_pkcs8(key.pkcs8().duplicate()).unwrap();
        assert_eq!(
            csr_public_key(&cluster_csr_pem(&key, "c").unwrap()),
            csr_public_key(&cluster_csr_pem(&restored, "c").unwrap())
        );
    }

    #[test]
    fn cluster_key_rejects_bad_pkcs8() {
        let err = ClusterKey::from_pkcs8(SecretBytes::from_slice(b"not a key")).unwrap_err();
        assert!(matches!(err, PkiError::MalformedKey(_)), "{err:?}");

        let p384 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let err = ClusterKey::from_pkcs8(SecretBytes::from_slice(p384.as_ref())).unwrap_err();
        assert!(matches!(err, PkiError::MalformedKey(_)), "{err:?}");
    }
}
