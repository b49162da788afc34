//! [`PkiError`]: what is wrong with a key, a CSR or a certificate, worded for the user. Its own
//! file because every other part of the PKI returns it and none of them maps it to an AWS
//! exception (the caller does).

use std::fmt;

/// What went wrong with a key, a CSR or a certificate. `what` fields name the input
/// ("trust anchor", "signed cluster certificate", "cluster CSR").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkiError {
    /// The signature of a certificate (or CSR) does not verify under its signer's public key.
    BadSignature {
        /// Which input's signature failed.
        what: &'static str,
    },
    /// rcgen or aws-lc-rs failed to generate a key, CSR or certificate.
    Generation(String),
    /// The signed certificate's issuer is not the trust anchor's subject.
    IssuerMismatch {
        /// Issuer of the signed certificate, as text.
        issuer: String,
        /// Subject of the trust anchor, as text.
        anchor_subject: String,
    },
    /// A PEM block parsed, but its DER is not an X.509 certificate.
    MalformedCertificate {
        /// Which input.
        what: &'static str,
        /// The parse failure.
        reason: String,
    },
    /// A PEM block parsed, but its DER is not a PKCS#10 certification request.
    MalformedCsr(String),
    /// The PKCS#8 bytes are not an ECDSA P-256 private key.
    MalformedKey(String),
    /// The text is not PEM of the expected kind.
    MalformedPem {
        /// Which input.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The trust anchor is not a CA certificate.
    NotACa(String),
    /// The signed certificate does not certify the CSR's public key.
    PublicKeyMismatch,
    /// A signature or key algorithm this module does not verify.
    UnsupportedAlgorithm {
        /// Which input.
        what: &'static str,
        /// The algorithm, as an OID or a description.
        algorithm: String,
    },
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiError::BadSignature { what } => write!(
                f,
                "the signature of the {what} does not verify under its issuer's public key"
            ),
            PkiError::Generation(reason) => write!(f, "PKI generation failed: {reason}"),
            PkiError::IssuerMismatch {
                issuer,
                anchor_subject,
            } => write!(
                f,
                "the signed cluster certificate was issued by \"{issuer}\", \
                 but the trust anchor's subject is \"{anchor_subject}\""
            ),
            PkiError::MalformedCertificate { what, reason } => {
                write!(f, "the {what} is not a valid X.509 certificate: {reason}")
            }
            PkiError::MalformedCsr(reason) => {
                write!(
                    f,
                    "the cluster CSR is not a valid PKCS#10 request: {reason}"
                )
            }
            PkiError::MalformedKey(reason) => {
                write!(
                    f,
                    "the cluster key is not a PKCS#8 ECDSA P-256 key: {reason}"
                )
            }
            PkiError::MalformedPem { what, reason } => {
                write!(f, "the {what} is not valid PEM: {reason}")
            }
            PkiError::NotACa(reason) => {
                write!(f, "the trust anchor is not a CA certificate: {reason}")
            }
            PkiError::PublicKeyMismatch => f.write_str(
                "the signed cluster certificate does not certify the cluster CSR's public key",
            ),
            PkiError::UnsupportedAlgorithm { what, algorithm } => {
                write!(f, "unsupported algorithm {algorithm} in the {what}")
            }
        }
    }
}

impl std::error::Error for PkiError {}

pub(super) fn generation(e: impl fmt::Display) -> PkiError {
    PkiError::Generation(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_input_and_the_problem() {
        let e = PkiError::BadSignature {
            what: "signed cluster certificate",
        };
        assert_eq!(
            e.to_string(),
            "the signature of the signed cluster certificate does not verify under its \
             issuer's public key"
        );
        let e = PkiError::MalformedPem {
            what: "trust anchor",
            reason: "no \"-----BEGIN \" line".into(),
        };
        assert_eq!(
            e.to_string(),
            "the trust anchor is not valid PEM: no \"-----BEGIN \" line"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(PkiError::PublicKeyMismatch);
        assert!(boxed.to_string().contains("CSR's public key"));
    }
}
