//! The check InitializeCluster makes ([`verify_cluster_certificate`]): the signed cluster
//! certificate certifies the cluster CSR's key and is signed by a trust anchor that is a CA.
//! Signature verification is aws-lc-rs's, for the algorithms CloudHSM users' CAs use.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use super::error::PkiError;
use super::parse::{parse_certificate, parse_csr};
use super::pem::{decode_pem, CERT_LABELS, CSR_LABELS};

/// Checks what InitializeCluster checks: `csr_pem`, `signed_cert_pem` and `trust_anchor_pem`
/// all parse; the trust anchor is a CA (basicConstraints CA=true, or self-signed when the
/// extension is missing); the signed certificate's issuer is the anchor's subject; its signature
/// verifies under the anchor's public key (ECDSA P-256/P-384 with SHA-256/384, RSA PKCS#1 v1.5
/// with SHA-256/384/512); and it certifies the CSR's public key.
///
/// Validity periods are not checked.
pub fn verify_cluster_certificate(
    csr_pem: &str,
    signed_cert_pem: &str,
    trust_anchor_pem: &str,
) -> Result<(), PkiError> {
    const CSR: &str = "cluster CSR";
    const CERT: &str = "signed cluster certificate";
    const ANCHOR: &str = "trust anchor";

    let csr_der = decode_pem(csr_pem, CSR_LABELS, CSR)?;
    let csr = parse_csr(&csr_der)?;
    let cert_der = decode_pem(signed_cert_pem, CERT_LABELS, CERT)?;
    let cert = parse_certificate(&cert_der, CERT)?;
    let anchor_der = decode_pem(trust_anchor_pem, CERT_LABELS, ANCHOR)?;
    let anchor = parse_certificate(&anchor_der, ANCHOR)?;

    let info = &csr.certification_request_info;
    verify_signature(
        &info.subject_pki,
        &csr.signature_algorithm,
        &csr.signature_value.data,
        info.raw,
        CSR,
    )?;

    check_is_ca(&anchor)?;

    if cert.issuer().as_raw() != anchor.subject().as_raw() {
        return Err(PkiError::IssuerMismatch {
            issuer: cert.issuer().to_string(),
            anchor_subject: anchor.subject().to_string(),
        });
    }
    verify_signature(
        anchor.public_key(),
        &cert.signature_algorithm,
        &cert.signature_value.data,
        cert.tbs_certificate.as_ref(),
        CERT,
    )?;

    if !same_public_key(cert.public_key(), &info.subject_pki) {
        return Err(PkiError::PublicKeyMismatch);
    }
    Ok(())
}

/// CA=true in basicConstraints, or, without the extension, a self-signed certificate.
fn check_is_ca(anchor: &X509Certificate<'_>) -> Result<(), PkiError> {
    let constraints = anchor
        .basic_constraints()
        .map_err(|e| PkiError::MalformedCertificate {
            what: "trust anchor",
            reason: format!("basicConstraints: {e}"),
        })?;
    match constraints {
        Some(bc) if bc.value.ca => Ok(()),
        Some(_) => Err(PkiError::NotACa("its basicConstraints say CA=false".into())),
        None => {
            if anchor.issuer().as_raw() != anchor.subject().as_raw() {
                return Err(PkiError::NotACa(
                    "it has no basicConstraints and is not self-issued".into(),
                ));
            }
            verify_signature(
                anchor.public_key(),
                &anchor.signature_algorithm,
                &anchor.signature_value.data,
                anchor.tbs_certificate.as_ref(),
                "trust anchor",
            )
            .map_err(|e| {
                PkiError::NotACa(format!(
                    "it has no basicConstraints and is not self-signed ({e})"
                ))
            })
        }
    }
}

/// Same key algorithm and same key bits (parameter encodings may differ between tools).
fn same_public_key(a: &SubjectPublicKeyInfo<'_>, b: &SubjectPublicKeyInfo<'_>) -> bool {
    a.algorithm.algorithm == b.algorithm.algorithm
        && a.subject_public_key.data == b.subject_public_key.data
        && ec_curve(a) == ec_curve(b)
}

fn ec_curve(key: &SubjectPublicKeyInfo<'_>) -> Option<String> {
    if key.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return None;
    }
    let params = key.algorithm.parameters.as_ref()?;
    params.as_oid().ok().map(|oid| oid.to_id_string())
}

/// Verifies `signature` over `message` under `signer`, with the algorithm `alg` names.
fn verify_signature(
    signer: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
    signature: &[u8],
    message: &[u8],
    what: &'static str,
) -> Result<(), PkiError> {
    let verification = verification_algorithm(signer, alg, what)?;
    UnparsedPublicKey::new(verification, &signer.subject_public_key.data)
        .verify(message, signature)
        .map_err(|_| PkiError::BadSignature { what })
}

fn verification_algorithm(
    signer: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
    what: &'static str,
) -> Result<&'static dyn VerificationAlgorithm, PkiError> {
    let sig = &alg.algorithm;
    let key_type = &signer.algorithm.algorithm;
    let unsupported = |algorithm: String| PkiError::UnsupportedAlgorithm { what, algorithm };
    let rsa: Option<&'static dyn VerificationAlgorithm> = if *sig == OID_PKCS1_SHA256WITHRSA {
        Some(&signature::RSA_PKCS1_2048_8192_SHA256)
    } else if *sig == OID_PKCS1_SHA384WITHRSA {
        Some(&signature::RSA_PKCS1_2048_8192_SHA384)
    } else if *sig == OID_PKCS1_SHA512WITHRSA {
        Some(&signature::RSA_PKCS1_2048_8192_SHA512)
    } else {
        None
    };
    // A signature whose algorithm does not fit the signer's key type was not made by that key.
    if let Some(rsa) = rsa {
        if *key_type != OID_PKCS1_RSAENCRYPTION {
            return Err(PkiError::BadSignature { what });
        }
        return Ok(rsa);
    }
    let sha384 = if *sig == OID_SIG_ECDSA_WITH_SHA256 {
        false
    } else if *sig == OID_SIG_ECDSA_WITH_SHA384 {
        true
    } else {
        return Err(unsupported(format!("signature {}", sig.to_id_string())));
    };
    if *key_type != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(PkiError::BadSignature { what });
    }
    let curve = signer
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    Ok(match (curve, sha384) {
        (Some(c), false) if c == OID_EC_P256 => &signature::ECDSA_P256_SHA256_ASN1,
        (Some(c), true) if c == OID_EC_P256 => &signature::ECDSA_P256_SHA384_ASN1,
        (Some(c), false) if c == OID_NIST_EC_P384 => &signature::ECDSA_P384_SHA256_ASN1,
        (Some(c), true) if c == OID_NIST_EC_P384 => &signature::ECDSA_P384_SHA384_ASN1,
        (Some(c), _) => return Err(unsupported(format!("EC curve {}", c.to_id_string()))),
        (None, _) => return Err(unsupported("EC key without a named curve".into())),
    })
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;
    use crate::hsm::pki::fixtures::{
        der_of, self_signed, setup, sign_with, to_pem, OPENSSL_CSR, OPENSSL_RSA_CA, OPENSSL_SIGNED,
    };
    use crate::hsm::pki::{cluster_csr_pem, CertificateAuthority, ClusterKey};

    #[test]
    fn certificate_from_another_ca_with_another_name_is_an_issuer_mismatch() {
        let s = setup();
        let other = CertificateAuthority::generate("someoneElsesCA").unwrap();
        let err =
            verify_cluster_certificate(&s.csr, &s.signed, other.certificate_pem()).unwrap_err();
        assert_eq!(
            err,
            PkiError::IssuerMismatch {
                issuer: "CN=customerCA".into(),
                anchor_subject: "CN=someoneElsesCA".into(),
            }
        );
    }

    #[test]
    fn certificate_from_another_ca_with_the_same_name_is_a_bad_signature() {
        let s = setup();
        let impostor = CertificateAuthority::generate("customerCA").unwrap();
        let err =
            verify_cluster_certificate(&s.csr, &s.signed, impostor.certificate_pem()).unwrap_err();
        assert_eq!(
            err,
            PkiError::BadSignature {
                what: "signed cluster certificate"
            }
        );
    }

    #[test]
    fn certificate_for_another_csr_is_a_public_key_mismatch() {
        let s = setup();
        let other_csr = cluster_csr_pem(&ClusterKey::generate(), "cluster-abcdefghijk").unwrap();
        let other_signed = s.ca.sign_csr(&other_csr).unwrap();
        let err =
            verify_cluster_certificate(&s.csr, &other_signed, s.ca.certificate_pem()).unwrap_err();
        assert_eq!(err, PkiError::PublicKeyMismatch);
        // The key is what matters: a fresh CSR from the same key still matches.
        let again = cluster_csr_pem(&s.key, "cluster-abcdefghijk").unwrap();
        verify_cluster_certificate(&again, &s.signed, s.ca.certificate_pem()).unwrap();
    }

    #[test]
    fn tampered_certificate_is_a_bad_signature() {
        let s = setup();
        let der = der_of(&s.signed);
        // Change one byte of the subject common name inside the TBS.
        let at = der
            .windows(5)
            .position(|w| w == b"HSM:c")
            .expect("CN in the certificate");
        let mut tampered = der.clone();
        tampered[at + 4] = b'd';
        let pem = to_pem("CERTIFICATE", &tampered, 64, "\n");
        let err = verify_cluster_certificate(&s.csr, &pem, s.ca.certificate_pem()).unwrap_err();
        assert_eq!(
            err,
            PkiError::BadSignature {
                what: "signed cluster certificate"
            }
        );
    }

    #[test]
    fn csr_with_a_broken_self_signature_is_rejected() {
        let s = setup();
        let mut der = der_of(&s.csr);
        let at = der.windows(5).position(|w| w == b"HSM:c").unwrap();
        der[at + 4] = b'd';
        let pem = to_pem("CERTIFICATE REQUEST", &der, 64, "\n");
        let err = verify_cluster_certificate(&pem, &s.signed, s.ca.certificate_pem()).unwrap_err();
        assert_eq!(
            err,
            PkiError::BadSignature {
                what: "cluster CSR"
            }
        );
        let err = s.ca.sign_csr(&pem).unwrap_err();
        assert!(matches!(err, PkiError::MalformedCsr(_)), "{err:?}");
    }

    #[test]
    fn anchor_with_ca_false_is_not_a_ca() {
        let s = setup();
        let (anchor, key, params) = self_signed("customerCA", IsCa::ExplicitNoCa);
        let signed = sign_with(&s.csr, &params, &key);
        let err = verify_cluster_certificate(&s.csr, &signed, &anchor).unwrap_err();
        assert!(matches!(err, PkiError::NotACa(_)), "{err:?}");
        // The cluster certificate itself (an end-entity certificate) is no anchor either.
        let err = verify_cluster_certificate(&s.csr, &s.signed, &s.signed).unwrap_err();
        assert!(matches!(err, PkiError::NotACa(_)), "{err:?}");
    }

    #[test]
    fn anchor_without_basic_constraints_must_be_self_signed() {
        let s = setup();
        let (anchor, key, params) = self_signed("legacyCA", IsCa::NoCa);
        let signed = sign_with(&s.csr, &params, &key);
        verify_cluster_certificate(&s.csr, &signed, &anchor).unwrap();

        // No basicConstraints and issued by someone else: not a CA.
        let leaf_key = ClusterKey::generate();
        let leaf_csr = cluster_csr_pem(&leaf_key, "not-a-ca").unwrap();
        let leaf = sign_with(&leaf_csr, &params, &key);
        let err = verify_cluster_certificate(&s.csr, &s.signed, &leaf).unwrap_err();
        assert!(matches!(err, PkiError::NotACa(_)), "{err:?}");

        // Self-issued (issuer = subject) but signed by another key: not self-signed.
        let other_key = KeyPair::generate().unwrap();
        let forged = params
            .signed_by(&other_key, &Issuer::from_params(&params, &key))
            .unwrap()
            .pem();
        let err = verify_cluster_certificate(&s.csr, &s.signed, &forged).unwrap_err();
        let PkiError::NotACa(reason) = &err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("not self-signed"), "{reason}");
    }

    #[test]
    fn ed25519_ca_is_an_unsupported_algorithm() {
        let s = setup();
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let anchor = params.self_signed(&key).unwrap().pem();
        let signed = sign_with(&s.csr, &params, &key);
        let err = verify_cluster_certificate(&s.csr, &signed, &anchor).unwrap_err();
        let PkiError::UnsupportedAlgorithm { what, algorithm } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*what, "signed cluster certificate");
        assert!(algorithm.contains("1.3.101.112"), "{algorithm}");
    }

    #[test]
    fn openssl_made_rsa_ca_and_certificate_verify() {
        verify_cluster_certificate(OPENSSL_CSR, OPENSSL_SIGNED, OPENSSL_RSA_CA).unwrap();
        // Our CA can sign an OpenSSL CSR too.
        let ca = CertificateAuthority::generate("customerCA").unwrap();
        let signed = ca.sign_csr(OPENSSL_CSR).unwrap();
        verify_cluster_certificate(OPENSSL_CSR, &signed, ca.certificate_pem()).unwrap();
        // And the OpenSSL certificate does not match one of our CSRs.
        let ours = cluster_csr_pem(&ClusterKey::generate(), "cluster-openssl").unwrap();
        let err = verify_cluster_certificate(&ours, OPENSSL_SIGNED, OPENSSL_RSA_CA).unwrap_err();
        assert_eq!(err, PkiError::PublicKeyMismatch);
    }
}
