//! Parameter values as the AWS CLI v2 reads them: `file://` (text), `fileb://` (raw bytes),
//! base64 for bare blob values, the `k=v,k2=v2` shorthand for maps and tags, and JSON forms.
//!
//! kmscks has no `--cli-binary-format` option: a blob parameter (`--plaintext`,
//! `--ciphertext-blob`) always behaves as AWS CLI v2's default `base64`: a bare value is base64
//! text, `fileb://PATH` gives the file's raw bytes and `file://PATH` gives the file's bytes as
//! they are (its text).

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use kmscks::secret::{Password, SecretBytes};

/// A `&'static [ArgSpec]` from spec expressions (const-evaluated).
macro_rules! specs {
    ($($x:expr),* $(,)?) => {{
        const SPECS: &[$crate::cli::args::ArgSpec] = &[$($x),*];
        SPECS
    }};
}
pub(crate) use specs;

/// How a flag's value is read and where it goes in the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string (`file://` allowed).
    Str,
    /// An integer.
    Int,
    /// A boolean switch: `--flag` / `--no-flag`.
    Bool,
    /// Binary: base64, `fileb://`, or `file://`.
    Blob,
    /// Binary and secret (a plaintext): like [`Kind::Blob`], but kept out of any JSON value and
    /// put into the request as `SecretBytes`.
    SecretBlob,
    /// A password: a string kept out of any JSON value, put into the request as `Password`.
    Password,
    /// A string-to-string map: `k=v,k2=v2` or a JSON object (`file://` allowed).
    Map,
    /// Tags: `TagKey=k,TagValue=v` per value, or a JSON list (`file://` allowed).
    Tags,
    /// CloudHSM tags: `Key=k,Value=v` per value, or a JSON list (`file://` allowed).
    HsmTags,
    /// A list of strings: one or more values.
    List,
    /// Filters: `name=v1,v2` per value, or a JSON object of lists.
    Filters,
    /// Grant constraints: `EncryptionContextSubset={k=v,k2=v2}` and/or
    /// `EncryptionContextEquals={…}` (the aws CLI's shorthand), or JSON (`file://` allowed).
    Constraints,
    /// Any JSON (`file://` allowed).
    Json,
}

/// One flag of a verb.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ArgSpec {
    /// The flag without its dashes, e.g. `key-id`.
    pub flag: &'static str,
    /// How its value is read.
    pub kind: Kind,
    /// Whether the flag must be given.
    pub required: bool,
    /// The request member it fills (PascalCase); `None`: derived from the flag.
    pub member: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

/// An optional flag.
pub(crate) const fn opt(flag: &'static str, kind: Kind, help: &'static str) -> ArgSpec {
    ArgSpec {
        flag,
        kind,
        required: false,
        member: None,
        help,
    }
}

/// A required flag.
pub(crate) const fn req(flag: &'static str, kind: Kind, help: &'static str) -> ArgSpec {
    ArgSpec {
        flag,
        kind,
        required: true,
        member: None,
        help,
    }
}

impl ArgSpec {
    /// The request member this flag fills.
    pub(crate) fn member_name(&self) -> String {
        match self.member {
            Some(m) => m.to_owned(),
            None => pascal_case(self.flag),
        }
    }
}

/// `cloud-hsm-cluster-id` → `CloudHsmClusterId`.
pub(crate) fn pascal_case(flag: &str) -> String {
    flag.split('-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `GenerateDataKeyWithoutPlaintext` → `generate-data-key-without-plaintext`.
pub(crate) fn kebab_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A parameter that could not be read: printed as the AWS CLI prints parameter errors, exit
/// code 252.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParamError {
    /// The flag, e.g. `--plaintext`.
    pub flag: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Error parsing parameter '{}': {}",
            self.flag, self.message
        )
    }
}

fn perr(flag: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        flag: format!("--{flag}"),
        message: message.into(),
    }
}

fn read_file(flag: &str, path: &str) -> Result<Vec<u8>, ParamError> {
    std::fs::read(Path::new(path))
        .map_err(|e| perr(flag, format!("Unable to load paramfile {path}: {e}")))
}

/// A text value: `file://PATH` is the file's text (UTF-8), `fileb://PATH` its bytes (which
/// must be UTF-8 here), anything else the value itself.
pub(crate) fn text(flag: &str, value: &str) -> Result<String, ParamError> {
    let bytes = if let Some(path) = value.strip_prefix("file://") {
        read_file(flag, path)?
    } else if let Some(path) = value.strip_prefix("fileb://") {
        read_file(flag, path)?
    } else {
        return Ok(value.to_owned());
    };
    String::from_utf8(bytes).map_err(|e| {
        perr(
            flag,
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A blob value (AWS CLI v2 semantics): `fileb://PATH` raw bytes, `file://PATH` the file's
/// bytes, anything else base64 (standard alphabet, padding optional).
pub(crate) fn blob(flag: &str, value: &str) -> Result<SecretBytes, ParamError> {
    if let Some(path) = value
        .strip_prefix("fileb://")
        .or_else(|| value.strip_prefix("file://"))
    {
        return read_file(flag, path).map(SecretBytes::new);
    }
    let trimmed = value.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed.as_bytes())
        .map(SecretBytes::new)
        .map_err(|e| {
            perr(
                flag,
                format!("Invalid base64: {e} (use fileb://PATH for raw bytes)"),
            )
        })
}

/// A password value (`file://` allowed; a trailing newline of a file is dropped).
pub(crate) fn password(flag: &str, value: &str) -> Result<Password, ParamError> {
    let from_file = value.starts_with("file://") || value.starts_with("fileb://");
    let mut t = text(flag, value)?;
    if from_file && t.ends_with('\n') {
        t.pop();
        if t.ends_with('\r') {
            t.pop();
        }
    }
    Ok(Password::new(t))
}

fn json(flag: &str, value: &str) -> Result<Value, ParamError> {
    let t = text(flag, value)?;
    serde_json::from_str(&t)
        .map_err(|e| perr(flag, format!("Invalid JSON: {e}\nJSON received: {t}")))
}

/// Splits shorthand `a=1,b=2` into pairs. A value may not contain `,` or `=` in shorthand
/// (use the JSON form for those).
fn shorthand(flag: &str, value: &str) -> Result<Vec<(String, String)>, ParamError> {
    value
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| {
                    perr(
                        flag,
                        format!("Expected: '=', received: end of input in {p:?} (shorthand is key=value,key2=value2)"),
                    )
                })
        })
        .collect()
}

/// A map: JSON object (`{"k":"v"}` or `file://`) or shorthand `k=v,k2=v2`.
pub(crate) fn map(flag: &str, value: &str) -> Result<Value, ParamError> {
    let looks_json = value.trim_start().starts_with('{')
        || value.starts_with("file://")
        || value.starts_with("fileb://");
    if looks_json {
        let v = json(flag, value)?;
        match &v {
            Value::Object(m) if m.values().all(Value::is_string) => Ok(v),
            _ => Err(perr(flag, "expected a JSON object of string values")),
        }
    } else {
        let mut m = Map::new();
        for (k, v) in shorthand(flag, value)? {
            m.insert(k, Value::String(v));
        }
        Ok(Value::Object(m))
    }
}

/// Grant constraints: JSON, or the aws CLI's shorthand `Name={k=v,k2=v2},Name2={…}`.
pub(crate) fn constraints(flag: &str, value: &str) -> Result<Value, ParamError> {
    if value.trim_start().starts_with('{') || value.starts_with("file://") {
        return json(flag, value);
    }
    let mut out = Map::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').ok_or_else(|| {
            perr(
                flag,
                format!("Expected: '=', received: end of input in {rest:?} (shorthand is EncryptionContextSubset={{k=v}})"),
            )
        })?;
        let body = after
            .strip_prefix('{')
            .and_then(|b| b.split_once('}'))
            .ok_or_else(|| perr(flag, format!("Expected {{k=v,…}} after {name}=")))?;
        let (pairs, tail) = body;
        let mut m = Map::new();
        for (k, v) in shorthand(flag, pairs)? {
            m.insert(k, Value::String(v));
        }
        out.insert(name.trim().to_owned(), Value::Object(m));
        rest = tail.trim_start_matches(',').trim();
    }
    Ok(Value::Object(out))
}

/// The member names of a KMS tag.
pub(crate) const KMS_TAG: (&str, &str) = ("TagKey", "TagValue");
/// The member names of a CloudHSM tag.
pub(crate) const HSM_TAG: (&str, &str) = ("Key", "Value");

/// Tags: each value `TagKey=k,TagValue=v` (`Key=k,Value=v` for CloudHSM, as `names` says), or
/// one JSON list of such objects.
pub(crate) fn tags(
    flag: &str,
    values: &[String],
    names: (&str, &str),
) -> Result<Value, ParamError> {
    let (key, value) = names;
    if let [one] = values {
        if one.trim_start().starts_with('[') || one.starts_with("file://") {
            let v = json(flag, one)?;
            return match v {
                Value::Array(_) => Ok(v),
                _ => Err(perr(flag, "expected a JSON list of tags")),
            };
        }
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let mut tag = Map::new();
        for (k, val) in shorthand(flag, v)? {
            if k != key && k != value {
                return Err(perr(
                    flag,
                    format!("Unknown key {k:?} in {v:?}: a tag is {key}=k,{value}=v"),
                ));
            }
            tag.insert(k, Value::String(val));
        }
        if !tag.contains_key(key) {
            return Err(perr(flag, format!("Missing {key} in {v:?}")));
        }
        tag.entry(value).or_insert(Value::String(String::new()));
        out.push(Value::Object(tag));
    }
    Ok(Value::Array(out))
}

/// Filters: each value `name=v1,v2`, or one JSON object of string lists.
pub(crate) fn filters(flag: &str, values: &[String]) -> Result<Value, ParamError> {
    if let [one] = values {
        if one.trim_start().starts_with('{') || one.starts_with("file://") {
            return json(flag, one);
        }
    }
    let mut m = Map::new();
    for v in values {
        let (name, list) = v
            .split_once('=')
            .ok_or_else(|| perr(flag, format!("Expected name=value1,value2, received {v:?}")))?;
        let entry = m
            .entry(name.trim().to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            items.extend(
                list.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.trim().to_owned())),
            );
        }
    }
    Ok(Value::Object(m))
}

/// Any JSON value (`file://` allowed); a bare word that is not JSON is taken as a string.
pub(crate) fn any_json(flag: &str, value: &str) -> Result<Value, ParamError> {
    let t = text(flag, value)?;
    match serde_json::from_str(&t) {
        Ok(v) => Ok(v),
        Err(_)
            if t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(Value::String(t))
        }
        Err(e) => Err(perr(flag, format!("Invalid JSON: {e}\nJSON received: {t}"))),
    }
}

/// An integer.
pub(crate) fn int(flag: &str, value: &str) -> Result<Value, ParamError> {
    value
        .trim()
        .parse::<u64>()
        .map(Value::from)
        .map_err(|_| perr(flag, format!("invalid literal for int(): {value}")))
}

/// Base64 of bytes, as a JSON string (for non-secret blobs).
pub(crate) fn base64_value(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_convert() {
        assert_eq!(pascal_case("cloud-hsm-cluster-id"), "CloudHsmClusterId");
        assert_eq!(pascal_case("key-id"), "KeyId");
        assert_eq!(
            kebab_case("GenerateDataKeyWithoutPlaintext"),
            "generate-data-key-without-plaintext"
        );
        assert_eq!(
            kebab_case("CreateCustomKeyStore"),
            "create-custom-key-store"
        );
    }

    #[test]
    fn blobs_follow_aws_cli_v2() {
        assert_eq!(blob("plaintext", "aGVsbG8=").unwrap().expose(), b"hello");
        assert_eq!(blob("plaintext", "aGVsbG8").unwrap().expose(), b"hello");
        let e = blob("plaintext", "not base64!").unwrap_err();
        assert_eq!(e.flag, "--plaintext");
        assert!(e.message.contains("base64"), "{e}");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[0, 1, 2, 255]).unwrap();
        let p = f.path().display().to_string();
        assert_eq!(
            blob("plaintext", &format!("fileb://{p}")).unwrap().expose(),
            &[0, 1, 2, 255]
        );
        let e = blob("plaintext", "fileb:///no/such/file").unwrap_err();
        assert!(e.message.contains("/no/such/file"), "{e}");
        // file:// of binary bytes is not text.
        let e = text("policy", &format!("file://{p}")).unwrap_err();
        assert!(e.message.contains("offset 3"), "{e}");
    }

    #[test]
    fn maps_tags_and_filters() {
        assert_eq!(
            map("encryption-context", "a=1,b=2").unwrap(),
            serde_json::json!({"a":"1","b":"2"})
        );
        assert_eq!(
            map("encryption-context", r#"{"a":"x=y"}"#).unwrap(),
            serde_json::json!({"a":"x=y"})
        );
        assert!(map("encryption-context", "a").is_err());
        assert!(map("encryption-context", r#"{"a":1}"#).is_err());
        let t = tags(
            "tags",
            &["TagKey=k,TagValue=v".into(), "TagKey=k2,TagValue=".into()],
            KMS_TAG,
        )
        .unwrap();
        assert_eq!(
            t,
            serde_json::json!([{"TagKey":"k","TagValue":"v"},{"TagKey":"k2","TagValue":""}])
        );
        assert!(tags("tags", &["Key=k".into()], KMS_TAG).is_err());
        let t = tags("tag-list", &["Key=k,Value=v".into()], HSM_TAG).unwrap();
        assert_eq!(t, serde_json::json!([{"Key": "k", "Value": "v"}]));
        assert!(tags("tag-list", &["TagKey=k".into()], HSM_TAG).is_err());
        assert_eq!(
            filters("filters", &["clusterIds=a,b".into()]).unwrap(),
            serde_json::json!({"clusterIds":["a","b"]})
        );
        assert!(int("limit", "ten").is_err());
        assert_eq!(any_json("fault", "NetworkDown").unwrap(), "NetworkDown");
        assert_eq!(
            any_json("fault", r#"{"HsmLost":"hsm-1"}"#).unwrap(),
            serde_json::json!({"HsmLost":"hsm-1"})
        );
    }
}
