//! Printing responses and errors as the AWS CLI v2 does.
//!
//! * `--output json` (default): the response object, pretty-printed with a 4-space indent, AWS
//!   member names, blobs in base64. An empty response (`{}`) prints nothing, as `aws` does.
//!   The JSON is written into a buffer that is zeroized after printing (responses such as
//!   Decrypt's carry plaintext).
//! * `--output text`: an approximation of `aws`'s text output: the scalar members of an object
//!   on one tab-separated line (members in alphabetical order); each list or object member
//!   on lines of its own, prefixed with the member name in capitals (`KEYS\t<arn>\t<id>`); a list
//!   of scalars on one line after that prefix. Text output goes through a `serde_json::Value`,
//!   whose strings are not zeroized: use JSON output for plaintexts where that matters.
//! * Errors: `An error occurred (<Exception>) when calling the <Operation> operation:
//!   <message>` on stderr, exit code 254.

use std::io::{self, Write};

use serde::ser::Impossible;
use serde::{Serialize, Serializer};
use serde_json::Value;
use zeroize::Zeroizing;

use kmscks::ops::Response;

/// Output format (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Pretty JSON, as `aws --output json`.
    Json,
    /// Tab-separated, as `aws --output text` (approximately).
    Text,
}

/// The response's own object (without the enum tag), as pretty JSON with a 4-space indent.
pub(crate) fn response_json(resp: &Response) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut *buf, fmt);
    // Every response type serialises to JSON (string keys, no non-finite floats reach here
    // except through Timestamp, which writes finite seconds).
    if resp.serialize(Unwrap(&mut ser)).is_err() {
        buf.clear();
        buf.extend_from_slice(b"{}");
    }
    buf
}

/// Prints a response in `format`.
pub(crate) fn print_response(
    resp: &Response,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    let json = response_json(resp);
    if json.as_slice() == b"{}" {
        return Ok(());
    }
    match format {
        Format::Json => {
            out.write_all(&json)?;
            out.write_all(b"\n")
        }
        Format::Text => {
            let value: Value = serde_json::from_slice(&json)
                .map_err(|e| io::Error::other(format!("cannot re-read the response: {e}")))?;
            let mut lines = String::new();
            text_lines(None, &value, &mut lines);
            out.write_all(lines.as_bytes())
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        Value::Null => Some("None".to_owned()),
        _ => None,
    }
}

/// Renders `value` as aws-style text lines, `prefix` being the upper-cased member name it
/// came from.
pub(crate) fn text_lines(prefix: Option<&str>, value: &Value, out: &mut String) {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let scalars: Vec<String> = keys.iter().filter_map(|k| scalar(&m[k.as_str()])).collect();
            if !scalars.is_empty() {
                if let Some(p) = prefix {
                    out.push_str(p);
                    out.push('\t');
                }
                out.push_str(&scalars.join("\t"));
                out.push('\n');
            }
            for k in keys {
                let v = &m[k.as_str()];
                if scalar(v).is_none() {
                    text_lines(Some(&k.to_ascii_uppercase()), v, out);
                }
            }
        }
        Value::Array(items) => {
            if items.iter().all(|i| scalar(i).is_some()) {
                if items.is_empty() {
                    return;
                }
                if let Some(p) = prefix {
                    out.push_str(p);
                    out.push('\t');
                }
                let row: Vec<String> = items.iter().filter_map(scalar).collect();
                out.push_str(&row.join("\t"));
                out.push('\n');
            } else {
                for i in items {
                    text_lines(prefix, i, out);
                }
            }
        }
        other => {
            if let Some(s) = scalar(other) {
                if let Some(p) = prefix {
                    out.push_str(p);
                    out.push('\t');
                }
                out.push_str(&s);
                out.push('\n');
            }
        }
    }
}

/// The AWS CLI's line for a service error.
pub(crate) fn error_line(exception: &str, operation: &str, message: &str) -> String {
    format!("An error occurred ({exception}) when calling the {operation} operation: {message}")
}

/// A serializer that serialises only the payload of a newtype enum variant: turns
/// `Response::Decrypt(r)` into `r`'s own JSON without an intermediate value.
struct Unwrap<S>(S);

fn not_a_variant<E: serde::ser::Error>() -> E {
    E::custom("expected a newtype enum variant")
}

macro_rules! refuse {
    ($($name:ident($($t:ty),*)),* $(,)?) => {
        $( fn $name(self, $(_: $t),*) -> Result<Self::Ok, Self::Error> { Err(not_a_variant()) } )*
    };
}

impl<S: Serializer> Serializer for Unwrap<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStruct = Impossible<S::Ok, S::Error>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(self.0)
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_variant())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_variant())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(not_a_variant())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_a_variant())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_a_variant())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_a_variant())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(not_a_variant())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Err(not_a_variant())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_a_variant())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmscks::api::kms::{Empty, EncryptResponse, KeyListEntry, ListKeysResponse};
    use kmscks::types::EncryptionAlgorithm;

    #[test]
    fn json_is_the_inner_object_with_four_space_indent() {
        let r = Response::Encrypt(EncryptResponse {
            ciphertext_blob: vec![1, 2, 3],
            key_id: "arn:k".into(),
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        });
        let mut out = Vec::new();
        print_response(&r, Format::Json, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n    \"CiphertextBlob\": \"AQID\",\n    \"KeyId\": \"arn:k\",\n    \"EncryptionAlgorithm\": \"SYMMETRIC_DEFAULT\"\n}\n"
        );
        let mut out = Vec::new();
        print_response(&Response::EnableKey(Empty {}), Format::Json, &mut out).unwrap();
        assert!(out.is_empty(), "empty responses print nothing");
    }

    #[test]
    fn text_is_tab_separated_with_prefixed_lists() {
        let r = Response::ListKeys(ListKeysResponse {
            keys: vec![KeyListEntry {
                key_id: "id1".into(),
                key_arn: "arn1".into(),
            }],
            next_marker: None,
            truncated: false,
        });
        let mut out = Vec::new();
        print_response(&r, Format::Text, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "False\nKEYS\tarn1\tid1\n");
    }
}
