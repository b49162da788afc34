//! PEM text to DER, for the certificates and CSRs users paste into InitializeCluster and
//! CreateCustomKeyStore. Errors name the byte offset of the problem in the text the user gave.
//!
//! The base64 is the `base64` crate's; the framing (find `-----BEGIN <label>-----`, check the
//! label, find the matching END line) stays here, because the PEM readers in the tree do not keep
//! what users see: `x509_parser::pem` wants BEGIN at the start of a line and no indentation in
//! the body (an indented anchor pasted from YAML would be refused), takes any END label, and its
//! errors carry no position; the `pem` crate behind rcgen is not a dependency of ours, treats a
//! blank line in the body as the end of RFC 1421 headers, and has no positions either.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, Engine as _};

use super::error::PkiError;

/// PEM labels accepted for a certificate.
pub(super) const CERT_LABELS: &[&str] = &["CERTIFICATE"];
/// PEM labels accepted for a PKCS#10 request (OpenSSL still writes the `NEW` form sometimes).
pub(super) const CSR_LABELS: &[&str] = &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// The DER inside the first PEM block of `text`, whose label must be one of `labels` and whose
/// END line must repeat it. Text before the block is ignored (OpenSSL prints a dump there), as
/// is all ASCII whitespace inside the base64 and everything after the END line.
pub(super) fn decode_pem(
    text: &str,
    labels: &[&str],
    what: &'static str,
) -> Result<Vec<u8>, PkiError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsm::pki::fixtures::{der_of, setup, to_pem};
    use crate::hsm::pki::parse::certificate_der;
    use crate::hsm::pki::{same_certificate, verify_cluster_certificate};

    /// What a user reads when `text` is given where a certificate belongs.
    fn certificate_error(text: &str) -> String {
        certificate_der(text).unwrap_err().to_string()
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
    fn text_after_the_end_line_is_ignored() {
        let s = setup();
        let der = der_of(&s.signed);
        let tail = format!(
            "{}trailing garbage\n-----BEGIN nonsense\n\u{fffd}é",
            s.signed
        );
        assert_eq!(certificate_der(&tail).unwrap(), der);
        let glued = s.signed.trim_end().to_owned() + "garbage";
        assert_eq!(certificate_der(&glued).unwrap(), der);
    }

    #[test]
    fn of_several_blocks_only_the_first_counts() {
        let s = setup();
        let chain = format!("{}{}", s.signed, s.ca.certificate_pem());
        assert_eq!(certificate_der(&chain).unwrap(), der_of(&s.signed));
        assert!(same_certificate(&chain, &s.signed));
        assert!(!same_certificate(&chain, s.ca.certificate_pem()));
        // A bundle whose first block is the anchor is that anchor.
        let bundle = format!("{}{}", s.ca.certificate_pem(), s.signed);
        verify_cluster_certificate(&s.csr, &s.signed, &bundle).unwrap();
        // The first block is not skipped when its label is wrong, even if a later one fits.
        let err = certificate_error(&format!("{}{}", s.csr, s.signed));
        assert_eq!(
            err,
            "the certificate is not valid PEM: label \"CERTIFICATE REQUEST\" at offset 0, \
             expected CERTIFICATE"
        );
    }

    #[test]
    fn a_wrong_label_is_named_with_its_offset_and_the_expected_ones() {
        let s = setup();
        let dump = format!("Certificate:\n{}", s.signed);
        let err = verify_cluster_certificate(&dump, &s.signed, s.ca.certificate_pem()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cluster CSR is not valid PEM: label \"CERTIFICATE\" at offset 13, \
             expected CERTIFICATE REQUEST or NEW CERTIFICATE REQUEST"
        );
        let crl = "-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n";
        assert_eq!(
            certificate_error(crl),
            "the certificate is not valid PEM: label \"X509 CRL\" at offset 0, expected CERTIFICATE"
        );
    }

    #[test]
    fn the_end_line_must_repeat_the_begin_label() {
        let s = setup();
        let crossed = s.signed.replace("END CERTIFICATE", "END X509 CRL");
        assert_eq!(
            certificate_error(&crossed),
            "the certificate is not valid PEM: no \"-----END CERTIFICATE-----\" after offset 27"
        );
        assert_eq!(
            certificate_error("-----BEGIN CERTIFICATE\nMIIB\n"),
            "the certificate is not valid PEM: unterminated BEGIN line at offset 0"
        );
    }

    #[test]
    fn new_certificate_request_is_accepted_for_a_csr() {
        let s = setup();
        let csr = s
            .csr
            .replace("CERTIFICATE REQUEST-----", "NEW CERTIFICATE REQUEST-----");
        assert!(csr.starts_with("-----BEGIN NEW CERTIFICATE REQUEST-----"));
        verify_cluster_certificate(&csr, &s.signed, s.ca.certificate_pem()).unwrap();
        let signed = s.ca.sign_csr(&csr).unwrap();
        verify_cluster_certificate(&s.csr, &signed, s.ca.certificate_pem()).unwrap();
        // But not for a certificate.
        let cert = s
            .signed
            .replace("CERTIFICATE-----", "NEW CERTIFICATE REQUEST-----");
        assert!(certificate_error(&cert).contains("label \"NEW CERTIFICATE REQUEST\""));
    }

    #[test]
    fn blank_lines_and_indentation_inside_the_body_are_whitespace() {
        let s = setup();
        let der = der_of(&s.signed);
        let blank = to_pem("CERTIFICATE", &der, 64, "\n\n");
        assert_eq!(certificate_der(&blank).unwrap(), der);
        let indented = format!("    {}", to_pem("CERTIFICATE", &der, 64, "\r\n    "));
        assert_eq!(certificate_der(&indented).unwrap(), der);
    }

    #[test]
    fn offsets_count_bytes_of_the_whole_text() {
        // "é" is two bytes: BEGIN is at 3, the body starts at 30, '*' is its fourth byte.
        let text = "é\n-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----";
        assert_eq!(
            certificate_error(text),
            "the certificate is not valid PEM: invalid base64 character at offset 33"
        );
        let text = "-----BEGIN CERTIFICATE-----\nAAé=\n-----END CERTIFICATE-----";
        assert_eq!(
            certificate_error(text),
            "the certificate is not valid PEM: invalid base64 character at offset 30"
        );
        let text = "-----BEGIN CERTIFICATE-----\nAA==\nAAAA\n-----END CERTIFICATE-----";
        assert_eq!(
            certificate_error(text),
            "the certificate is not valid PEM: misplaced base64 padding at offset 30"
        );
        let text = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        assert_eq!(
            certificate_error(text),
            "the certificate is not valid PEM: base64 length is not a multiple of 4 at offset 32"
        );
        let text = "-----BEGIN CERTIFICATE-----\n \n-----END CERTIFICATE-----";
        assert_eq!(
            certificate_error(text),
            "the certificate is not valid PEM: empty PEM body at offset 30"
        );
    }

    #[test]
    fn rfc_1421_headers_are_refused() {
        let s = setup();
        let der = der_of(&s.signed);
        let body = to_pem("CERTIFICATE", &der, 64, "\n");
        let with_headers = body.replacen(
            "-----\n",
            "-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n",
            1,
        );
        assert_eq!(
            certificate_error(&with_headers),
            "the certificate is not valid PEM: invalid base64 character at offset 32"
        );
    }
}
