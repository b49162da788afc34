//! `--generate-cli-skeleton`: the request's members with placeholder values, derived from the
//! verb's flags (the same table `--cli-input-json` is read against), as the AWS CLI prints
//! one: `""` for strings, `0` for integers, `true` for switches, `null` for blobs and for the
//! structures kmscks does not fill, `{"KeyName": ""}` for maps, one placeholder element for
//! lists and tags.
//!
//! kmscks's flags do not know enum values, so an enum member's placeholder is `""` where
//! `aws` prints one of its values.

use super::args::{ArgSpec, Kind, HSM_TAG, KMS_TAG};
use super::tree::Node;

/// The skeleton of a request with the flags `args`.
pub(crate) fn input(args: &[ArgSpec]) -> Node {
    let s = |t: &str| Node::String(t.to_owned());
    let tag = |(k, v): (&str, &str)| {
        Node::Array(vec![Node::Object(vec![
            (k.to_owned(), s("")),
            (v.to_owned(), s("")),
        ])])
    };
    Node::Object(
        args.iter()
            .map(|a| {
                let value = match a.kind {
                    Kind::Str | Kind::Password => s(""),
                    Kind::Int => Node::Number(0.into()),
                    Kind::Bool => Node::Bool(true),
                    Kind::Blob | Kind::SecretBlob | Kind::Json | Kind::Structure => Node::Null,
                    Kind::Map => Node::Object(vec![("KeyName".into(), s(""))]),
                    Kind::Tags => tag(KMS_TAG),
                    Kind::HsmTags => tag(HSM_TAG),
                    Kind::List => Node::Array(vec![s("")]),
                    Kind::Filters => {
                        Node::Object(vec![("KeyName".into(), Node::Array(vec![s("")]))])
                    }
                    Kind::Constraints => {
                        let context = || Node::Object(vec![("KeyName".into(), s(""))]);
                        Node::Object(vec![
                            ("EncryptionContextSubset".into(), context()),
                            ("EncryptionContextEquals".into(), context()),
                        ])
                    }
                };
                (a.member_name(), value)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{opt, req};

    #[test]
    fn a_skeleton_has_every_member_with_awss_placeholders() {
        let n = input(&[
            req("key-id", Kind::Str, ""),
            req("plaintext", Kind::SecretBlob, ""),
            opt("encryption-context", Kind::Map, ""),
            opt("grant-tokens", Kind::List, ""),
            opt("dry-run", Kind::Bool, ""),
            opt("limit", Kind::Int, ""),
            opt("tags", Kind::Tags, ""),
            // A structure kmscks refuses to see set: `null`, so a skeleton filled in and
            // given back is not refused for it.
            opt("recipient", Kind::Structure, ""),
        ]);
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"KeyId":"","Plaintext":null,"EncryptionContext":{"KeyName":""},"GrantTokens":[""],"DryRun":true,"Limit":0,"Tags":[{"TagKey":"","TagValue":""}],"Recipient":null}"#
        );
    }
}
