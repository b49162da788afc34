//! The HTTP endpoint's request decoder on generated input, on the stable toolchain: the same
//! check as the fuzz target `fuzz/fuzz_targets/aws_json_decode.rs` (run that one with
//! `cargo +nightly fuzz run aws_json_decode` for coverage-guided search). Bad bodies must get
//! an error, never a panic, and whatever decodes must survive a JSON round trip.

#[path = "../fuzz/fuzz_targets/aws_json_check.rs"]
mod aws_json_check;

use aws_json_check::check;
use kmscks::ops::Op;
use kmscks::protocol::aws_json::{self, Target};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Member names AWS requests use, so generated objects often hit real members.
const MEMBERS: &[&str] = &[
    "KeyId",
    "Plaintext",
    "CiphertextBlob",
    "EncryptionContext",
    "GrantTokens",
    "KeySpec",
    "NumberOfBytes",
    "Description",
    "Tags",
    "TagKey",
    "TagValue",
    "CustomKeyStoreId",
    "CustomKeyStoreName",
    "CloudHsmClusterId",
    "KeyStorePassword",
    "TrustAnchorCertificate",
    "Origin",
    "KeyUsage",
    "Policy",
    "Limit",
    "Marker",
    "AliasName",
    "TargetKeyId",
    "PendingWindowInDays",
    "DestinationKeyId",
    "ClusterId",
    "SubnetIds",
    "HsmType",
    "Filters",
    "MaxResults",
    "NextToken",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[A-Za-z0-9+/=:._-]{0,40}".prop_map(Value::String),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(MEMBERS), inner), 0..6).prop_map(
                |members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect(),
                    )
                }
            ),
        ]
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(Op::ALL.to_vec())
}

/// `<Service>.<Operation>` as an SDK names `op`.
fn target(op: Op) -> String {
    format!("{}.{}", aws_json::service_of(op), op.name())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_under_any_target_never_panic(op in op(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut data = target(op).into_bytes();
        data.push(b'\n');
        data.extend_from_slice(&body);
        check(&data);
        check(&body);
    }

    #[test]
    fn generated_json_objects_decode_or_are_refused_and_decoded_ones_round_trip(op in op(), body in json_value()) {
        let mut data = target(op).into_bytes();
        data.push(b'\n');
        data.extend_from_slice(body.to_string().as_bytes());
        check(&data);
    }
}

#[test]
fn valid_bodies_decode_and_survive_the_round_trip() {
    let cases = [
        (
            Op::Encrypt,
            json!({"KeyId": "alias/x", "Plaintext": "aGVsbG8=", "EncryptionContext": {"a": "b"}}),
        ),
        (
            Op::GenerateDataKey,
            json!({"KeyId": "alias/x", "KeySpec": "AES_256", "GrantTokens": []}),
        ),
        (
            Op::CreateKey,
            json!({"Description": "d", "Tags": [{"TagKey": "k", "TagValue": "v"}]}),
        ),
        (Op::ListKeys, json!({"Limit": 10})),
    ];
    for (op, body) in cases {
        // Not vacuous: these decode, so `check` exercises the round trip on them.
        let decoded = aws_json::decode_request(Target::Op(op), body.to_string().as_bytes());
        assert!(decoded.is_ok(), "{op:?} {body}: {:?}", decoded.err());
        let mut data = target(op).into_bytes();
        data.push(b'\n');
        data.extend_from_slice(body.to_string().as_bytes());
        check(&data);
    }
}
