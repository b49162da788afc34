//! Printing answers and errors as the AWS CLI v2 does.
//!
//! * `--output json` (default): the answer pretty-printed with a 4-space indent, members in
//!   the order of the response type (the service model's), blobs in base64, timestamps in
//!   ISO 8601 ([`kmscks::types::Timestamp::cli_iso8601`]). An empty answer (`{}`) prints
//!   nothing, as `aws` does. The bytes are written from a buffer that is zeroized afterwards
//!   (answers such as Decrypt's carry plaintext).
//! * `--output text`: awscli's text formatter (`awscli/text.py`), rule for rule: an object's
//!   scalar members on one tab-separated line, sorted by member name and led by the upper-cased
//!   name of the member it came from; its list and object members after it, sorted, each under
//!   its own name; a list of objects one line per element with the scalar columns of every
//!   element (blank where one lacks a member); a list of scalars one `NAME\tvalue` line per
//!   element; `True`/`False`/`None` for booleans and null.
//! * `--output table|yaml|yaml-stream`: refused by name ([`Format::parse`]).
//! * Errors: `An error occurred (<Exception>) when calling the <Operation> operation:
//!   <message>` on stderr after a blank line, exit code 254.

use std::io::{self, Write};

use zeroize::Zeroizing;

use super::tree::Node;

/// Output format (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Pretty JSON, as `aws --output json`.
    Json,
    /// Tab-separated, as `aws --output text`.
    Text,
}

/// Every `--output` value the AWS CLI v2 takes (the parser accepts them all, so that the
/// ones kmscks does not print are refused by name rather than as unknown).
pub(crate) const AWS_FORMATS: &[&str] = &["json", "text", "table", "yaml", "yaml-stream"];

impl Format {
    /// The format `--output` names, or the message refusing it.
    pub(crate) fn parse(name: &str) -> Result<Format, String> {
        match name {
            "json" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            other => Err(format!(
                "--output {other} is not supported by kmscks: use --output json or --output text \
                 (AWS CLI v2's table, yaml and yaml-stream formats are not implemented)"
            )),
        }
    }
}

/// Prints `node` in `format`.
pub(crate) fn print(node: &Node, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Json => print_json(node, out),
        Format::Text => {
            let mut text = Zeroizing::new(String::new());
            text_lines(node, None, None, &mut text);
            out.write_all(text.as_bytes())
        }
    }
}

fn print_json(node: &Node, out: &mut dyn Write) -> io::Result<()> {
    if matches!(node, Node::Object(m) if m.is_empty()) {
        return Ok(());
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut *buf, fmt);
    serde::Serialize::serialize(node, &mut ser).map_err(io::Error::other)?;
    buf.push(b'\n');
    out.write_all(&buf)
}

/// Python's `str()` of a scalar, as the text formatter writes it.
fn scalar(v: &Node) -> Option<String> {
    match v {
        Node::String(s) => Some(s.clone()),
        Node::Number(n) => Some(n.to_string()),
        Node::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        Node::Null => Some("None".to_owned()),
        Node::Array(_) | Node::Object(_) => None,
    }
}

/// `awscli.text._format_text`: `identifier` is the member name the value came from,
/// `scalar_keys` the columns of a list of objects it is an element of.
pub(crate) fn text_lines(
    item: &Node,
    identifier: Option<&str>,
    scalar_keys: Option<&[String]>,
    out: &mut String,
) {
    match item {
        Node::Object(m) => {
            let mut sorted: Vec<&(String, Node)> = m.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut scalars: Vec<String> = Vec::new();
            let mut non_scalars: Vec<(&str, &Node)> = Vec::new();
            match scalar_keys {
                None => {
                    for (k, v) in sorted {
                        match scalar(v) {
                            Some(s) => scalars.push(s),
                            None => non_scalars.push((k, v)),
                        }
                    }
                }
                Some(keys) => {
                    for k in keys {
                        scalars.push(item.get(k).and_then(scalar).unwrap_or_default());
                    }
                    for (k, v) in sorted {
                        if !keys.contains(k) {
                            non_scalars.push((k, v));
                        }
                    }
                }
            }
            if !scalars.is_empty() {
                if let Some(id) = identifier {
                    scalars.insert(0, id.to_uppercase());
                }
                out.push_str(&scalars.join("\t"));
                out.push('\n');
            }
            for (k, v) in non_scalars {
                text_lines(v, Some(k), None, out);
            }
        }
        Node::Array(items) => {
            if items.is_empty() {
                return;
            }
            if items.iter().any(|i| matches!(i, Node::Object(_))) {
                let mut keys: Vec<String> = Vec::new();
                for i in items {
                    if let Node::Object(m) = i {
                        for (k, v) in m {
                            if !v.is_container() && !keys.contains(k) {
                                keys.push(k.clone());
                            }
                        }
                    }
                }
                keys.sort();
                for i in items {
                    text_lines(i, identifier, Some(&keys), out);
                }
            } else if items.iter().any(|i| matches!(i, Node::Array(_))) {
                let scalars: Vec<&Node> = items.iter().filter(|i| !i.is_container()).collect();
                scalar_list(&scalars, identifier, out);
                for i in items.iter().filter(|i| i.is_container()) {
                    text_lines(i, identifier, None, out);
                }
            } else {
                let all: Vec<&Node> = items.iter().collect();
                scalar_list(&all, identifier, out);
            }
        }
        other => {
            out.push_str(&scalar(other).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// `awscli.text._format_scalar_list`.
fn scalar_list(items: &[&Node], identifier: Option<&str>, out: &mut String) {
    if items.is_empty() {
        return;
    }
    match identifier {
        Some(id) => {
            for i in items {
                out.push_str(&id.to_uppercase());
                out.push('\t');
                out.push_str(&scalar(i).unwrap_or_default());
                out.push('\n');
            }
        }
        None => {
            let row: Vec<String> = items.iter().filter_map(|i| scalar(i)).collect();
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
    }
}

/// The AWS CLI's line for a service error.
pub(crate) fn error_line(exception: &str, operation: &str, message: &str) -> String {
    format!("An error occurred ({exception}) when calling the {operation} operation: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmscks::api::kms::{Empty, EncryptResponse, KeyListEntry, ListKeysResponse};
    use kmscks::ops::Response;
    use kmscks::types::EncryptionAlgorithm;

    fn printed(node: &Node, format: Format) -> String {
        let mut out = Vec::new();
        print(node, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_is_the_inner_object_with_four_space_indent_in_the_types_member_order() {
        let r = Response::Encrypt(EncryptResponse {
            ciphertext_blob: vec![1, 2, 3],
            key_id: "arn:k".into(),
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        });
        assert_eq!(
            printed(&Node::of_response(&r), Format::Json),
            "{\n    \"CiphertextBlob\": \"AQID\",\n    \"KeyId\": \"arn:k\",\n    \"EncryptionAlgorithm\": \"SYMMETRIC_DEFAULT\"\n}\n"
        );
        let empty = Node::of_response(&Response::EnableKey(Empty {}));
        assert_eq!(
            printed(&empty, Format::Json),
            "",
            "empty answers print nothing"
        );
    }

    #[test]
    fn text_is_awscli_text_formatter() {
        let r = Response::ListKeys(ListKeysResponse {
            keys: vec![KeyListEntry {
                key_id: "id1".into(),
                key_arn: "arn1".into(),
            }],
            next_marker: None,
            truncated: false,
        });
        let text = printed(&Node::of_response(&r), Format::Text);
        assert_eq!(text, "False\nKEYS\tarn1\tid1\n");
        // As `aws kms describe-key --output text` printed it for the same key (scalars sorted
        // by member name, a list of scalars one line per element).
        let n = Node::parse(
            br#"{"KeyMetadata": {"AWSAccountId": "111122223333", "KeyId": "k", "Arn": "a",
                "CreationDate": "2026-12-03T21:42:44.552000+00:00", "Enabled": true,
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT", "X"], "MultiRegion": false}}"#,
        )
        .unwrap();
        assert_eq!(
            printed(&n, Format::Text),
            "KEYMETADATA\t111122223333\ta\t2026-12-03T21:42:44.552000+00:00\tTrue\tk\tFalse\n\
             ENCRYPTIONALGORITHMS\tSYMMETRIC_DEFAULT\nENCRYPTIONALGORITHMS\tX\n"
        );
        // A list of objects: the columns of every element, blank where one lacks a member.
        let n = Node::parse(
            br#"{"Aliases": [{"AliasName": "a", "TargetKeyId": "k"}, {"AliasName": "b"}]}"#,
        )
        .unwrap();
        assert_eq!(printed(&n, Format::Text), "ALIASES\ta\tk\nALIASES\tb\t\n");
        // A bare scalar (what a --query may leave) and a bare list of scalars.
        assert_eq!(printed(&Node::String("x".into()), Format::Text), "x\n");
        let n = Node::parse(br#"["a", 1, null]"#).unwrap();
        assert_eq!(printed(&n, Format::Text), "a\t1\tNone\n");
    }

    #[test]
    fn table_and_yaml_are_refused_by_name() {
        assert_eq!(Format::parse("json"), Ok(Format::Json));
        for f in ["table", "yaml", "yaml-stream"] {
            let e = Format::parse(f).unwrap_err();
            assert!(
                e.contains(f) && e.contains("json") && e.contains("text"),
                "{e}"
            );
        }
    }
}
