//! DER to parsed X.509 certificates and PKCS#10 requests, strictly (no trailing bytes, matching
//! signature algorithm fields), and certificate identity by DER ([`same_certificate`]): what
//! KMS and the cluster compare, never the PEM text.

use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use super::error::PkiError;
use super::pem::{decode_pem, CERT_LABELS};

/// Whether two PEM texts hold the same certificate (equal DER). Line wrapping, whitespace and
/// text around the PEM block do not matter. False if either does not parse.
pub fn same_certificate(a_pem: &str, b_pem: &str) -> bool {
    match (certificate_der(a_pem), certificate_der(b_pem)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The DER of the first certificate in `pem`, checked to parse as X.509.
pub(super) fn certificate_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    const WHAT: &str = "certificate";
    let der = decode_pem(pem, CERT_LABELS, WHAT)?;
    parse_certificate(&der, WHAT)?;
    Ok(der)
}

pub(super) fn parse_certificate<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, PkiError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::MalformedCertificate {
            what,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(PkiError::MalformedCertificate {
            what,
            reason: format!(
                "{} trailing bytes after the certificate at offset {}",
                rest.len(),
                der.len() - rest.len()
            ),
        });
    }
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(PkiError::MalformedCertificate {
            what,
            reason: "signatureAlgorithm differs from the TBSCertificate signature field".into(),
        });
    }
    Ok(cert)
}

pub(super) fn parse_csr(der: &[u8]) -> Result<X509CertificationRequest<'_>, PkiError> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| PkiError::MalformedCsr(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::MalformedCsr(format!(
            "{} trailing bytes after the request at offset {}",
            rest.len(),
            der.len() - rest.len()
        )));
    }
    Ok(csr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsm::pki::fixtures::{der_of, setup, to_pem};
    use crate::hsm::pki::error::PkiError;
    use crate::hsm::pki::verify_cluster_certificate;

    #[test]
    fn valid_pem_of_invalid_der_is_malformed_certificate_or_csr() {
        let s = setup();
        let junk = to_pem("CERTIFICATE", b"\x30\x03\x02\x01\x01", 64, "\n");
        let err = verify_cluster_certificate(&s.csr, &junk, s.ca.certificate_pem()).unwrap_err();
        assert!(
            matches!(
                err,
                PkiError::MalformedCertificate {
                    what: "signed cluster certificate",
                    ..
                }
            ),
            "{err:?}"
        );
        let junk_csr = to_pem("CERTIFICATE REQUEST", b"\x30\x00", 64, "\n");
        let err =
            verify_cluster_certificate(&junk_csr, &s.signed, s.ca.certificate_pem()).unwrap_err();
        assert!(matches!(err, PkiError::MalformedCsr(_)), "{err:?}");

        let mut trailing = der_of(&s.signed);
        trailing.extend_from_slice(&[0, 0]);
        let err = certificate_der(&to_pem("CERTIFICATE", &trailing, 64, "\n")).unwrap_err();
        assert!(err.to_string().contains("2 trailing bytes"), "{err}");
    }

    #[test]
    fn same_certificate_ignores_wrapping_and_whitespace() {
        let s = setup();
        let der = der_of(&s.signed);
        let rewrapped = to_pem("CERTIFICATE", &der, 76, "\r\n");
        let spaced = format!(
            "Certificate:\n    (an OpenSSL text dump)\n  {}  \n",
            to_pem("CERTIFICATE", &der, 17, " \n\t")
        );
        assert_ne!(rewrapped, s.signed);
        assert!(same_certificate(&s.signed, &rewrapped));
        assert!(same_certificate(&s.signed, &spaced));
        assert_eq!(certificate_der(&spaced).unwrap(), der);

        assert!(!same_certificate(&s.signed, s.ca.certificate_pem()));
        let resigned = s.ca.sign_csr(&s.csr).unwrap();
        assert!(
            !same_certificate(&s.signed, &resigned),
            "fresh serial each time"
        );
        assert!(!same_certificate(&s.signed, "garbage"));
        assert!(!same_certificate("garbage", "garbage"));
    }
}
