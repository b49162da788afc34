//! Every integer member of every request, as the AWS JSON decoder holds it to the range the
//! service holds it to: a value past every integer type (`-1`, `18446744073709551616`) gets
//! AWS's `ValidationException` for the bound it crosses, and the service refuses the value
//! just past that bound, which the member's type does hold, for the same bound; where the
//! decoder names the type's own bound, the service takes that value.
//!
//! Why: the decoder's ranges (`protocol::ranges`) restate which `types::limits` range each
//! operation's member is checked against where the service checks it, in layers the protocol
//! may not name. This holds the two statements together, and finds an integer member added to
//! a request without its range: the decoder then names its type's bound, which the service
//! refuses.

mod common;

use kmscks::error::KmsError;
use kmscks::ops::{Op, Request};
use kmscks::protocol::aws_json::{self, Target};
use kmscks::{ErrorKind, Kms};
use serde_json::{json, Value};

/// The decoder's answer to `base` with the member at `path` (names, and the indices of items
/// `base` has) set to the JSON number `number`, as a request of `op`. The number is text: one
/// past 64 bits has no [`Value`].
fn decode(op: Op, base: &Value, path: &[&str], number: &str) -> Result<Request, KmsError> {
    const SLOT: &str = "the number";
    let mut body = base.clone();
    let at = path
        .iter()
        .fold(&mut body, |v, &step| match step.parse::<usize>() {
            Ok(index) => &mut v[index],
            Err(_) => &mut v[step],
        });
    *at = json!(SLOT);
    let text = body.to_string().replace(&format!("\"{SLOT}\""), number);
    aws_json::decode_request(Target::Op(op), text.as_bytes())
}

/// The bound after `words` (`greater than or equal to`) in a refusal's message.
fn bound_in(message: &str, words: &str) -> Option<u64> {
    let (_, rest) = message.split_once(&format!("Member must have value {words} "))?;
    rest.parse().ok()
}

/// An in-memory service with what requests need to reach the service's range checks (and,
/// for a member with no range, to be answered): a key, a connected store on an ACTIVE
/// cluster with its `kmsuser`, a crypto user no one is logged in as (`key delete` logs in,
/// and KMS holds kmsuser's session), and one of the cluster's HSMs.
/// The crypto user [`Fixture`] makes.
const CRYPTO_USER: &str = "ranges_cu";

struct Fixture {
    kms: Kms,
    key: String,
    store: String,
    cluster: String,
    hsm: String,
}

impl Fixture {
    fn new() -> Fixture {
        let (kms, clock) = common::kms();
        let store = common::connected_store(&kms, &clock, "ranges");
        let key = common::create_key(&kms, None);
        let cluster = store.cluster.cluster_id;
        let described = kms.describe_clusters(&Default::default()).unwrap();
        let hsm = described.clusters[0].hsms[0].hsm_id.to_string();
        kms.create_hsm_user(&kmscks::api::hsm::UserRequest {
            cluster_id: cluster.clone(),
            username: CRYPTO_USER.into(),
            role: None,
            password: kmscks::secret::Password::new(common::KMSUSER_PASSWORD),
        })
        .unwrap();
        Fixture {
            kms,
            key,
            store: store.store_id,
            cluster,
            hsm,
        }
    }

    /// The members `op`'s requests need besides the one checked (`{}` for most).
    fn base(&self, op: Op) -> Value {
        match op {
            Op::ListKeyPolicies
            | Op::ListResourceTags
            | Op::ListGrants
            | Op::ListKeyRotations
            | Op::ScheduleKeyDeletion
            | Op::EnableKeyRotation
            | Op::GenerateDataKey
            | Op::GenerateDataKeyWithoutPlaintext => json!({ "KeyId": self.key }),
            Op::ListRetirableGrants => {
                json!({ "RetiringPrincipal": "arn:aws:iam::111122223333:role/r" })
            }
            Op::ListHsmTags => json!({ "ResourceId": self.cluster }),
            // Connected: the wait returns at once, whatever its timeout.
            Op::WaitForConnection => json!({ "CustomKeyStoreId": self.store }),
            Op::DeleteKeyObject => json!({
                "ClusterId": self.cluster,
                "Username": CRYPTO_USER,
                "Password": common::KMSUSER_PASSWORD,
            }),
            Op::InjectFault => json!({ "ClusterId": self.cluster }),
            _ => json!({}),
        }
    }
}

/// One side of an integer member's range.
struct Side {
    /// A JSON integer past every type on this side.
    past_type: &'static str,
    /// The words of the constraint a value past this side crosses.
    words: &'static str,
    /// The value just past `bound` on this side, if the type holds one.
    outside: fn(u64) -> Option<u64>,
    /// The type's own bound on this side, given the largest value it holds.
    type_bound: fn(u64) -> u64,
}

const SIDES: [Side; 2] = [
    Side {
        past_type: "-1",
        words: "greater than or equal to",
        outside: |b| b.checked_sub(1),
        type_bound: |_| 0,
    },
    Side {
        past_type: "18446744073709551616",
        words: "less than or equal to",
        outside: |b| b.checked_add(1),
        type_bound: |type_max| type_max,
    },
];

/// Whether `e` is a refusal of `value` for `bound`: AWS's wording, exactly `aws` with the
/// value put in; or, from a check that words it its own way (CloudTrail's and CloudHSM's
/// `MaxResults`), an error naming both.
fn refuses_for(e: &KmsError, value: u64, bound: u64, aws: &str) -> bool {
    if e.message().starts_with("1 validation error detected") {
        e.message() == aws
    } else {
        matches!(
            e.kind(),
            ErrorKind::ValidationException | ErrorKind::CloudHsmInvalidRequestException
        ) && e.message().contains(&value.to_string())
            && e.message().contains(&bound.to_string())
    }
}

/// Holds the member at `path` of `op`'s requests (on `base`) to the service, if it is an
/// integer member; what it checked, each as `<op> <member> <constraint words> <bound>`.
fn check_member(kms: &Kms, op: Op, base: &Value, path: &[&str]) -> Vec<String> {
    let member = path.last().expect("a path names a member");
    let mut camel = member.to_string();
    camel[..1].make_ascii_lowercase();
    // An integer member is one that -1 does not fit, naming it.
    let integer = decode(op, base, path, "-1").is_err_and(|e| {
        e.message().starts_with(&format!(
            "1 validation error detected: Value '-1' at '{camel}'"
        ))
    });
    if !integer {
        return Vec::new();
    }
    // The largest value its type holds.
    let type_max = match decode(op, base, path, &u64::MAX.to_string()) {
        Ok(_) => u64::MAX,
        Err(_) => u64::from(u32::MAX),
    };
    let service = |value: u64| {
        let request = decode(op, base, path, &value.to_string())
            .unwrap_or_else(|e| panic!("{op:?} {member}={value}: {e}"));
        kms.dispatch(&request)
    };
    let mut checked = Vec::new();
    for side in SIDES {
        let e = decode(op, base, path, side.past_type).expect_err("past every type");
        assert_eq!(e.kind(), ErrorKind::ValidationException, "{op:?} {member}");
        let bound =
            bound_in(e.message(), side.words).unwrap_or_else(|| panic!("{op:?} {member}: {e}"));
        if bound == (side.type_bound)(type_max) {
            // No range but the type's: the service takes its bound. It answers, or refuses
            // what the value names (`Key 0 does not exist`), which it looks up past every
            // range check; a refusal before it looks at the value (the request's store or
            // cluster) would prove nothing, and fails here too.
            if let Err(e) = service(bound) {
                assert!(
                    e.kind() != ErrorKind::ValidationException
                        && e.message().contains(&format!(" {bound} ")),
                    "{op:?} {member}={bound}: the service holds it to a range the decoder does \
                     not know (protocol::ranges), or the request does not reach the service's \
                     checks of it: {e}"
                );
            }
        } else {
            let value = (side.outside)(bound).expect("a bound inside the type");
            let aws = e
                .message()
                .replace(&format!("'{}'", side.past_type), &format!("'{value}'"));
            let e = service(value).expect_err("the value past the bound is refused");
            assert!(
                refuses_for(&e, value, bound, &aws),
                "{op:?} {member}={value}: the service says {e}, the decoder {aws}"
            );
        }
        checked.push(format!("{op:?} {member} {} {bound}", side.words));
    }
    checked
}

#[test]
fn the_service_refuses_the_value_just_past_each_bound_the_decoder_names_for_that_bound() {
    let f = Fixture::new();
    let mut checked = Vec::new();
    for &op in Op::ALL.iter().filter(|&&op| op != Op::Refused) {
        let base = f.base(op);
        for &member in aws_json::request_members(op).0 {
            checked.extend(check_member(&f.kms, op, &base, &[member]));
        }
    }
    // The members the service holds to a range are among those found.
    for expected in [
        "ListKeys Limit less than or equal to 1000",
        "ListAliases Limit less than or equal to 100",
        "GenerateRandom NumberOfBytes greater than or equal to 1",
        "ScheduleKeyDeletion PendingWindowInDays less than or equal to 365",
        "DescribeClusters MaxResults less than or equal to 25",
        "WaitForConnection TimeoutMillis less than or equal to 18446744073709551615",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected}: {checked:#?}"
        );
    }
}

#[test]
fn a_faults_members_are_held_to_the_faults_ranges() {
    let f = Fixture::new();
    let base = f.base(Op::InjectFault);
    let cut = ["Fault", "NetworkDownFor", "DurationMs"];
    let slow = ["Fault", "SlowHsm", "LatencyMs"];
    let mut slow_base = base.clone();
    slow_base["Fault"]["SlowHsm"]["HsmId"] = json!(f.hsm);
    let checked = [
        check_member(&f.kms, Op::InjectFault, &base, &cut),
        check_member(&f.kms, Op::InjectFault, &slow_base, &slow),
    ]
    .concat();
    assert_eq!(
        checked,
        [
            "InjectFault DurationMs greater than or equal to 1",
            "InjectFault DurationMs less than or equal to 86400000",
            "InjectFault LatencyMs greater than or equal to 0",
            "InjectFault LatencyMs less than or equal to 60000",
        ]
    );
}

#[test]
fn a_batchs_items_are_held_to_their_operations_range() {
    for (batch, single) in [
        (Op::GenerateDataKeyBatch, Op::GenerateDataKey),
        (
            Op::GenerateDataKeyWithoutPlaintextBatch,
            Op::GenerateDataKeyWithoutPlaintext,
        ),
    ] {
        for n in SIDES.map(|side| side.past_type) {
            let item = json!({ "KeyId": "k" });
            let items = json!({ "Items": [item] });
            let of_batch = decode(batch, &items, &["Items", "0", "NumberOfBytes"], n);
            let of_single = decode(single, &item, &["NumberOfBytes"], n);
            assert_eq!(
                of_batch.unwrap_err(),
                of_single.unwrap_err(),
                "{batch:?} {n}"
            );
        }
    }
}
