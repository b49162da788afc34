//! AWS Signature Version 4, verified (`kmscksd --http-credentials FILE`): a signed request
//! proves it holds the secret of a configured access key, and acts as that key's principal.
//!
//! Why here and not taken on trust: without credentials the endpoint believes any access key
//! id it is shown (see `identity`); with them, only a request whose signature matches — the
//! canonical request, string to sign and HMAC chain of AWS's SigV4, over the method, path,
//! query, the headers the signature names and the body's SHA-256 — within AWS's five minutes
//! of clock skew gets in. Anything else gets AWS's answer: `MissingAuthenticationTokenException`
//! (unsigned), `UnrecognizedClientException` (unknown key), `InvalidSignatureException` (bad
//! signature, stale or future date, wrong scope).
//!
//! The credentials file: one key per line, `<access key id> <secret access key> <principal>`,
//! where the principal is `root` (the account root) or an IAM ARN of this account
//! (`arn:aws:iam::<account>:user/alice`, `…:role/app`); blank lines and `#` comments are
//! skipped. It holds secrets, so it must be ours alone (`peer::read_private_file`). Secrets
//! live in zeroizing buffers and never appear in `Debug` or messages.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use zeroize::Zeroizing;

use crate::error::{KmsError, Result};
use crate::types::Scope;
use crate::{err, ErrorKind};

/// The SigV4 algorithm name, first in the `Authorization` header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's date may be from ours (AWS's limit).
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// Largest credentials file.
const MAX_FILE: u64 = 1 << 20;
/// The services a signature may be scoped to: KMS and CloudHSM v2.
const SERVICES: &[&str] = &["kms", "cloudhsm"];

/// One configured access key.
struct Key {
    secret: Zeroizing<String>,
    principal: String,
}

/// The configured access keys.
pub(super) struct Credentials {
    keys: HashMap<String, Key>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Credentials")
            .field("access_key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads the credentials file (see the module doc).
    pub(super) fn load(path: &Path, scope: &Scope) -> Result<Credentials> {
        let refuse = |why: String| {
            err!(
                ValidationException,
                "http_credentials file {} {why}",
                path.display()
            )
        };
        let data = crate::peer::read_private_file(path, MAX_FILE).map_err(refuse)?;
        let text = std::str::from_utf8(&data).map_err(|_| refuse("is not UTF-8".into()))?;
        Credentials::parse(text, scope).map_err(refuse)
    }

    fn parse(text: &str, scope: &Scope) -> std::result::Result<Credentials, String> {
        let mut keys = HashMap::new();
        let account_prefix = format!("arn:aws:iam::{}:", scope.account_id);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [id, secret, principal] = fields[..] else {
                return Err(format!(
                    "line {}: expected `<access key id> <secret> <principal>` ({} fields)",
                    n + 1,
                    fields.len()
                ));
            };
            if !id.bytes().all(|b| b.is_ascii_alphanumeric()) || id.len() > 128 {
                return Err(format!("line {}: access key id {id:?} is malformed", n + 1));
            }
            let principal = if principal == "root" {
                scope.root_principal()
            } else if principal.starts_with(&account_prefix) {
                principal.to_owned()
            } else {
                return Err(format!(
                    "line {}: principal {principal:?} is neither `root` nor an IAM ARN of \
                     account {}",
                    n + 1,
                    scope.account_id
                ));
            };
            let key = Key {
                secret: Zeroizing::new(secret.to_owned()),
                principal,
            };
            if keys.insert(id.to_owned(), key).is_some() {
                return Err(format!("line {}: access key id {id} appears twice", n + 1));
            }
        }
        if keys.is_empty() {
            return Err("names no access key".into());
        }
        Ok(Credentials { keys })
    }
}

/// What the signature covers, from one HTTP request.
pub(super) struct Signed<'r> {
    pub method: &'r str,
    /// The request target: path and query.
    pub target: &'r str,
    /// Every header, in order, as sent.
    pub headers: &'r [(&'r str, &'r [u8])],
    pub body: &'r [u8],
}

impl Signed<'_> {
    /// The values of header `name` (any case), joined by `,` as SigV4 canonicalises them.
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| collapse(&String::from_utf8_lossy(v)))
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// Trims a header value and collapses each run of spaces inside it to one.
fn collapse(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` header.
struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>> {
    let bad = || {
        err!(
            IncompleteSignatureException,
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' \
             parameters after {ALGORITHM}"
        )
    };
    let rest = header
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| {
            err!(
                IncompleteSignatureException,
                "Unsupported Authorization type: only {ALGORITHM} is accepted"
            )
        })?
        .trim();
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (credential, signed_headers, signature) = (
        credential.ok_or_else(bad)?,
        signed_headers.ok_or_else(bad)?,
        signature.ok_or_else(bad)?,
    );
    let parts: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = parts[..] else {
        return Err(err!(
            IncompleteSignatureException,
            "Credential must be <access key id>/<date>/<region>/<service>/aws4_request"
        ));
    };
    Ok(Authorization {
        key_id,
        date,
        region,
        service,
        terminator,
        signed_headers,
        signature,
    })
}

/// The headers a signature must cover (AWS requires `host`; botocore and the SDKs sign all
/// three): where the request goes, when it was signed, and which operation it is. A signature
/// over less could be sent again within the allowed skew as another operation on the same
/// body (a DescribeKey's `{"KeyId": …}` as a ScheduleKeyDeletion).
const MUST_SIGN: [&str; 3] = ["host", "x-amz-date", "x-amz-target"];

/// Checks the signature of `req`; the principal of its access key.
pub(super) fn verify(
    creds: &Credentials,
    scope: &Scope,
    req: &Signed<'_>,
    now: SystemTime,
) -> Result<String> {
    let header = req.header("authorization").ok_or_else(|| {
        KmsError::new(
            ErrorKind::MissingAuthenticationTokenException,
            "Missing Authentication Token",
        )
    })?;
    let auth = parse_authorization(&header)?;
    let key = creds.keys.get(auth.key_id).ok_or_else(|| {
        err!(
            UnrecognizedClientException,
            "The security token included in the request is invalid."
        )
    })?;
    // After the key: an unknown access key is reported as such, whatever it signed.
    if let Some(name) = MUST_SIGN.into_iter().find(|must| {
        !auth
            .signed_headers
            .split(';')
            .any(|h| h.eq_ignore_ascii_case(must))
    }) {
        return Err(invalid_signature(format!(
            "'{name}' must be a 'SignedHeader' in the AWS Authorization (signed: '{}')",
            auth.signed_headers
        )));
    }
    let amz_date = req.header("x-amz-date").ok_or_else(|| {
        err!(
            IncompleteSignatureException,
            "The request must carry an X-Amz-Date header"
        )
    })?;
    let signed_at = parse_amz_date(&amz_date)?;
    check_skew(&amz_date, signed_at, now)?;
    if auth.date != &amz_date[..8] {
        return Err(invalid_signature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}'",
            auth.date,
            &amz_date[..8]
        )));
    }
    if auth.region != scope.region {
        return Err(invalid_signature(format!(
            "Credential should be scoped to a valid region, not '{}' (this endpoint is {})",
            auth.region, scope.region
        )));
    }
    if !SERVICES.contains(&auth.service) || auth.terminator != "aws4_request" {
        return Err(invalid_signature(format!(
            "Credential should be scoped to a valid service: '{}/{}'",
            auth.service, auth.terminator
        )));
    }
    let expected = signature(key, &auth, req, &amz_date)?;
    let given = auth.signature.as_bytes();
    if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), given).is_err() {
        return Err(invalid_signature(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
                .into(),
        ));
    }
    Ok(key.principal.clone())
}

fn invalid_signature(message: String) -> KmsError {
    KmsError::new(ErrorKind::InvalidSignatureException, message)
}

/// The client's side of what `kmscksd --http-credentials` verifies: the `Authorization` header value SigV4 gives a `POST /`
/// with `headers` (every one signed; names in any case, values as sent) and `body`, under the
/// access key `key_id` with `secret`, scoped to `region` and `service` (`kms`, `cloudhsm`),
/// at `amz_date` (the `X-Amz-Date` value, `YYYYMMDD'T'HHMMSS'Z'`). kmscks's command line signs
/// its `--endpoint-url` requests with it, as an AWS SDK would.
#[allow(clippy::too_many_arguments)] // SigV4's inputs, each a string of its own
pub fn authorization(
    key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    amz_date: &str,
) -> Result<String> {
    let date = amz_date.get(..8).ok_or_else(|| {
        err!(
            IncompleteSignatureException,
            "X-Amz-Date {amz_date:?} is not YYYYMMDD'T'HHMMSS'Z'"
        )
    })?;
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let signed_headers = names.join(";");
    let auth = Authorization {
        key_id,
        date,
        region,
        service,
        terminator: "aws4_request",
        signed_headers: &signed_headers,
        signature: "",
    };
    let req = Signed {
        method: "POST",
        target: "/",
        headers,
        body,
    };
    let key = Key {
        secret: Zeroizing::new(secret.to_owned()),
        principal: String::new(),
    };
    let sig = signature(&key, &auth, &req, amz_date)?;
    Ok(format!(
        "{ALGORITHM} Credential={key_id}/{date}/{region}/{service}/aws4_request, \
         SignedHeaders={signed_headers}, Signature={sig}"
    ))
}

/// The hex signature SigV4 gives `req` under `key`.
fn signature(
    key: &Key,
    auth: &Authorization<'_>,
    req: &Signed<'_>,
    amz_date: &str,
) -> Result<String> {
    let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
    let mut canonical_headers = String::new();
    for name in auth.signed_headers.split(';') {
        let value = req.header(name).ok_or_else(|| {
            invalid_signature(format!("Signed header {name:?} is not in the request"))
        })?;
        canonical_headers.push_str(&name.to_ascii_lowercase());
        canonical_headers.push(':');
        canonical_headers.push_str(&value);
        canonical_headers.push('\n');
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        if path.is_empty() { "/" } else { path },
        canonical_query(query),
        canonical_headers,
        auth.signed_headers,
        crate::types::hex::encode(digest::digest(&digest::SHA256, req.body).as_ref()),
    );
    let scope = format!(
        "{}/{}/{}/{}",
        auth.date, auth.region, auth.service, auth.terminator
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        crate::types::hex::encode(
            digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref()
        )
    );
    let mut k = Zeroizing::new(format!("AWS4{}", &*key.secret).into_bytes());
    for part in [auth.date, auth.region, auth.service, auth.terminator] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &k), part.as_bytes());
        *k = tag.as_ref().to_vec();
    }
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &k),
        string_to_sign.as_bytes(),
    );
    Ok(crate::types::hex::encode(tag.as_ref()))
}

/// The query string as SigV4 canonicalises it: parameters sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` as a time.
fn parse_amz_date(text: &str) -> Result<SystemTime> {
    let bad = || {
        err!(
            IncompleteSignatureException,
            "X-Amz-Date {text:?} is not YYYYMMDD'T'HHMMSS'Z'"
        )
    };
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32> {
        text.get(r)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let month = u8::try_from(num(4..6)?).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).map_err(|_| bad())?,
        time::Month::try_from(month).map_err(|_| bad())?,
        u8::try_from(num(6..8)?).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let clock = time::Time::from_hms(
        u8::try_from(num(9..11)?).map_err(|_| bad())?,
        u8::try_from(num(11..13)?).map_err(|_| bad())?,
        u8::try_from(num(13..15)?).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let secs = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    let secs = u64::try_from(secs).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The `X-Amz-Date` value for `t` (`YYYYMMDD'T'HHMMSS'Z'`, UTC; a time before 1970 reads as
/// 1970): what a client signs with [`authorization`].
pub fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// AWS's five minutes either way.
fn check_skew(sent: &str, signed_at: SystemTime, now: SystemTime) -> Result<()> {
    if signed_at + MAX_SKEW < now {
        return Err(invalid_signature(format!(
            "Signature expired: {sent} is now earlier than {} ({} - 5 min.)",
            amz_date(now - MAX_SKEW),
            amz_date(now)
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(invalid_signature(format!(
            "Signature not yet current: {sent} is still later than {} ({} + 5 min.)",
            amz_date(now + MAX_SKEW),
            amz_date(now)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented SigV4 example key (not a secret).
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn creds() -> Credentials {
        let text = format!(
            "# id secret principal\n\nAKIDEXAMPLE {SECRET} root\nAKIDALICE {SECRET} \
             arn:aws:iam::111122223333:user/alice\n"
        );
        Credentials::parse(&text, &Scope::default()).unwrap()
    }

    /// Signs a KMS request as botocore does: content-type, host, x-amz-date and x-amz-target.
    fn signed_request(
        key_id: &str,
        secret: &str,
        amz_date: &str,
        body: &[u8],
    ) -> Vec<(String, Vec<u8>)> {
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("Host".into(), b"127.0.0.1:4599".to_vec()),
            (
                "Content-Type".into(),
                b"application/x-amz-json-1.1".to_vec(),
            ),
            ("X-Amz-Date".into(), amz_date.as_bytes().to_vec()),
            ("X-Amz-Target".into(), b"TrentService.ListKeys".to_vec()),
        ];
        let refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let auth =
            authorization(key_id, secret, "us-east-1", "kms", &refs, body, amz_date).unwrap();
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"));
        headers.push(("Authorization".into(), auth.into_bytes()));
        headers
    }

    fn check(headers: &[(String, Vec<u8>)], body: &[u8], now: SystemTime) -> Result<String> {
        let refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        verify(
            &creds(),
            &Scope::default(),
            &Signed {
                method: "POST",
                target: "/",
                headers: &refs,
                body,
            },
            now,
        )
    }

    const DATE: &str = "20261203T120000Z";

    fn at_date() -> SystemTime {
        parse_amz_date(DATE).unwrap()
    }

    #[test]
    fn the_date_a_client_signs_with_is_the_one_the_verifier_reads() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_601_599);
        assert_eq!(amz_date(t), "20261206T235959Z");
        assert_eq!(parse_amz_date(&amz_date(t)).unwrap(), t);
        assert_eq!(
            amz_date(UNIX_EPOCH - Duration::from_secs(1)),
            "19700101T000000Z"
        );
    }

    #[test]
    fn the_signing_key_chain_gives_awss_documented_example() {
        // AWS's documentation: the signing key for 20150830/us-east-1/iam/aws4_request under
        // the example secret, as hex.
        let mut k = format!("AWS4{SECRET}").into_bytes();
        for part in ["20150830", "us-east-1", "iam", "aws4_request"] {
            k = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &k), part.as_bytes())
                .as_ref()
                .to_vec();
        }
        assert_eq!(
            crate::types::hex::encode(&k),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn a_request_signed_with_a_configured_key_acts_as_its_principal() {
        let body = br#"{"Limit":5}"#;
        let h = signed_request("AKIDEXAMPLE", SECRET, DATE, body);
        assert_eq!(
            check(&h, body, at_date()).unwrap(),
            Scope::default().root_principal()
        );
        let h = signed_request("AKIDALICE", SECRET, DATE, body);
        assert_eq!(
            check(&h, body, at_date()).unwrap(),
            "arn:aws:iam::111122223333:user/alice"
        );
    }

    #[test]
    fn tampering_an_unknown_key_a_wrong_secret_and_a_stale_date_get_awss_errors() {
        let body = br#"{"Limit":5}"#;
        let kind = |r: Result<String>| r.unwrap_err().kind();
        let good = signed_request("AKIDEXAMPLE", SECRET, DATE, body);
        assert_eq!(
            kind(check(&good, br#"{"Limit":6}"#, at_date())),
            ErrorKind::InvalidSignatureException
        );
        let mut moved = good.clone();
        moved[3].1 = b"TrentService.ScheduleKeyDeletion".to_vec();
        assert_eq!(
            kind(check(&moved, body, at_date())),
            ErrorKind::InvalidSignatureException
        );
        let wrong = signed_request("AKIDEXAMPLE", "not-the-secret", DATE, body);
        assert_eq!(
            kind(check(&wrong, body, at_date())),
            ErrorKind::InvalidSignatureException
        );
        let unknown = signed_request("AKIDNOBODY", SECRET, DATE, body);
        assert_eq!(
            kind(check(&unknown, body, at_date())),
            ErrorKind::UnrecognizedClientException
        );
        let e = check(&good, body, at_date() + Duration::from_secs(301)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSignatureException);
        assert!(e.message().starts_with("Signature expired"), "{e}");
        let e = check(&good, body, at_date() - Duration::from_secs(301)).unwrap_err();
        assert!(e.message().starts_with("Signature not yet current"), "{e}");
        assert!(check(&good, body, at_date() + Duration::from_secs(299)).is_ok());
        let unsigned: Vec<(String, Vec<u8>)> = good[..4].to_vec();
        assert_eq!(
            kind(check(&unsigned, body, at_date())),
            ErrorKind::MissingAuthenticationTokenException
        );
    }

    #[test]
    fn a_signature_that_does_not_cover_the_host_date_and_target_is_refused_naming_the_header() {
        let body = br#"{"KeyId":"alias/a"}"#;
        let good = signed_request("AKIDEXAMPLE", SECRET, DATE, body);
        for left_out in ["Host", "X-Amz-Date", "X-Amz-Target"] {
            // Signed over the other headers only, sent with all of them.
            let signed: Vec<(&str, &[u8])> = good[..4]
                .iter()
                .filter(|(n, _)| n != left_out)
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect();
            let auth = authorization(
                "AKIDEXAMPLE",
                SECRET,
                "us-east-1",
                "kms",
                &signed,
                body,
                DATE,
            )
            .unwrap();
            let mut sent = good[..4].to_vec();
            sent.push(("Authorization".into(), auth.into_bytes()));
            let e = check(&sent, body, at_date()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidSignatureException, "{e}");
            let name = left_out.to_ascii_lowercase();
            assert!(
                e.message()
                    .starts_with(&format!("'{name}' must be a 'SignedHeader'")),
                "{e}"
            );
        }
        // Signed over all four, it is the principal's.
        assert!(check(&good, body, at_date()).is_ok());
    }

    #[test]
    fn a_bad_credentials_file_is_refused_naming_the_line() {
        let scope = Scope::default();
        for (text, says) in [
            ("AKID secret", "line 1"),
            (
                "AKID secret arn:aws:iam::999999999999:user/x",
                "neither `root`",
            ),
            ("AK-ID secret root", "malformed"),
            ("A s root\nA s root", "appears twice"),
            ("# nothing\n", "names no access key"),
        ] {
            let e = Credentials::parse(text, &scope).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(!e.contains("secret") || !text.contains(" secret "), "{e}");
        }
        let c = creds();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("AKIDALICE") && !shown.contains(SECRET),
            "{shown}"
        );
    }
}
