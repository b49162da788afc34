//! Request members AWS defines that kmscks does not honour, refused by name instead of being
//! silently dropped.
//!
//! Why: a JSON body is decoded into the operation's own request type, and serde skips members
//! the type does not have. For most such members skipping is what AWS itself does with a member
//! it does not know; for a member AWS *does* know it would be a lie — a `Decrypt` with a
//! `Recipient` would hand the plaintext back in the clear where AWS returns it sealed for an
//! enclave, a `CreateHsm` with an `IpAddress` would answer with another address. So each such
//! member is listed here once, with the values kmscks can honour (AWS's defaults, which mean
//! the same as leaving the member out), and a request that sets it to anything else is refused
//! with an error naming the member and the reason.
//!
//! `tests/aws_clients.rs` holds the list to AWS's published models: every input member botocore
//! knows for an operation of the table is either a member of its request type or listed here.

use crate::error::{KmsError, Result};
use crate::ops::Op;
use crate::ErrorKind;

/// One member kmscks does not honour.
struct Unhonoured {
    op: Op,
    member: &'static str,
    /// The JSON values (as written, e.g. `"FIPS"`, `false`) meaning what kmscks does anyway.
    honoured: &'static [&'static str],
    why: &'static str,
}

const RECIPIENT: &str = "Nitro Enclaves attestation is not simulated";
const DRY_RUN_MODIFIERS: &str = "DryRun checks every condition; it cannot skip the ciphertext's";
const CUSTOM_KEY_STORE_XKS: &str = "external key stores (XKS) are not simulated";

macro_rules! unhonoured {
    ($($op:ident $member:literal [$($value:literal),*] $why:expr;)*) => {
        const TABLE: &[Unhonoured] = &[$(Unhonoured {
            op: Op::$op,
            member: $member,
            honoured: &[$($value),*],
            why: $why,
        },)*];
    };
}

unhonoured! {
    Decrypt "Recipient" [] RECIPIENT;
    GenerateDataKey "Recipient" [] RECIPIENT;
    GenerateDataKeyPair "Recipient" [] RECIPIENT;
    GenerateRandom "Recipient" [] RECIPIENT;
    DeriveSharedSecret "Recipient" [] RECIPIENT;
    Decrypt "DryRunModifiers" ["[]"] DRY_RUN_MODIFIERS;
    ReEncrypt "DryRunModifiers" ["[]"] DRY_RUN_MODIFIERS;
    CreateCluster "Mode" ["\"FIPS\""] "kmscks simulates FIPS-mode clusters only";
    CreateCluster "NetworkType" ["\"IPV4\""] "kmscks simulates IPv4 subnets only";
    CreateCluster "BackupRetentionPolicy" []
        "set it after creation with ModifyCluster, which kmscks supports";
    CreateHsm "IpAddress" [] "kmscks assigns the address of every simulated HSM";
    DescribeBackups "SortAscending" ["false"] "backups are listed newest first";
    DescribeBackups "Shared" ["false"] "backups shared from other accounts are not simulated";
    ModifyCluster "HsmType" [] "a cluster keeps the HSM type it was created with";
    CreateCustomKeyStore "XksProxyUriEndpoint" [] CUSTOM_KEY_STORE_XKS;
    CreateCustomKeyStore "XksProxyUriPath" [] CUSTOM_KEY_STORE_XKS;
    CreateCustomKeyStore "XksProxyVpcEndpointServiceName" [] CUSTOM_KEY_STORE_XKS;
    CreateCustomKeyStore "XksProxyVpcEndpointServiceOwner" [] CUSTOM_KEY_STORE_XKS;
    CreateCustomKeyStore "XksProxyAuthenticationCredential" [] CUSTOM_KEY_STORE_XKS;
    CreateCustomKeyStore "XksProxyConnectivity" [] CUSTOM_KEY_STORE_XKS;
    UpdateCustomKeyStore "XksProxyUriEndpoint" [] CUSTOM_KEY_STORE_XKS;
    UpdateCustomKeyStore "XksProxyUriPath" [] CUSTOM_KEY_STORE_XKS;
    UpdateCustomKeyStore "XksProxyVpcEndpointServiceName" [] CUSTOM_KEY_STORE_XKS;
    UpdateCustomKeyStore "XksProxyVpcEndpointServiceOwner" [] CUSTOM_KEY_STORE_XKS;
    UpdateCustomKeyStore "XksProxyAuthenticationCredential" [] CUSTOM_KEY_STORE_XKS;
    UpdateCustomKeyStore "XksProxyConnectivity" [] CUSTOM_KEY_STORE_XKS;
    CreateKey "XksKeyId" [] CUSTOM_KEY_STORE_XKS;
    ImportKeyMaterial "KeyMaterialDescription" []
        "a key keeps one imported material, which ListKeyRotations does not list";
}

/// The members of `op` kmscks knows from AWS's model and does not honour.
pub(super) fn members(op: Op) -> impl Iterator<Item = &'static str> {
    TABLE.iter().filter(move |u| u.op == op).map(|u| u.member)
}

/// Refuses `body` when it sets a member of `op` kmscks does not honour to a value other than
/// the ones it does — however the name is spelled (`"Recipien\u0074"` is `Recipient`) and
/// however often it occurs (serde_json's map would keep only the last). Costs a substring
/// search of the body for each listed member of `op` (none for most operations); the body is
/// parsed only when a listed name, or an escape that could spell one, occurs in it.
pub(super) fn check(op: Op, body: &[u8]) -> Result<()> {
    let mut parsed: Option<Members> = None;
    let escaped = memchr::memchr(b'\\', body).is_some();
    for u in TABLE.iter().filter(|u| u.op == op) {
        if !escaped && !contains(body, u.member) {
            continue;
        }
        let members = match &parsed {
            Some(members) => members,
            // A body that does not parse is the decoder's to refuse, with its own message.
            None => match serde_json::from_slice(body) {
                Ok(members) => parsed.insert(members),
                Err(_) => return Ok(()),
            },
        };
        let honoured = |value: &serde_json::Value| {
            value.is_null()
                || u.honoured.iter().any(|h| {
                    serde_json::from_str::<serde_json::Value>(h).is_ok_and(|h| h == *value)
                })
        };
        if members
            .0
            .iter()
            .any(|(name, value)| name == u.member && !honoured(value))
        {
            return Err(refusal(op, u));
        }
    }
    Ok(())
}

/// A body's top-level members in order, each occurrence of a repeated name kept.
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Members, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// Whether `body` holds the quoted member name. Jumps from quote to quote (memchr, SIMD): a
/// body is mostly base64 blobs, which hold no quote, so a 5.6 KB Decrypt body costs a few
/// dozen compares instead of one per byte.
fn contains(body: &[u8], member: &str) -> bool {
    let name = member.as_bytes();
    memchr::memchr_iter(b'"', body).any(|q| {
        body.get(q + 1..q + 1 + name.len()) == Some(name)
            && body.get(q + 1 + name.len()) == Some(&b'"')
    })
}

fn refusal(op: Op, u: &Unhonoured) -> KmsError {
    let kind = if super::aws_json::service_of(op) == super::aws_json::CLOUDHSM_SERVICE {
        ErrorKind::CloudHsmInvalidRequestException
    } else {
        ErrorKind::UnsupportedOperationException
    };
    let allowed = match u.honoured {
        [] => String::new(),
        values => format!(" (only {} is supported)", values.join(" or ")),
    };
    KmsError::new(
        kind,
        format!(
            "kmscks does not support {} in {}{allowed}: {}",
            u.member,
            op.name(),
            u.why
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_member_set_to_another_value_is_refused_naming_it() {
        let e = check(
            Op::Decrypt,
            br#"{"CiphertextBlob":"AA==","Recipient":{"x":1}}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedOperationException);
        assert!(e.message().contains("Recipient in Decrypt"), "{e}");
        let e = check(Op::CreateCluster, br#"{"Mode":"NON_FIPS"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CloudHsmInvalidRequestException);
        assert!(e.message().contains("only \"FIPS\""), "{e}");
    }

    #[test]
    fn a_listed_member_spelled_with_an_escape_or_repeated_is_refused_all_the_same() {
        let recipient = r#"{"KeyEncryptionAlgorithm":"RSAES_OAEP_SHA_256"}"#;
        for body in [
            format!(r#"{{"KeyId":"alias/a","Recipien\u0074":{recipient}}}"#),
            format!(r#"{{"KeyId":"alias/a","Recipient":{recipient},"Recipient":null}}"#),
            format!(r#"{{"KeyId":"alias/a","Recipient":null,"Recipient":{recipient}}}"#),
        ] {
            let e = check(Op::GenerateDataKey, body.as_bytes()).unwrap_err();
            assert!(
                e.message().contains("Recipient in GenerateDataKey"),
                "{body}: {e}"
            );
        }
        // An escape elsewhere (a slash escaped in a blob) parses, and passes.
        check(Op::Decrypt, br#"{"CiphertextBlob":"AA\/A"}"#).unwrap();
        check(Op::Decrypt, br#"{"Recipient":null,"Recipient":null}"#).unwrap();
    }

    #[test]
    fn the_default_value_absence_and_null_pass() {
        check(
            Op::CreateCluster,
            br#"{"Mode":"FIPS","NetworkType":"IPV4"}"#,
        )
        .unwrap();
        check(
            Op::DescribeBackups,
            br#"{"SortAscending":false,"Shared":null}"#,
        )
        .unwrap();
        check(Op::Decrypt, br#"{"CiphertextBlob":"AA=="}"#).unwrap();
        // A name inside a value is not a member.
        check(
            Op::Decrypt,
            br#"{"EncryptionContext":{"k":"Recipient"},"CiphertextBlob":"AA=="}"#,
        )
        .unwrap();
    }

    #[test]
    fn a_member_name_is_found_only_whole_and_quoted() {
        assert!(contains(br#"{"Recipient":1}"#, "Recipient"));
        assert!(contains(br#"{"A":"x","Recipient":1}"#, "Recipient"));
        assert!(!contains(br#"{"RecipientX":1}"#, "Recipient"));
        assert!(!contains(br#"{"XRecipient":1}"#, "Recipient"));
        assert!(!contains(br#"{"Recipient"#, "Recipient"));
        assert!(!contains(br#"Recipient"#, "Recipient"));
        assert!(!contains(b"", "Recipient"));
    }

    #[test]
    fn a_body_that_does_not_parse_is_left_to_the_decoder() {
        check(Op::Decrypt, br#"{"Recipient": "#).unwrap();
    }
}
