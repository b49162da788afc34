//! The user's certificate authority ([`CertificateAuthority`]): it makes the trust anchor and
//! signs cluster CSRs, so tests and bootstrap can initialize a cluster with no outside tools.
//! Kept apart from the checks in `verify`, which must accept certificates from any CA (OpenSSL's
//! too), not only from this one.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime, Time};
use zeroize::Zeroizing;

use super::error::{generation, PkiError};
use super::pem::{decode_pem, CSR_LABELS};

/// Validity of the certificates [`CertificateAuthority`] issues (and of its own), in days.
const VALIDITY_DAYS: i64 = 3652;
/// How far back `notBefore` is set, so a certificate is valid at once despite clock skew.
const BACKDATE_DAYS: i64 = 1;

/// The key algorithm of a [`CertificateAuthority`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaKeyAlgorithm {
    /// ECDSA P-256 with SHA-256 signatures.
    EcdsaP256,
    /// ECDSA P-384 with SHA-384 signatures.
    #[cfg_attr(not(test), allow(dead_code))] // a CA users bring; only the tests make one
    EcdsaP384,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256 signatures (what `openssl req -newkey rsa:2048` makes).
    #[cfg_attr(not(test), allow(dead_code))] // a CA users bring; only the tests make one
    Rsa2048,
}

/// The user's own certificate authority (`customerCA.crt` and its key), for tests and for
/// bootstrap: it lets a cluster be initialized with no outside tools.
pub struct CertificateAuthority {
    key: Zeroizing<KeyPair>,
    params: CertificateParams,
    algorithm: CaKeyAlgorithm,
    common_name: String,
    certificate_pem: String,
}

impl CertificateAuthority {
    /// A new self-signed ECDSA P-256 CA named `CN=<common_name>`.
    pub fn generate(common_name: &str) -> Result<CertificateAuthority, PkiError> {
        CertificateAuthority::generate_with(common_name, CaKeyAlgorithm::EcdsaP256)
    }

    /// A new self-signed CA named `CN=<common_name>` with a key of the given algorithm.
    pub fn generate_with(
        common_name: &str,
        algorithm: CaKeyAlgorithm,
    ) -> Result<CertificateAuthority, PkiError> {
        let alg = match algorithm {
            CaKeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            CaKeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            CaKeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        };
        let key = Zeroizing::new(KeyPair::generate_for(alg).map_err(generation)?);
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params);
        let certificate_pem = params.self_signed(&*key).map_err(generation)?.pem();
        Ok(CertificateAuthority {
            key,
            params,
            algorithm,
            common_name: common_name.to_owned(),
            certificate_pem,
        })
    }

    /// The CA certificate, PEM (the trust anchor to give InitializeCluster and KMS).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The key algorithm.
    #[cfg(test)]
    pub fn algorithm(&self) -> CaKeyAlgorithm {
        self.algorithm
    }

    /// Signs a cluster CSR: returns the PEM of an end-entity certificate (not a CA) for the
    /// CSR's subject and public key, valid for ten years, issued by this CA.
    pub fn sign_csr(&self, csr_pem: &str) -> Result<String, PkiError> {
        let der = decode_pem(csr_pem, CSR_LABELS, "cluster CSR")?;
        let mut csr = CertificateSigningRequestParams::from_der(&der.as_slice().into())
            .map_err(|e| PkiError::MalformedCsr(e.to_string()))?;
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params.use_authority_key_identifier_extension = true;
        csr.params.serial_number = Some(random_serial());
        set_validity(&mut csr.params);
        let issuer = Issuer::from_params(&self.params, &*self.key);
        let cert = csr.signed_by(&issuer).map_err(generation)?;
        Ok(cert.pem())
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("common_name", &self.common_name)
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness unavailable");
    // A positive INTEGER whose first octet is not zero, so it encodes in exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

/// notBefore = today - [`BACKDATE_DAYS`], notAfter = today + [`VALIDITY_DAYS`] (UTC midnight).
fn set_validity(params: &mut CertificateParams) {
    let today = OffsetDateTime::now_utc().replace_time(Time::MIDNIGHT);
    // Ten years from any date a system clock gives stays far inside `time`'s range (year 9999).
    params.not_before = today - Duration::days(BACKDATE_DAYS);
    params.not_after = today + Duration::days(VALIDITY_DAYS);
}

#[cfg(test)]
mod tests {
    use x509_parser::oid_registry::{OID_PKCS1_SHA256WITHRSA, OID_SIG_ECDSA_WITH_SHA384};

    use super::*;
    use crate::hsm::pki::fixtures::{der_of, setup, setup_with};
    use crate::hsm::pki::parse::parse_certificate;
    use crate::hsm::pki::{verify_cluster_certificate, ClusterKey};

    #[test]
    fn generated_ca_signs_a_cluster_csr_that_verifies() {
        let s = setup();
        verify_cluster_certificate(&s.csr, &s.signed, s.ca.certificate_pem()).unwrap();

        let cert_der = der_of(&s.signed);
        let cert = parse_certificate(&cert_der, "test").unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "O=kmscks simulated CloudHSM, CN=HSM:cluster-abcdefghijk"
        );
        assert!(!cert.is_ca(), "the cluster certificate must not be a CA");
        assert_eq!(cert.issuer().to_string(), "CN=customerCA");
        let years = (cert.validity().not_after.timestamp()
            - cert.validity().not_before.timestamp())
            / (365 * 86_400);
        assert_eq!(years, 10);

        let anchor_der = der_of(s.ca.certificate_pem());
        let anchor = parse_certificate(&anchor_der, "test").unwrap();
        assert!(anchor.is_ca());
    }

    #[test]
    fn rsa_2048_ca_signs_a_csr_that_verifies() {
        let s = setup_with(CaKeyAlgorithm::Rsa2048);
        assert_eq!(s.ca.algorithm(), CaKeyAlgorithm::Rsa2048);
        verify_cluster_certificate(&s.csr, &s.signed, s.ca.certificate_pem()).unwrap();
        let der = der_of(&s.signed);
        let cert = parse_certificate(&der, "test").unwrap();
        assert_eq!(cert.signature_algorithm.algorithm, OID_PKCS1_SHA256WITHRSA);
        // An ECDSA CA with the same name cannot stand in for it, nor an RSA one.
        for alg in [CaKeyAlgorithm::EcdsaP256, CaKeyAlgorithm::Rsa2048] {
            let impostor = CertificateAuthority::generate_with("customerCA", alg).unwrap();
            let err = verify_cluster_certificate(&s.csr, &s.signed, impostor.certificate_pem())
                .unwrap_err();
            assert_eq!(
                err,
                PkiError::BadSignature {
                    what: "signed cluster certificate"
                }
            );
        }
    }

    #[test]
    fn p384_ca_signs_a_csr_that_verifies() {
        let s = setup_with(CaKeyAlgorithm::EcdsaP384);
        verify_cluster_certificate(&s.csr, &s.signed, s.ca.certificate_pem()).unwrap();
        let der = der_of(&s.signed);
        let cert = parse_certificate(&der, "test").unwrap();
        assert_eq!(
            cert.signature_algorithm.algorithm,
            OID_SIG_ECDSA_WITH_SHA384
        );
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = ClusterKey::generate();
        let dbg = format!("{key:?}");
        let bytes = key.pkcs8().expose();
        assert_eq!(dbg, "ClusterKey(ECDSA P-256, <redacted>)");
        assert!(!dbg.contains(&format!("{:?}", &bytes[..4])));

        let ca = CertificateAuthority::generate("customerCA").unwrap();
        let dbg = format!("{ca:?}");
        let ca_der = ca.key.serialize_der();
        assert!(
            dbg.contains("<redacted>") && dbg.contains("customerCA"),
            "{dbg}"
        );
        assert!(!dbg.contains(&format!("{:?}", &ca_der[..4])), "{dbg}");
        assert!(
            !dbg.contains("serialized_der") && !dbg.contains("PRIVATE"),
            "{dbg}"
        );
    }

    #[test]
    fn validity_runs_from_yesterday_midnight_utc_for_ten_years() {
        let before = OffsetDateTime::now_utc().date();
        let mut params = CertificateParams::default();
        set_validity(&mut params);
        let after = OffsetDateTime::now_utc().date();
        let not_before = params.not_before;
        assert_eq!(not_before.offset(), time::UtcOffset::UTC);
        assert_eq!(not_before.time(), Time::MIDNIGHT);
        assert!(
            [before, after].contains(&(not_before.date() + Duration::days(BACKDATE_DAYS))),
            "{not_before} is not the day before {before} or {after}"
        );
        assert_eq!(
            params.not_after - not_before,
            Duration::days(BACKDATE_DAYS + VALIDITY_DAYS)
        );
        assert_eq!(params.not_after.time(), Time::MIDNIGHT);
    }
}
