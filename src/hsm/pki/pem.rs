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
    use crate::hsm::pki::fixtures::setup;
    use crate::hsm::pki::{certificate_der, verify_cluster_certificate};

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
}
