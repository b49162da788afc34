//! The PKI of a simulated CloudHSM cluster: cluster key, cluster CSR, the user's CA, and the
//! checks InitializeCluster and CreateCustomKeyStore make on certificates.
//!
//! When the first HSM of a new cluster exists, the UNINITIALIZED cluster offers a cluster CSR
//! (`Certificates.ClusterCsr`). The user signs it with their own CA (`customerCA.crt`, the
//! *trust anchor*) and calls InitializeCluster with the signed cluster certificate and the trust
//! anchor; [`verify_cluster_certificate`] is the check made there. Two clusters are *related*
//! when their cluster certificates are equal, and KMS compares a `TrustAnchorCertificate` with
//! the cluster's: both comparisons are by DER ([`same_certificate`]), never by PEM text.
//!
//! Nothing here persists anything or maps errors to AWS exceptions: [`PkiError`] says exactly
//! what is wrong, and the caller picks the exception (CloudHsmInvalidRequestException for
//! InitializeCluster, IncorrectTrustAnchorException for CreateCustomKeyStore, ...).

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, UnparsedPublicKey, VerificationAlgorithm};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, Engine as _};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime, Time};
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};
use zeroize::Zeroizing;

use crate::secret::SecretBytes;

/// Validity of the certificates [`CertificateAuthority`] issues (and of its own), in days.
const VALIDITY_DAYS: i64 = 3652;
/// How far back `notBefore` is set, so a certificate is valid at once despite clock skew.
const BACKDATE_DAYS: i64 = 1;
/// PEM labels accepted for a certificate.
const CERT_LABELS: &[&str] = &["CERTIFICATE"];
/// PEM labels accepted for a PKCS#10 request (OpenSSL still writes the `NEW` form sometimes).
const CSR_LABELS: &[&str] = &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

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

fn generation(e: impl fmt::Display) -> PkiError {
    PkiError::Generation(e.to_string())
}

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

/// The key algorithm of a [`CertificateAuthority`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaKeyAlgorithm {
    /// ECDSA P-256 with SHA-256 signatures.
    EcdsaP256,
    /// ECDSA P-384 with SHA-384 signatures.
    EcdsaP384,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256 signatures (what `openssl req -newkey rsa:2048` makes).
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

/// Whether two PEM texts hold the same certificate (equal DER). Line wrapping, whitespace and
/// text around the PEM block do not matter. False if either does not parse.
pub fn same_certificate(a_pem: &str, b_pem: &str) -> bool {
    match (certificate_der(a_pem), certificate_der(b_pem)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The DER of the first certificate in `pem`, checked to parse as X.509.
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    const WHAT: &str = "certificate";
    let der = decode_pem(pem, CERT_LABELS, WHAT)?;
    parse_certificate(&der, WHAT)?;
    Ok(der)
}

fn parse_certificate<'a>(
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

fn parse_csr(der: &[u8]) -> Result<X509CertificationRequest<'_>, PkiError> {
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

/// The DER inside the first PEM block of `text` whose label is one of `labels`. Text before
/// the block is ignored (OpenSSL prints a dump there); all whitespace inside the base64 is.
fn decode_pem(text: &str, labels: &[&str], what: &'static str) -> Result<Vec<u8>, PkiError> {
    let bad = |reason: String| PkiError::MalformedPem { what, reason };
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| bad("no \"-----BEGIN \" line".into()))?;
    let after_begin = &text[begin + "-----BEGIN ".len()..];
    let label_end = after_begin
        .find("-----")
        .ok_or_else(|| bad(format!("unterminated BEGIN line at offset {begin}")))?;
    let label = &after_begin[..label_end];
    if !labels.contains(&label) {
        return Err(bad(format!(
            "label \"{label}\" at offset {begin}, expected {}",
            labels.join(" or ")
        )));
    }
    let body_start = begin + "-----BEGIN ".len() + label_end + "-----".len();
    let end_marker = format!("-----END {label}-----");
    let body_len = text[body_start..]
        .find(&end_marker)
        .ok_or_else(|| bad(format!("no \"{end_marker}\" after offset {body_start}")))?;
    base64_decode(&text[body_start..body_start + body_len])
        .map_err(|(offset, reason)| bad(format!("{reason} at offset {}", body_start + offset)))
}

/// Standard base64 with canonical padding, as PEM writes it. Bits after the last whole byte
/// are ignored, as OpenSSL ignores them.
const PEM_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// The bytes of a PEM body: [`PEM_BASE64`] with ASCII whitespace anywhere skipped. Errors carry
/// the byte offset in `body` (the `base64` crate counts in the text without whitespace).
fn base64_decode(body: &str) -> Result<Vec<u8>, (usize, &'static str)> {
    let significant = || {
        body.bytes()
            .enumerate()
            .filter(|(_, b)| !b.is_ascii_whitespace())
    };
    let compact: Vec<u8> = significant().map(|(_, b)| b).collect();
    // Where the `i`-th significant byte is in `body` (the end when there is none).
    let at = |i: usize| {
        significant()
            .nth(i)
            .map_or(body.len(), |(offset, _)| offset)
    };
    let bytes = PEM_BASE64.decode(&compact).map_err(|e| match e {
        DecodeError::InvalidByte(i, b'=') => (at(i), "misplaced base64 padding"),
        DecodeError::InvalidByte(i, _) => (at(i), "invalid base64 character"),
        DecodeError::InvalidLastSymbol(i, _) => (at(i), "invalid last base64 character"),
        DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
            (body.len(), "base64 length is not a multiple of 4")
        }
    })?;
    if bytes.is_empty() {
        return Err((body.len(), "empty PEM body"));
    }
    Ok(bytes)
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
    use super::*;

    /// An RSA-2048 CA made by `openssl req -x509 -newkey rsa:2048 -sha256` (basicConstraints
    /// critical CA:TRUE), an OpenSSL P-256 CSR, and that CSR signed by that CA with
    /// `openssl x509 -req -sha256` (a v1 certificate, no extensions).
    const OPENSSL_RSA_CA: &str = "\
-----BEGIN CERTIFICATE-----
MIIDUzCCAjugAwIBAgIULg6e/4yRT2XwtVbkmz2alMYRS6gwDQYJKoZIhvcNAQEL
BQAwOTELMAkGA1UEBhMCVVMxFTATBgNVBAoMDEV4YW1wbGUgQ29ycDETMBEGA1UE
AwwKY3VzdG9tZXJDQTAeFw0yNjExMzAxMDE0MDlaFw0zNjExMjkxMDE0MDlaMDkx
CzAJBgNVBAYTAlVTMRUwEwYDVQQKDAxFeGFtcGxlIENvcnAxEzARBgNVBAMMCmN1
c3RvbWVyQ0EwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDJuTZiiLMK
5ntoeCa9nA8LObYeL5yAVyDJ8sGil1d4tad8qY0+yfzJjnIDsUTfObJrojmyD3Pm
LQg5JM4M7XgKdlSy4GlNRV/6odGsUkDsi/YcoeEs99z8A/jxILgRdhGZWQ2cD8D/
ZQlSiA0sFZgACP1mYTmpRQrFBAg302amIk9z+xSnYuGYTr9s9Ub7GFwMGLIVc5uE
Lym9lXdgeUjfc45Nn8SvDJ+Dc8AIerwO1iuPCWLm+079J07yU/rT2wIu4ekuiynv
XLhOD08zJnQDMNISfcoTmKfchB7J3r0r/OFFEnk5Nsr9rBVWGAU1DXyycMLyLZ9z
Bfgzlo4K5hjrAgMBAAGjUzBRMB0GA1UdDgQWBBRKj7HNkBe4AXfSgNvLinxPdM7m
VzAfBgNVHSMEGDAWgBRKj7HNkBe4AXfSgNvLinxPdM7mVzAPBgNVHRMBAf8EBTAD
AQH/MA0GCSqGSIb3DQEBCwUAA4IBAQCda/IrQw/J+nPc+LUuu4+dOVn1ghO1YTDL
Nh/Pjp+tJIFlGO2vuKAw/0X4y4iBFbxBqh6J6p9qkZavM/+W0zSXCQYcEAnSnXb+
Zwj960ZfNSL14P6xCHa0mpWd84ogAjRkZDmV7v1SNKmO3sBbhYES8PI0uC6m+hNw
0UI/v5dB59hcSLIsz5FVoMlDSQes60/lcrbhPdVFhVZhLDPnaCv0nTHG2L01NNL8
iYMAUajcmYlJrMHupq5MH8xGcaeaINLwaiN5AjfrvjdAsjndJvhPn7nufh7wr92W
mrS04NDfgYtYfrCFvPnMV2hnJANRfkZiYK1qAUZyZm+tIqZBQyAR
-----END CERTIFICATE-----
";
    const OPENSSL_CSR: &str = "\
-----BEGIN CERTIFICATE REQUEST-----
MIHZMIGAAgEAMB4xHDAaBgNVBAMME0hTTTpjbHVzdGVyLW9wZW5zc2wwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAARDIKFHy/kVAThvMjP4oSmeuhG8B3Ypf0/QYLF6
Dh5Cdw127HN9Qbq8wq+hyUW5j0/EkA71palUCdZg8ZQ3GMphoAAwCgYIKoZIzj0E
AwIDSAAwRQIgca7shRi1qkyWgbtk8+5oHQZSFC04I3kyzpnzPbq5JwMCIQDGx2DG
3vE1Gd5yspw1OPBGzSqb3Pg7joSLUP0Yvo86+Q==
-----END CERTIFICATE REQUEST-----
";
    const OPENSSL_SIGNED: &str = "\
-----BEGIN CERTIFICATE-----
MIICEjCB+wIURxozdhfmEncdtwv+JxJ13s1yvb0wDQYJKoZIhvcNAQELBQAwOTEL
MAkGA1UEBhMCVVMxFTATBgNVBAoMDEV4YW1wbGUgQ29ycDETMBEGA1UEAwwKY3Vz
dG9tZXJDQTAeFw0yNjExMzAxMDE0MDlaFw0zNjExMjkxMDE0MDlaMB4xHDAaBgNV
BAMME0hTTTpjbHVzdGVyLW9wZW5zc2wwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AARDIKFHy/kVAThvMjP4oSmeuhG8B3Ypf0/QYLF6Dh5Cdw127HN9Qbq8wq+hyUW5
j0/EkA71palUCdZg8ZQ3GMphMA0GCSqGSIb3DQEBCwUAA4IBAQCSmCgZlPUOuIsY
4hGJ4BRF6IZ37nRawXoyHBM0U9aCtPN5s2+n+Z0jyOsh6ppiWP51svglGXpS7R2N
PlbLhX8jXTMAk0kVWPaoqYU+spvDemtO6xOlgrEXze12yKVyIlwDVHxxzXChhMfZ
72HsHm6eGWT7pW8RS7RYb6EwAZKl7TRUkMfAjsmuYmLdcvlLw/KE9K/BQQYmH0Iz
tGq8l0SOpVGCnrLsZ4uGQ63zg/sgUeImMBUIVFXejkOsq+pywOcbwWnEng3T/RKA
IVRwp3uceiEIJ5aj3DeJ0ZQxykeFwUG3WHIe3tnt6guZsbz09H1DsA8XVRKQLjFS
pF0lgcl3
-----END CERTIFICATE-----
";

    /// A cluster key, its CSR, a CA and the signed cluster certificate.
    struct Setup {
        key: ClusterKey,
        csr: String,
        ca: CertificateAuthority,
        signed: String,
    }

    fn setup_with(alg: CaKeyAlgorithm) -> Setup {
        let key = ClusterKey::generate();
        let csr = cluster_csr_pem(&key, "cluster-abcdefghijk").unwrap();
        let ca = CertificateAuthority::generate_with("customerCA", alg).unwrap();
        let signed = ca.sign_csr(&csr).unwrap();
        Setup {
            key,
            csr,
            ca,
            signed,
        }
    }

    fn setup() -> Setup {
        setup_with(CaKeyAlgorithm::EcdsaP256)
    }

    fn der_of(pem: &str) -> Vec<u8> {
        decode_pem(pem, &["CERTIFICATE", "CERTIFICATE REQUEST"], "test input").unwrap()
    }

    /// PEM with the given label, base64 wrapped at `width` columns, lines ended by `eol`.
    fn to_pem(label: &str, der: &[u8], width: usize, eol: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = format!("-----BEGIN {label}-----{eol}");
        for line in b64.as_bytes().chunks(width) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push_str(eol);
        }
        out.push_str(&format!("-----END {label}-----{eol}"));
        out
    }

    /// A self-signed certificate from raw rcgen parameters, with its key.
    fn self_signed(cn: &str, is_ca: IsCa) -> (String, KeyPair, CertificateParams) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = is_ca;
        let pem = params.self_signed(&key).unwrap().pem();
        (pem, key, params)
    }

    fn sign_with(csr: &str, params: &CertificateParams, key: &KeyPair) -> String {
        let csr = CertificateSigningRequestParams::from_pem(csr).unwrap();
        csr.signed_by(&Issuer::from_params(params, key))
            .unwrap()
            .pem()
    }

    fn csr_public_key(csr_pem: &str) -> Vec<u8> {
        let der = der_of(csr_pem);
        let csr = parse_csr(&der).unwrap();
        csr.certification_request_info.subject_pki.raw.to_vec()
    }

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
    fn garbage_pem_is_malformed_pem() {
        let s = setup();
        let anchor = s.ca.certificate_pem();
        for garbage in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----",
        ] {
            let err = verify_cluster_certificate(garbage, &s.signed, anchor).unwrap_err();
            assert!(
                matches!(
                    err,
                    PkiError::MalformedPem {
                        what: "cluster CSR",
                        ..
                    }
                ),
                "{err:?}"
            );
            let err = verify_cluster_certificate(&s.csr, garbage, anchor).unwrap_err();
            assert!(
                matches!(
                    err,
                    PkiError::MalformedPem {
                        what: "signed cluster certificate",
                        ..
                    }
                ),
                "{err:?}"
            );
            let err = verify_cluster_certificate(&s.csr, &s.signed, garbage).unwrap_err();
            assert!(
                matches!(
                    err,
                    PkiError::MalformedPem {
                        what: "trust anchor",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(matches!(
                s.ca.sign_csr(garbage),
                Err(PkiError::MalformedPem { .. })
            ));
            assert!(matches!(
                certificate_der(garbage),
                Err(PkiError::MalformedPem { .. })
            ));
        }
        // A CSR where a certificate belongs: wrong label.
        let err = verify_cluster_certificate(&s.csr, &s.csr, anchor).unwrap_err();
        let PkiError::MalformedPem { reason, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("CERTIFICATE REQUEST"), "{reason}");
        // Missing END line, and an invalid character, each named with an offset.
        let cut = &anchor[..anchor.len() / 2];
        let err = certificate_der(cut).unwrap_err();
        assert!(
            err.to_string().contains("-----END CERTIFICATE-----"),
            "{err}"
        );
        let err = certificate_der("-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----")
            .unwrap_err();
        assert!(err.to_string().contains("offset 30"), "{err}");
    }

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

    #[test]
    fn base64_decoding_is_strict_and_names_byte_offsets() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TW E=\n").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        // Bits after the last whole byte are ignored, as OpenSSL ignores them.
        assert_eq!(base64_decode("TR==").unwrap(), b"M");
        assert_eq!(
            base64_decode("TQ=").unwrap_err(),
            (3, "base64 length is not a multiple of 4")
        );
        assert_eq!(
            base64_decode("TQ").unwrap_err(),
            (2, "base64 length is not a multiple of 4")
        );
        assert_eq!(
            base64_decode("TQ==TQ==").unwrap_err(),
            (2, "misplaced base64 padding")
        );
        assert_eq!(
            base64_decode("T===").unwrap_err(),
            (1, "misplaced base64 padding")
        );
        assert_eq!(
            base64_decode("TW-u").unwrap_err(),
            (2, "invalid base64 character")
        );
        // Offsets count the skipped whitespace, and bytes rather than characters.
        assert_eq!(
            base64_decode("TW\r\n\t-u").unwrap_err(),
            (5, "invalid base64 character")
        );
        assert_eq!(
            base64_decode("é\nTWFu").unwrap_err(),
            (0, "invalid base64 character")
        );
        assert_eq!(
            base64_decode("TWFu\né").unwrap_err(),
            (5, "invalid base64 character")
        );
        assert_eq!(base64_decode(" \n").unwrap_err(), (2, "empty PEM body"));
        assert_eq!(base64_decode("").unwrap_err(), (0, "empty PEM body"));
        for len in 1..10usize {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            assert_eq!(base64_decode(&text).unwrap(), bytes);
        }
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
