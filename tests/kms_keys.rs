//! KMS keys of the control plane against the spec: CreateKey (§4.1, §5), KeyMetadata (§4.2),
//! the management operations (§4.3), the key-state matrix (§4.5), deletion, aliases and tags.

mod common;

use std::collections::BTreeSet;

use common::*;
use kmscks::api::hsm::{CreateHsmRequest, DescribeClustersRequest, Fault, UserRequest};
use kmscks::api::kms::Refused;
use kmscks::api::kms::*;
use kmscks::secret::Password;
use kmscks::types::{
    ConnectionState, EncryptionAlgorithm, HsmId, HsmState, KeySpec, KeyState, KeyUsage, Origin,
};
use kmscks::{ErrorKind, Kms};

// ---- helpers --------------------------------------------------------------------------------

fn store_key_req(store_id: &str) -> CreateKeyRequest {
    CreateKeyRequest {
        custom_key_store_id: Some(store_id.into()),
        origin: Some(Origin::AwsCloudhsm),
        ..Default::default()
    }
}

fn schedule(kms: &Kms, key_id: &str, days: Option<u32>) -> ScheduleKeyDeletionResponse {
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key_id.into(),
        pending_window_in_days: days,
    })
    .unwrap()
}

fn alias(kms: &Kms, name: &str, key_id: &str) -> kmscks::Result<Empty> {
    kms.create_alias(&AliasRequest {
        alias_name: name.into(),
        target_key_id: key_id.into(),
    })
}

fn alias_names(kms: &Kms, key_id: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_aliases(&ListRequest {
                key_id: key_id.map(str::to_owned),
                limit: Some(7),
                marker: marker.take(),
            })
            .unwrap();
        out.extend(page.aliases.into_iter().map(|a| a.alias_name));
        match page.next_marker {
            Some(m) => {
                assert!(page.truncated);
                marker = Some(m);
            }
            None => {
                assert!(!page.truncated);
                return out;
            }
        }
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        tag_key: k.into(),
        tag_value: v.into(),
    }
}

fn tag_key(kms: &Kms, key_id: &str, tags: Vec<Tag>) -> kmscks::Result<Empty> {
    kms.tag_resource(&TagResourceRequest {
        key_id: key_id.into(),
        tags,
    })
}

fn all_tags(kms: &Kms, key_id: &str, limit: Option<u32>) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_resource_tags(&ListRequest {
                key_id: Some(key_id.into()),
                limit,
                marker: marker.take(),
            })
            .unwrap();
        out.extend(page.tags);
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => return out,
        }
    }
}

fn hsm_ids(kms: &Kms, cluster_id: &str) -> Vec<HsmId> {
    kms.describe_clusters(&DescribeClustersRequest::default())
        .unwrap()
        .clusters
        .into_iter()
        .find(|c| c.cluster_id.to_string() == cluster_id)
        .expect("the fixture's cluster is described")
        .hsms
        .into_iter()
        .filter(|h| h.state == HsmState::Active)
        .map(|h| h.hsm_id)
        .collect()
}

fn key_labels(kms: &Kms, cluster_id: &str) -> Vec<String> {
    kms.list_key_objects(cluster_id)
        .unwrap()
        .into_iter()
        .map(|o| o.label)
        .collect()
}

fn events(kms: &Kms, name: &str) -> Vec<serde_json::Value> {
    kms.kms_events()
        .unwrap()
        .into_iter()
        .filter(|e| e.event_name == name)
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect()
}

// ---- CreateKey ------------------------------------------------------------------------------

#[test]
fn create_key_in_the_default_store() {
    let (kms, _clock) = kms();
    let md = kms
        .create_key(&CreateKeyRequest {
            description: Some("default store".into()),
            ..Default::default()
        })
        .unwrap()
        .key_metadata;
    assert_eq!(md.origin, Origin::AwsKms);
    assert_eq!(md.key_state, KeyState::Enabled);
    assert!(md.enabled);
    assert_eq!(md.description, "default store");
    assert_eq!(md.custom_key_store_id, None);
    assert_eq!(md.cloud_hsm_cluster_id, None);
    assert_eq!(
        md.arn,
        format!(
            "arn:aws:kms:{}:111122223333:key/{}",
            kms.scope().region,
            md.key_id
        )
    );
    let json = serde_json::to_value(&md).unwrap();
    assert_eq!(json["Origin"], "AWS_KMS");
    assert!(json.get("CustomKeyStoreId").is_none());
    assert!(json.get("CloudHsmClusterId").is_none());
    // Explicit Origin AWS_KMS without a store is the same thing.
    let md = kms
        .create_key(&CreateKeyRequest {
            origin: Some(Origin::AwsKms),
            ..Default::default()
        })
        .unwrap()
        .key_metadata;
    assert_eq!(md.origin, Origin::AwsKms);
    assert_eq!(describe_key(&kms, &md.key_id), md);
}

#[test]
fn create_key_in_a_connected_store_generates_an_hsm_key() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    // Origin defaults to AWS_KMS, as on AWS: a store id alone is refused, naming the rule.
    let e = kms
        .create_key(&CreateKeyRequest {
            custom_key_store_id: Some(f.store_id.clone()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedOperationException);
    assert!(e.message().contains("AWS_CLOUDHSM"), "{e}");
    assert!(key_labels(&kms, &f.cluster.cluster_id).is_empty());
    let md = kms
        .create_key(&CreateKeyRequest {
            custom_key_store_id: Some(f.store_id.clone()),
            origin: Some(Origin::AwsCloudhsm),
            ..Default::default()
        })
        .unwrap()
        .key_metadata;
    assert_eq!(md.origin, Origin::AwsCloudhsm);
    assert_eq!(md.custom_key_store_id.as_deref(), Some(f.store_id.as_str()));
    assert_eq!(
        md.cloud_hsm_cluster_id.as_deref(),
        Some(f.cluster.cluster_id.as_str())
    );
    assert_eq!(
        key_labels(&kms, &f.cluster.cluster_id),
        vec![md.arn.clone()]
    );
    let ev = events(&kms, "CreateKey");
    let last = ev.last().unwrap();
    assert_eq!(last["additionalEventData"]["customKeyStoreId"], f.store_id);
    let backing: serde_json::Value =
        serde_json::from_str(last["additionalEventData"]["backingKey"].as_str().unwrap()).unwrap();
    assert!(backing["keyHandle"].is_string());
    assert!(backing["backingKeyId"].is_string());
}

#[test]
fn create_key_store_exceptions() {
    let (kms, clock) = kms();
    // Unknown store.
    let e = assert_aws(
        kms.create_key(&store_key_req("cks-0123456789abcdef0")),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    assert!(e.message().contains("cks-0123456789abcdef0"), "{e}");
    assert_aws(
        kms.create_key(&store_key_req("not-a-store-id")),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    // A store that is not CONNECTED: DISCONNECTED, then again after a disconnect.
    let f = connected_store(&kms, &clock, "s1");
    let cluster2 = active_cluster(&kms);
    let idle = kms
        .create_custom_key_store(&store_request(&cluster2, "idle"))
        .unwrap()
        .custom_key_store_id;
    assert_eq!(connection_state(&kms, &idle), ConnectionState::Disconnected);
    let e = assert_aws(
        kms.create_key(&store_key_req(&idle)),
        ErrorKind::CustomKeyStoreInvalidStateException,
    );
    assert!(e.message().contains("DISCONNECTED"), "{e}");
    // The cluster loses an HSM: one active HSM left, in one zone.
    let hsms = hsm_ids(&kms, &f.cluster.cluster_id);
    assert_eq!(hsms.len(), 2);
    kms.inject_fault(&f.cluster.cluster_id, &Fault::HsmLost(hsms[0].clone()))
        .unwrap();
    assert_eq!(
        connection_state(&kms, &f.store_id),
        ConnectionState::Connected
    );
    assert_aws(
        kms.create_key(&store_key_req(&f.store_id)),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    assert!(key_labels(&kms, &f.cluster.cluster_id).is_empty());
    // A disconnected store.
    disconnect(&kms, &clock, &f.store_id);
    assert_aws(
        kms.create_key(&store_key_req(&f.store_id)),
        ErrorKind::CustomKeyStoreInvalidStateException,
    );
    assert!(kms
        .list_keys(&ListRequest::default())
        .unwrap()
        .keys
        .is_empty());
}

#[test]
fn create_key_needs_active_hsms_in_two_zones_not_just_two_hsms() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let first_zone = f.cluster.zones[0].clone();
    kms.create_hsm(&CreateHsmRequest {
        cluster_id: f.cluster.cluster_id.clone(),
        availability_zone: first_zone.clone(),
        region: None,
    })
    .unwrap();
    create_key(&kms, Some(&f.store_id));
    // Lose the only HSM outside the first zone: two active HSMs remain, both in one zone.
    let cluster = kms
        .describe_clusters(&DescribeClustersRequest::default())
        .unwrap()
        .clusters
        .into_iter()
        .find(|c| c.cluster_id.to_string() == f.cluster.cluster_id)
        .unwrap();
    let lost = cluster
        .hsms
        .iter()
        .find(|h| h.availability_zone != first_zone)
        .unwrap()
        .hsm_id
        .clone();
    kms.inject_fault(&f.cluster.cluster_id, &Fault::HsmLost(lost))
        .unwrap();
    assert_eq!(hsm_ids(&kms, &f.cluster.cluster_id).len(), 2);
    let e = assert_aws(
        kms.create_key(&store_key_req(&f.store_id)),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    assert!(e.message().contains(&f.cluster.cluster_id), "{e}");
    assert_eq!(
        kms.list_keys(&ListRequest::default()).unwrap().keys.len(),
        1
    );
}

#[test]
fn create_key_refuses_what_a_cloudhsm_store_does_not_support() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let base = store_key_req(&f.store_id);
    let mut cases: Vec<(String, CreateKeyRequest, ErrorKind)> = Vec::new();
    for spec in KeySpec::ALL
        .iter()
        .filter(|s| **s != KeySpec::SymmetricDefault)
    {
        cases.push((
            format!("KeySpec {spec}"),
            CreateKeyRequest {
                key_spec: Some(*spec),
                ..base.clone()
            },
            ErrorKind::UnsupportedOperationException,
        ));
        cases.push((
            format!("CustomerMasterKeySpec {spec}"),
            CreateKeyRequest {
                customer_master_key_spec: Some(*spec),
                ..base.clone()
            },
            ErrorKind::UnsupportedOperationException,
        ));
    }
    for usage in KeyUsage::ALL
        .iter()
        .filter(|u| **u != KeyUsage::EncryptDecrypt)
    {
        cases.push((
            format!("KeyUsage {usage}"),
            CreateKeyRequest {
                key_usage: Some(*usage),
                ..base.clone()
            },
            ErrorKind::UnsupportedOperationException,
        ));
    }
    let more: Vec<(&str, CreateKeyRequest, ErrorKind)> = vec![
        (
            "MultiRegion",
            CreateKeyRequest {
                multi_region: Some(true),
                ..base.clone()
            },
            ErrorKind::UnsupportedOperationException,
        ),
        (
            "MultiRegion, default store",
            CreateKeyRequest {
                multi_region: Some(true),
                ..Default::default()
            },
            ErrorKind::UnsupportedOperationException,
        ),
        (
            "Origin EXTERNAL with store",
            CreateKeyRequest {
                origin: Some(Origin::External),
                ..base.clone()
            },
            ErrorKind::UnsupportedOperationException,
        ),
        (
            "Origin EXTERNAL for an asymmetric key (kmscks imports symmetric material only)",
            CreateKeyRequest {
                origin: Some(Origin::External),
                key_spec: Some(KeySpec::Rsa2048),
                ..Default::default()
            },
            ErrorKind::UnsupportedOperationException,
        ),
        (
            "Origin EXTERNAL_KEY_STORE with store",
            CreateKeyRequest {
                origin: Some(Origin::ExternalKeyStore),
                ..base.clone()
            },
            ErrorKind::UnsupportedOperationException,
        ),
        (
            "Origin EXTERNAL_KEY_STORE",
            CreateKeyRequest {
                origin: Some(Origin::ExternalKeyStore),
                ..Default::default()
            },
            ErrorKind::UnsupportedOperationException,
        ),
        (
            "Origin AWS_KMS with a store",
            CreateKeyRequest {
                origin: Some(Origin::AwsKms),
                ..base.clone()
            },
            ErrorKind::UnsupportedOperationException,
        ),
        (
            "Origin AWS_CLOUDHSM without a store",
            CreateKeyRequest {
                origin: Some(Origin::AwsCloudhsm),
                ..Default::default()
            },
            ErrorKind::UnsupportedOperationException,
        ),
        (
            "KeySpec and CustomerMasterKeySpec differ",
            CreateKeyRequest {
                key_spec: Some(KeySpec::SymmetricDefault),
                customer_master_key_spec: Some(KeySpec::Rsa2048),
                ..base.clone()
            },
            ErrorKind::ValidationException,
        ),
        (
            "aws: tag",
            CreateKeyRequest {
                tags: vec![tag("aws:owner", "me")],
                ..base.clone()
            },
            ErrorKind::TagException,
        ),
        (
            "aws: tag, default store",
            CreateKeyRequest {
                tags: vec![tag("aws:cloudformation:stack-name", "x")],
                ..Default::default()
            },
            ErrorKind::TagException,
        ),
        (
            "51 tags",
            CreateKeyRequest {
                tags: (0..51).map(|i| tag(&format!("k{i}"), "v")).collect(),
                ..base.clone()
            },
            ErrorKind::LimitExceededException,
        ),
        (
            "description of 8193 characters",
            CreateKeyRequest {
                description: Some("d".repeat(8193)),
                ..base.clone()
            },
            ErrorKind::ValidationException,
        ),
        (
            "malformed policy",
            CreateKeyRequest {
                policy: Some("{not json".into()),
                ..base.clone()
            },
            ErrorKind::MalformedPolicyDocumentException,
        ),
    ];
    cases.extend(more.into_iter().map(|(n, r, k)| (n.to_owned(), r, k)));
    assert!(cases.len() > 40);
    for (name, req, kind) in cases {
        match kms.create_key(&req) {
            Err(e) if e.kind() == kind => {}
            other => panic!("{name}: expected {}, got {other:?}", kind.aws_name()),
        }
    }
    // Nothing was created, neither in KMS nor in the cluster.
    assert!(kms
        .list_keys(&ListRequest::default())
        .unwrap()
        .keys
        .is_empty());
    assert!(key_labels(&kms, &f.cluster.cluster_id).is_empty());
    // The limits themselves are accepted: 8192 characters, 50 tags, explicit symmetric specs.
    let md = kms
        .create_key(&CreateKeyRequest {
            description: Some("d".repeat(8192)),
            tags: (0..50).map(|i| tag(&format!("k{i}"), "v")).collect(),
            key_spec: Some(KeySpec::SymmetricDefault),
            customer_master_key_spec: Some(KeySpec::SymmetricDefault),
            key_usage: Some(KeyUsage::EncryptDecrypt),
            multi_region: Some(false),
            ..base.clone()
        })
        .unwrap()
        .key_metadata;
    assert_eq!(md.description.len(), 8192);
    assert_eq!(all_tags(&kms, &md.key_id, None).len(), 50);
}

// ---- KeyMetadata ----------------------------------------------------------------------------

#[test]
fn key_metadata_members_follow_the_spec() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key_id = create_key(&kms, Some(&f.store_id));
    let json = serde_json::to_value(describe_key(&kms, &key_id)).unwrap();
    let members: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "AWSAccountId",
        "KeyId",
        "Arn",
        "CreationDate",
        "Enabled",
        "Description",
        "KeyUsage",
        "KeyState",
        "Origin",
        "CustomKeyStoreId",
        "CloudHsmClusterId",
        "KeyManager",
        "CustomerMasterKeySpec",
        "KeySpec",
        "EncryptionAlgorithms",
        "MultiRegion",
    ]
    .into_iter()
    .collect();
    assert_eq!(members, expected);
    assert_eq!(json["KeyId"], key_id);
    assert_eq!(
        json["Arn"],
        format!(
            "arn:aws:kms:{}:111122223333:key/{key_id}",
            kms.scope().region
        )
    );
    assert!(json["CreationDate"].is_number());
    assert_eq!(json["Enabled"], true);
    assert_eq!(json["Description"], "");
    assert_eq!(json["KeyUsage"], "ENCRYPT_DECRYPT");
    assert_eq!(json["KeyState"], "Enabled");
    assert_eq!(json["Origin"], "AWS_CLOUDHSM");
    assert_eq!(json["CustomKeyStoreId"], f.store_id);
    assert_eq!(json["CloudHsmClusterId"], f.cluster.cluster_id);
    assert_eq!(json["KeyManager"], "CUSTOMER");
    assert_eq!(json["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(json["CustomerMasterKeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(
        json["EncryptionAlgorithms"],
        serde_json::json!(["SYMMETRIC_DEFAULT"])
    );
    assert_eq!(json["MultiRegion"], false);

    // Enabled follows KeyState: false when Disabled, Unavailable and PendingDeletion.
    kms.disable_key(&key_req(&key_id)).unwrap();
    let md = describe_key(&kms, &key_id);
    assert_eq!((md.key_state, md.enabled), (KeyState::Disabled, false));
    kms.enable_key(&key_req(&key_id)).unwrap();
    let md = describe_key(&kms, &key_id);
    assert_eq!((md.key_state, md.enabled), (KeyState::Enabled, true));
    disconnect(&kms, &clock, &f.store_id);
    let md = describe_key(&kms, &key_id);
    assert_eq!((md.key_state, md.enabled), (KeyState::Unavailable, false));
    assert_eq!(md.deletion_date, None);
    let resp = schedule(&kms, &key_id, Some(7));
    let md = describe_key(&kms, &key_id);
    assert_eq!(
        (md.key_state, md.enabled),
        (KeyState::PendingDeletion, false)
    );
    assert_eq!(md.deletion_date, Some(resp.deletion_date));
    let json = serde_json::to_value(&md).unwrap();
    assert!(json["DeletionDate"].is_number());
    assert_eq!(
        md.encryption_algorithms,
        vec![EncryptionAlgorithm::SymmetricDefault]
    );
    kms.cancel_key_deletion(&key_req(&key_id)).unwrap();
    let json = serde_json::to_value(describe_key(&kms, &key_id)).unwrap();
    assert!(json.get("DeletionDate").is_none());
}

// ---- Key-state matrix (§4.5) ----------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Ok,
    /// KMSInvalidStateException: `<arn> is pending deletion.`
    Pending,
    /// KMSInvalidStateException: `<arn> is not pending deletion.`
    NotPending,
    /// UnsupportedOperationException.
    Unsupported,
}

const STATES: [KeyState; 4] = [
    KeyState::Enabled,
    KeyState::Disabled,
    KeyState::PendingDeletion,
    KeyState::Unavailable,
];

/// One key under test, with an alias already pointing at it and another Enabled key.
struct Case {
    key_id: String,
    alias: String,
    other_key: String,
    other_alias: String,
}

type OpFn = fn(&Kms, &Case) -> kmscks::Result<()>;

fn matrix() -> Vec<(&'static str, OpFn, [Expect; 4])> {
    use Expect::*;
    vec![
        (
            "DescribeKey",
            |k, c| k.describe_key(&key_req(&c.key_id)).map(drop),
            [Ok, Ok, Ok, Ok],
        ),
        (
            "GetKeyPolicy",
            |k, c| {
                k.get_key_policy(&GetKeyPolicyRequest {
                    key_id: c.key_id.clone(),
                    policy_name: Some("default".into()),
                })
                .map(drop)
            },
            [Ok, Ok, Ok, Ok],
        ),
        (
            "PutKeyPolicy",
            |k, c| {
                k.put_key_policy(&PutKeyPolicyRequest {
                    key_id: c.key_id.clone(),
                    policy_name: Some("default".into()),
                    policy: kmscks::kms::policy::default_policy(k.scope()),
                    bypass_policy_lockout_safety_check: false,
                })
                .map(drop)
            },
            [Ok, Ok, Ok, Ok],
        ),
        (
            "ListKeyPolicies",
            |k, c| {
                k.list_key_policies(&ListRequest {
                    key_id: Some(c.key_id.clone()),
                    ..Default::default()
                })
                .map(drop)
            },
            [Ok, Ok, Ok, Ok],
        ),
        (
            "ListAliases",
            |k, c| {
                let r = k.list_aliases(&ListRequest {
                    key_id: Some(c.key_id.clone()),
                    ..Default::default()
                })?;
                assert_eq!(r.aliases.len(), 1);
                Result::Ok(())
            },
            [Ok, Ok, Ok, Ok],
        ),
        (
            "ListResourceTags",
            |k, c| {
                k.list_resource_tags(&ListRequest {
                    key_id: Some(c.key_id.clone()),
                    ..Default::default()
                })
                .map(drop)
            },
            [Ok, Ok, Ok, Ok],
        ),
        (
            "DeleteAlias",
            |k, c| {
                k.delete_alias(&DeleteAliasRequest {
                    alias_name: c.alias.clone(),
                })
                .map(drop)
            },
            [Ok, Ok, Ok, Ok],
        ),
        (
            "EnableKey",
            |k, c| k.enable_key(&key_req(&c.key_id)).map(drop),
            [Ok, Ok, Pending, Ok],
        ),
        (
            "DisableKey",
            |k, c| k.disable_key(&key_req(&c.key_id)).map(drop),
            [Ok, Ok, Pending, Ok],
        ),
        (
            "ScheduleKeyDeletion",
            |k, c| {
                k.schedule_key_deletion(&ScheduleKeyDeletionRequest {
                    key_id: c.key_id.clone(),
                    pending_window_in_days: Some(7),
                })
                .map(drop)
            },
            [Ok, Ok, Pending, Ok],
        ),
        (
            "CancelKeyDeletion",
            |k, c| k.cancel_key_deletion(&key_req(&c.key_id)).map(drop),
            [NotPending, NotPending, Ok, NotPending],
        ),
        (
            "CreateAlias",
            |k, c| alias(k, &format!("{}-new", c.alias), &c.key_id).map(drop),
            [Ok, Ok, Pending, Ok],
        ),
        (
            "TagResource",
            |k, c| tag_key(k, &c.key_id, vec![tag("team", "blue")]).map(drop),
            [Ok, Ok, Pending, Ok],
        ),
        (
            "UntagResource",
            |k, c| {
                k.untag_resource(&UntagResourceRequest {
                    key_id: c.key_id.clone(),
                    tag_keys: vec!["team".into()],
                })
                .map(drop)
            },
            [Ok, Ok, Pending, Ok],
        ),
        (
            "UpdateKeyDescription",
            |k, c| {
                k.update_key_description(&UpdateKeyDescriptionRequest {
                    key_id: c.key_id.clone(),
                    description: "new".into(),
                })
                .map(drop)
            },
            [Ok, Ok, Pending, Ok],
        ),
        (
            "UpdateAlias (source)",
            |k, c| {
                k.update_alias(&AliasRequest {
                    alias_name: c.alias.clone(),
                    target_key_id: c.other_key.clone(),
                })
                .map(drop)
            },
            [Ok, Ok, Ok, Ok],
        ),
        (
            "UpdateAlias (destination)",
            |k, c| {
                k.update_alias(&AliasRequest {
                    alias_name: c.other_alias.clone(),
                    target_key_id: c.key_id.clone(),
                })
                .map(drop)
            },
            [Ok, Ok, Pending, Ok],
        ),
        (
            "EnableKeyRotation",
            |k, c| {
                k.enable_key_rotation(&EnableKeyRotationRequest {
                    key_id: c.key_id.clone(),
                    rotation_period_in_days: None,
                })
                .map(drop)
            },
            [Unsupported; 4],
        ),
        (
            "DisableKeyRotation",
            |k, c| k.disable_key_rotation(&key_req(&c.key_id)).map(drop),
            [Unsupported; 4],
        ),
        (
            "GetKeyRotationStatus",
            |k, c| k.get_key_rotation_status(&key_req(&c.key_id)).map(drop),
            [Unsupported; 4],
        ),
    ]
}

#[test]
fn key_state_matrix() {
    let (kms, clock) = kms();
    // Store A stays connected (Enabled, Disabled, PendingDeletion); store B is disconnected
    // (Unavailable).
    let a = connected_store(&kms, &clock, "A");
    let b = connected_store(&kms, &clock, "B");
    let ops = matrix();
    let mut cases = Vec::new();
    for (si, state) in STATES.iter().enumerate() {
        let store = if *state == KeyState::Unavailable {
            &b
        } else {
            &a
        };
        for (oi, (name, _, _)) in ops.iter().enumerate() {
            let key_id = create_key(&kms, Some(&store.store_id));
            // An Enabled key in the connected store (each its own: at most 50 aliases a key).
            let other_key = create_key(&kms, Some(&a.store_id));
            let c = Case {
                alias: format!("alias/s{si}-o{oi}"),
                other_alias: format!("alias/other-s{si}-o{oi}"),
                other_key,
                key_id,
            };
            alias(&kms, &c.alias, &c.key_id).unwrap();
            alias(&kms, &c.other_alias, &c.other_key).unwrap();
            match state {
                KeyState::Disabled => kms.disable_key(&key_req(&c.key_id)).unwrap(),
                KeyState::PendingDeletion => {
                    schedule(&kms, &c.key_id, None);
                    Empty {}
                }
                _ => Empty {},
            };
            cases.push((si, oi, *name, c));
        }
    }
    disconnect(&kms, &clock, &b.store_id);
    for (si, oi, name, c) in &cases {
        let state = STATES[*si];
        assert_eq!(describe_key(&kms, &c.key_id).key_state, state, "{name}");
        let arn = describe_key(&kms, &c.key_id).arn;
        let (_, op, expect) = &ops[*oi];
        let result = op(&kms, c);
        let ctx = format!("{name} on a {state} key");
        match expect[*si] {
            Expect::Ok => assert!(result.is_ok(), "{ctx}: {result:?}"),
            Expect::Pending => {
                let e = result.expect_err(&ctx);
                assert_eq!(e.kind(), ErrorKind::KMSInvalidStateException, "{ctx}: {e}");
                assert_eq!(e.message(), format!("{arn} is pending deletion."), "{ctx}");
            }
            Expect::NotPending => {
                let e = result.expect_err(&ctx);
                assert_eq!(e.kind(), ErrorKind::KMSInvalidStateException, "{ctx}: {e}");
                assert_eq!(
                    e.message(),
                    format!("{arn} is not pending deletion."),
                    "{ctx}"
                );
            }
            Expect::Unsupported => {
                let e = result.expect_err(&ctx);
                assert_eq!(
                    e.kind(),
                    ErrorKind::UnsupportedOperationException,
                    "{ctx}: {e}"
                );
            }
        }
    }
    assert_eq!(cases.len(), STATES.len() * ops.len());
}

// ---- Enable/disable while Unavailable, deletion ---------------------------------------------

#[test]
fn enable_and_disable_on_an_unavailable_key_take_effect_on_reconnect() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key_id = create_key(&kms, Some(&f.store_id));
    disconnect(&kms, &clock, &f.store_id);
    kms.disable_key(&key_req(&key_id)).unwrap();
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Unavailable);
    assert_eq!(
        connect(&kms, &clock, &f.store_id).connection_state,
        ConnectionState::Connected
    );
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Disabled);
    disconnect(&kms, &clock, &f.store_id);
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Unavailable);
    kms.enable_key(&key_req(&key_id)).unwrap();
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Unavailable);
    connect(&kms, &clock, &f.store_id);
    let md = describe_key(&kms, &key_id);
    assert_eq!((md.key_state, md.enabled), (KeyState::Enabled, true));
}

#[test]
fn cancel_key_deletion_brings_the_key_back_disabled() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key_id = create_key(&kms, Some(&f.store_id));
    schedule(&kms, &key_id, Some(10));
    let arn = describe_key(&kms, &key_id).arn;
    let resp = kms.cancel_key_deletion(&key_req(&key_id)).unwrap();
    assert_eq!(resp.key_id, arn);
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Disabled);
    // While the store is disconnected the cancelled key reads Unavailable, then Disabled.
    schedule(&kms, &key_id, Some(10));
    disconnect(&kms, &clock, &f.store_id);
    assert_eq!(
        describe_key(&kms, &key_id).key_state,
        KeyState::PendingDeletion
    );
    kms.cancel_key_deletion(&key_req(&key_id)).unwrap();
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Unavailable);
    connect(&kms, &clock, &f.store_id);
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Disabled);
}

#[test]
fn schedule_key_deletion_window() {
    let (kms, clock) = kms();
    let key_id = create_key(&kms, None);
    let refusal = |days| {
        assert_aws(
            kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
                key_id: key_id.clone(),
                pending_window_in_days: Some(days),
            }),
            ErrorKind::ValidationException,
        )
    };
    for days in [1, 6, 31, 365] {
        let e = refusal(days);
        assert!(e.message().contains("between 7 and 30"), "{days}: {e}");
    }
    // Outside the model's 1-365, the model's validation error, as AWS answers it.
    let e = refusal(0);
    assert!(
        e.message().contains("Value '0' at 'pendingWindowInDays'")
            && e.message().contains("greater than or equal to 1"),
        "{e}"
    );
    let e = refusal(366);
    assert!(e.message().contains("less than or equal to 365"), "{e}");
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Enabled);
    let now = kmscks::types::Clock::now(&clock);
    let resp = schedule(&kms, &key_id, None);
    assert_eq!(resp.pending_window_in_days, 30);
    assert_eq!(resp.deletion_date, now.plus_days(30));
    assert_eq!(resp.key_state, KeyState::PendingDeletion);
    assert_eq!(resp.key_id, describe_key(&kms, &key_id).arn);
    for days in [7, 30] {
        kms.cancel_key_deletion(&key_req(&key_id)).unwrap();
        let resp = schedule(&kms, &key_id, Some(days));
        assert_eq!(resp.pending_window_in_days, days);
        assert_eq!(resp.deletion_date, now.plus_days(days));
    }
    // A missing key is NotFound, an alias is refused by a management operation.
    assert_aws(
        kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
            key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            pending_window_in_days: None,
        }),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn deleted_at_window_end_with_its_aliases_and_hsm_key() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key_id = create_key(&kms, Some(&f.store_id));
    let keep = create_key(&kms, Some(&f.store_id));
    let arn = describe_key(&kms, &key_id).arn;
    alias(&kms, "alias/doomed", &key_id).unwrap();
    alias(&kms, "alias/doomed-2", &key_id).unwrap();
    alias(&kms, "alias/kept", &keep).unwrap();
    schedule(&kms, &key_id, Some(7));
    clock.advance_days(6);
    assert_eq!(
        describe_key(&kms, &key_id).key_state,
        KeyState::PendingDeletion
    );
    clock.advance_days(1);
    let e = assert_aws(
        kms.describe_key(&key_req(&key_id)),
        ErrorKind::NotFoundException,
    );
    assert_eq!(e.message(), format!("Key '{arn}' does not exist"));
    assert_aws(
        kms.describe_key(&key_req("alias/doomed")),
        ErrorKind::NotFoundException,
    );
    assert_eq!(alias_names(&kms, None), vec!["alias/kept".to_owned()]);
    assert_aws(
        kms.delete_alias(&DeleteAliasRequest {
            alias_name: "alias/doomed".into(),
        }),
        ErrorKind::NotFoundException,
    );
    assert_aws(
        kms.enable_key(&key_req(&key_id)),
        ErrorKind::NotFoundException,
    );
    assert_aws(
        kms.cancel_key_deletion(&key_req(&key_id)),
        ErrorKind::NotFoundException,
    );
    let labels = key_labels(&kms, &f.cluster.cluster_id);
    assert!(!labels.contains(&arn), "{labels:?}");
    assert_eq!(labels.len(), 1);
    let sched = events(&kms, "ScheduleKeyDeletion");
    assert_eq!(sched.len(), 1);
    assert_eq!(sched[0]["requestParameters"]["pendingWindowInDays"], 7);
    assert_eq!(sched[0]["responseElements"]["keyState"], "PendingDeletion");
    assert_eq!(
        sched[0]["additionalEventData"]["customKeyStoreId"],
        f.store_id
    );
    assert_eq!(
        sched[0]["additionalEventData"]["clusterId"],
        f.cluster.cluster_id
    );
    assert!(sched[0]["additionalEventData"]["backingKeys"].is_string());
    let trail = kms.kms_events().unwrap();
    let delete = trail.iter().find(|e| e.event_name == "DeleteKey").unwrap();
    assert_eq!(delete.principal, "AWS Internal");
    let ev = events(&kms, "DeleteKey");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["eventType"], "AwsServiceEvent");
    assert_eq!(
        ev[0]["additionalEventData"]["clusterId"],
        f.cluster.cluster_id
    );
    let status = ev[0]["additionalEventData"]["backingKeysDeletionStatus"]
        .as_str()
        .unwrap();
    assert!(status.contains("\"SUCCESS\""), "{status}");
    assert_eq!(
        kms.list_keys(&ListRequest::default()).unwrap().keys.len(),
        1
    );
}

#[test]
fn deletion_while_disconnected_leaves_an_orphan_to_delete_by_hand() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key_id = create_key(&kms, Some(&f.store_id));
    let arn = describe_key(&kms, &key_id).arn;
    alias(&kms, "alias/orphaned", &key_id).unwrap();
    schedule(&kms, &key_id, Some(7));
    disconnect(&kms, &clock, &f.store_id);
    clock.advance_days(7);
    // The jump wakes the background sweep, which may get there before this call does.
    assert!(kms.run_scheduled_deletions().unwrap() <= 1);
    assert_eq!(kms.run_scheduled_deletions().unwrap(), 0);
    assert_aws(
        kms.describe_key(&key_req(&key_id)),
        ErrorKind::NotFoundException,
    );
    assert!(alias_names(&kms, None).is_empty());
    let ev = events(&kms, "DeleteKey");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["eventType"], "AwsServiceEvent");
    let status: serde_json::Value = serde_json::from_str(
        ev[0]["additionalEventData"]["backingKeysDeletionStatus"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status[0]["deletionStatus"], "FAILURE");
    // The HSM key object is still there, labelled with the deleted key's ARN.
    let objects = kms.list_key_objects(&f.cluster.cluster_id).unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].label, arn);
    assert_eq!(status[0]["keyHandle"], objects[0].key_reference.to_string());
    let handle = objects[0].key_reference;
    // kmsuser's password was rotated by KMS: the fixture's one no longer works.
    assert_aws(
        kms.delete_key_object(
            &f.cluster.cluster_id,
            handle,
            "kmsuser",
            &Password::new(KMSUSER_PASSWORD),
        ),
        ErrorKind::CloudHsmAccessDeniedException,
    );
    let new_password = "orphanCleanup1";
    kms.change_hsm_user_password(&UserRequest {
        cluster_id: f.cluster.cluster_id.clone(),
        username: "kmsuser".into(),
        role: None,
        password: Password::new(new_password),
    })
    .unwrap();
    kms.delete_key_object(
        &f.cluster.cluster_id,
        handle,
        "kmsuser",
        &Password::new(new_password),
    )
    .unwrap();
    assert!(key_labels(&kms, &f.cluster.cluster_id).is_empty());
}

// ---- ListKeys, UpdateKeyDescription ---------------------------------------------------------

#[test]
fn list_keys_shows_every_state_and_pages() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let mut ids = BTreeSet::new();
    for _ in 0..3 {
        ids.insert(create_key(&kms, None));
    }
    let disabled = create_key(&kms, None);
    kms.disable_key(&key_req(&disabled)).unwrap();
    let pending = create_key(&kms, Some(&f.store_id));
    schedule(&kms, &pending, None);
    let unavailable = create_key(&kms, Some(&f.store_id));
    ids.extend([disabled, pending, unavailable.clone()]);
    disconnect(&kms, &clock, &f.store_id);
    assert_eq!(
        describe_key(&kms, &unavailable).key_state,
        KeyState::Unavailable
    );

    let all = kms.list_keys(&ListRequest::default()).unwrap();
    assert!(!all.truncated);
    assert_eq!(all.next_marker, None);
    let got: BTreeSet<String> = all.keys.iter().map(|k| k.key_id.clone()).collect();
    assert_eq!(got, ids);
    for k in &all.keys {
        assert_eq!(k.key_arn, describe_key(&kms, &k.key_id).arn);
    }
    let json = serde_json::to_value(&all).unwrap();
    assert!(json["Keys"][0]["KeyArn"].is_string());
    assert!(json.get("NextMarker").is_none());

    let mut paged = Vec::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let page = kms
            .list_keys(&ListRequest {
                limit: Some(4),
                marker: marker.take(),
                ..Default::default()
            })
            .unwrap();
        pages += 1;
        assert!(page.keys.len() <= 4);
        paged.extend(page.keys.into_iter().map(|k| k.key_id));
        match page.next_marker {
            Some(m) => {
                assert!(page.truncated);
                marker = Some(m);
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(paged.len(), ids.len());
    assert_eq!(paged.into_iter().collect::<BTreeSet<_>>(), ids);

    for limit in [0, 1001] {
        assert_aws(
            kms.list_keys(&ListRequest {
                limit: Some(limit),
                ..Default::default()
            }),
            ErrorKind::ValidationException,
        );
    }
    assert_aws(
        kms.list_keys(&ListRequest {
            marker: Some("bm90IGEgbWFya2Vy".into()),
            ..Default::default()
        }),
        ErrorKind::InvalidMarkerException,
    );
}

#[test]
fn update_key_description() {
    let (kms, _clock) = kms();
    let key_id = create_key(&kms, None);
    let arn = describe_key(&kms, &key_id).arn;
    for (by, text) in [(&key_id, "first"), (&arn, "second"), (&key_id, "")] {
        kms.update_key_description(&UpdateKeyDescriptionRequest {
            key_id: by.clone(),
            description: text.into(),
        })
        .unwrap();
        assert_eq!(describe_key(&kms, &key_id).description, text);
    }
    assert_aws(
        kms.update_key_description(&UpdateKeyDescriptionRequest {
            key_id: key_id.clone(),
            description: "x".repeat(8193),
        }),
        ErrorKind::ValidationException,
    );
    kms.update_key_description(&UpdateKeyDescriptionRequest {
        key_id: key_id.clone(),
        description: "x".repeat(8192),
    })
    .unwrap();
    alias(&kms, "alias/desc", &key_id).unwrap();
    assert_aws(
        kms.update_key_description(&UpdateKeyDescriptionRequest {
            key_id: "alias/desc".into(),
            description: "via alias".into(),
        }),
        ErrorKind::NotFoundException,
    );
    assert_aws(
        kms.update_key_description(&UpdateKeyDescriptionRequest {
            key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            description: "missing".into(),
        }),
        ErrorKind::NotFoundException,
    );
}

// ---- Aliases --------------------------------------------------------------------------------

#[test]
fn alias_naming_rules() {
    let (kms, _clock) = kms();
    let key_id = create_key(&kms, None);
    let too_long = format!("alias/{}", "a".repeat(251));
    assert_eq!(too_long.len(), 257);
    let bad = [
        "",
        "alias/",
        "myalias",
        "Alias/upper-prefix",
        "aliases/x",
        "alias/aws/reserved",
        "alias/aws/",
        "alias/with space",
        "alias/dot.ted",
        "alias/é",
        "alias/star*",
        too_long.as_str(),
    ];
    for name in bad {
        assert_aws(
            alias(&kms, name, &key_id),
            ErrorKind::InvalidAliasNameException,
        );
        assert_aws(
            kms.update_alias(&AliasRequest {
                alias_name: name.into(),
                target_key_id: key_id.clone(),
            }),
            ErrorKind::InvalidAliasNameException,
        );
    }
    assert!(alias_names(&kms, None).is_empty());
    let longest = format!("alias/{}", "b".repeat(250));
    let good = [
        "alias/a",
        "alias/A:b/c_d-e",
        "alias/awsome",
        "alias/aws",
        "alias/My/Path/0",
        longest.as_str(),
    ];
    for name in good {
        alias(&kms, name, &key_id).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut expected: Vec<String> = good.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(alias_names(&kms, Some(&key_id)), expected);
}

#[test]
fn alias_uniqueness_missing_aliases_and_limit() {
    let (kms, _clock) = kms();
    let k1 = create_key(&kms, None);
    let k2 = create_key(&kms, None);
    alias(&kms, "alias/app", &k1).unwrap();
    let e = assert_aws(
        alias(&kms, "alias/app", &k2),
        ErrorKind::AlreadyExistsException,
    );
    assert!(e.message().contains("alias/app"), "{e}");
    // Case-sensitive: a different name.
    alias(&kms, "alias/App", &k2).unwrap();
    // Missing aliases.
    assert_aws(
        kms.delete_alias(&DeleteAliasRequest {
            alias_name: "alias/missing".into(),
        }),
        ErrorKind::NotFoundException,
    );
    assert_aws(
        kms.update_alias(&AliasRequest {
            alias_name: "alias/missing".into(),
            target_key_id: k1.clone(),
        }),
        ErrorKind::NotFoundException,
    );
    // Missing target key.
    assert_aws(
        alias(&kms, "alias/nokey", "1234abcd-12ab-34cd-56ef-1234567890ab"),
        ErrorKind::NotFoundException,
    );
    // UpdateAlias re-points, cannot create.
    kms.update_alias(&AliasRequest {
        alias_name: "alias/app".into(),
        target_key_id: k2.clone(),
    })
    .unwrap();
    assert_eq!(describe_key(&kms, "alias/app").key_id, k2);
    let entry = kms
        .list_aliases(&ListRequest {
            key_id: Some(k2.clone()),
            ..Default::default()
        })
        .unwrap()
        .aliases
        .into_iter()
        .find(|a| a.alias_name == "alias/app")
        .unwrap();
    assert_eq!(entry.target_key_id, k2);
    assert_eq!(entry.alias_arn, kms.scope().alias_arn("alias/app"));
    let json = serde_json::to_value(&entry).unwrap();
    for m in [
        "AliasName",
        "AliasArn",
        "TargetKeyId",
        "CreationDate",
        "LastUpdatedDate",
    ] {
        assert!(json.get(m).is_some(), "{m}");
    }
    kms.delete_alias(&DeleteAliasRequest {
        alias_name: "alias/app".into(),
    })
    .unwrap();
    assert_aws(
        kms.describe_key(&key_req("alias/app")),
        ErrorKind::NotFoundException,
    );
    // 50 aliases per key (k1 has none left: "alias/app" moved away and was deleted).
    for i in 0..50 {
        alias(&kms, &format!("alias/many-{i:02}"), &k1).unwrap();
    }
    let e = assert_aws(
        alias(&kms, "alias/many-50", &k1),
        ErrorKind::LimitExceededException,
    );
    assert!(e.message().contains("50"), "{e}");
    assert_eq!(alias_names(&kms, Some(&k1)).len(), 50);
    // Re-pointing an alias at a full key is refused as well.
    alias(&kms, "alias/k2-extra", &k2).unwrap();
    assert_aws(
        kms.update_alias(&AliasRequest {
            alias_name: "alias/k2-extra".into(),
            target_key_id: k1.clone(),
        }),
        ErrorKind::LimitExceededException,
    );
}

#[test]
fn list_aliases_with_and_without_key_and_alias_forms() {
    let (kms, _clock) = kms();
    let k1 = create_key(&kms, None);
    let k2 = create_key(&kms, None);
    let mut a1 = Vec::new();
    for i in 0..10 {
        let n = format!("alias/one-{i}");
        alias(&kms, &n, &k1).unwrap();
        a1.push(n);
    }
    alias(&kms, "alias/two", &k2).unwrap();
    assert_eq!(alias_names(&kms, Some(&k1)), a1);
    let arn2 = describe_key(&kms, &k2).arn;
    assert_eq!(alias_names(&kms, Some(&arn2)), vec!["alias/two".to_owned()]);
    let mut all = a1.clone();
    all.push("alias/two".into());
    assert_eq!(alias_names(&kms, None), all);
    for limit in [0, 101] {
        assert_aws(
            kms.list_aliases(&ListRequest {
                limit: Some(limit),
                ..Default::default()
            }),
            ErrorKind::ValidationException,
        );
    }
    // ListAliases KeyId takes a key id or ARN only.
    assert_aws(
        kms.list_aliases(&ListRequest {
            key_id: Some("alias/two".into()),
            ..Default::default()
        }),
        ErrorKind::NotFoundException,
    );
    // DescribeKey accepts alias names and alias ARNs.
    let alias_arn = kms.scope().alias_arn("alias/two");
    assert_eq!(describe_key(&kms, "alias/two").key_id, k2);
    assert_eq!(describe_key(&kms, &alias_arn).key_id, k2);
    let e = assert_aws(
        kms.describe_key(&key_req("alias/none")),
        ErrorKind::NotFoundException,
    );
    assert_eq!(
        e.message(),
        format!(
            "Alias {} is not found.",
            kms.scope().alias_arn("alias/none")
        )
    );
    // ARNs of another Region or account do not name keys here.
    let key_arn = describe_key(&kms, &k2).arn;
    let region = &kms.scope().region;
    for foreign in [
        key_arn.replace(&format!(":{region}:"), ":xx-west-9:"),
        key_arn.replace(":111122223333:", ":444455556666:"),
        alias_arn.replace(":111122223333:", ":444455556666:"),
        format!("arn:aws:kms:{region}:111122223333:grant/{k2}"),
    ] {
        assert_aws(
            kms.describe_key(&key_req(&foreign)),
            ErrorKind::NotFoundException,
        );
        assert_aws(
            alias(&kms, "alias/foreign", &foreign),
            ErrorKind::NotFoundException,
        );
    }
    // Management operations refuse both alias forms.
    for r in ["alias/two", alias_arn.as_str()] {
        let ctx = format!("by {r}");
        let results: Vec<(&str, kmscks::Result<()>)> = vec![
            ("EnableKey", kms.enable_key(&key_req(r)).map(drop)),
            ("DisableKey", kms.disable_key(&key_req(r)).map(drop)),
            (
                "ScheduleKeyDeletion",
                kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
                    key_id: r.into(),
                    pending_window_in_days: None,
                })
                .map(drop),
            ),
            (
                "CancelKeyDeletion",
                kms.cancel_key_deletion(&key_req(r)).map(drop),
            ),
            (
                "GetKeyPolicy",
                kms.get_key_policy(&GetKeyPolicyRequest {
                    key_id: r.into(),
                    policy_name: None,
                })
                .map(drop),
            ),
            (
                "TagResource",
                tag_key(&kms, r, vec![tag("a", "b")]).map(drop),
            ),
            (
                "ListResourceTags",
                kms.list_resource_tags(&ListRequest {
                    key_id: Some(r.into()),
                    ..Default::default()
                })
                .map(drop),
            ),
            ("CreateAlias", alias(&kms, "alias/via-alias", r).map(drop)),
            (
                "GetKeyRotationStatus",
                kms.get_key_rotation_status(&key_req(r)).map(drop),
            ),
        ];
        for (op, res) in results {
            match res {
                Err(e) if e.kind() == ErrorKind::NotFoundException => {}
                other => panic!("{op} {ctx}: expected NotFoundException, got {other:?}"),
            }
        }
    }
    assert_eq!(describe_key(&kms, &k2).key_state, KeyState::Enabled);
}

// ---- Tags -----------------------------------------------------------------------------------

#[test]
fn tag_limits_overwrite_untag_and_paging() {
    let (kms, _clock) = kms();
    let key_id = create_key(&kms, None);
    let k128 = "k".repeat(128);
    let v256 = "v".repeat(256);
    tag_key(&kms, &key_id, vec![tag(&k128, &v256), tag("empty", "")]).unwrap();
    let bad: Vec<(&str, Vec<Tag>)> = vec![
        ("key of 129", vec![tag(&"k".repeat(129), "v")]),
        ("empty key", vec![tag("", "v")]),
        ("value of 257", vec![tag("k", &"v".repeat(257))]),
        ("aws: prefix", vec![tag("aws:createdBy", "v")]),
        ("duplicate key", vec![tag("d", "1"), tag("d", "2")]),
    ];
    for (name, tags) in bad {
        match tag_key(&kms, &key_id, tags) {
            Err(e) if e.kind() == ErrorKind::TagException => {}
            other => panic!("{name}: expected TagException, got {other:?}"),
        }
    }
    assert_aws(
        kms.untag_resource(&UntagResourceRequest {
            key_id: key_id.clone(),
            tag_keys: vec!["aws:createdBy".into()],
        }),
        ErrorKind::TagException,
    );
    // Case-sensitive keys; re-tag overwrites.
    tag_key(&kms, &key_id, vec![tag("Team", "a"), tag("team", "b")]).unwrap();
    tag_key(&kms, &key_id, vec![tag("team", "c")]).unwrap();
    let tags = all_tags(&kms, &key_id, None);
    assert_eq!(tags.len(), 4);
    assert!(tags.contains(&tag("Team", "a")));
    assert!(tags.contains(&tag("team", "c")));
    assert!(tags.contains(&tag("empty", "")));
    // 50 per key: fill up to 50, re-tagging existing keys is still fine, the 51st is refused.
    let fill: Vec<Tag> = (0..46).map(|i| tag(&format!("t{i:02}"), "x")).collect();
    tag_key(&kms, &key_id, fill).unwrap();
    assert_eq!(all_tags(&kms, &key_id, None).len(), 50);
    tag_key(&kms, &key_id, vec![tag("t00", "overwritten")]).unwrap();
    let e = assert_aws(
        tag_key(&kms, &key_id, vec![tag("one-more", "x")]),
        ErrorKind::LimitExceededException,
    );
    assert!(e.message().contains("50"), "{e}");
    assert_eq!(all_tags(&kms, &key_id, None).len(), 50);
    assert!(all_tags(&kms, &key_id, None).contains(&tag("t00", "overwritten")));
    // Paging.
    let paged = all_tags(&kms, &key_id, Some(7));
    assert_eq!(paged, all_tags(&kms, &key_id, None));
    let first = kms
        .list_resource_tags(&ListRequest {
            key_id: Some(key_id.clone()),
            limit: Some(7),
            marker: None,
        })
        .unwrap();
    assert!(first.truncated);
    assert_eq!(first.tags.len(), 7);
    for limit in [0, 51] {
        assert_aws(
            kms.list_resource_tags(&ListRequest {
                key_id: Some(key_id.clone()),
                limit: Some(limit),
                marker: None,
            }),
            ErrorKind::ValidationException,
        );
    }
    // Untag: removes, a missing tag key is no error; then there is room again.
    kms.untag_resource(&UntagResourceRequest {
        key_id: key_id.clone(),
        tag_keys: vec!["team".into(), "never-set".into()],
    })
    .unwrap();
    let tags = all_tags(&kms, &key_id, None);
    assert_eq!(tags.len(), 49);
    assert!(!tags.iter().any(|t| t.tag_key == "team"));
    tag_key(&kms, &key_id, vec![tag("one-more", "x")]).unwrap();
    // Tags are per key, and a missing key is NotFound.
    let other = create_key(&kms, None);
    assert!(all_tags(&kms, &other, None).is_empty());
    assert_aws(
        tag_key(
            &kms,
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            vec![tag("a", "b")],
        ),
        ErrorKind::NotFoundException,
    );
}

// ---- Refused operations (§5) ----------------------------------------------------------------

#[test]
fn refused_operations_for_custom_key_store_keys() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key_id = create_key(&kms, Some(&f.store_id));
    let arn = describe_key(&kms, &key_id).arn;
    alias(&kms, "alias/store-key", &key_id).unwrap();
    use Refused::*;
    // (GenerateDataKeyPair is performed, and refuses store keys: tests/key_pair.rs.)
    let table = [
        (ReplicateKey, ErrorKind::UnsupportedOperationException),
        (
            UpdatePrimaryRegion,
            ErrorKind::UnsupportedOperationException,
        ),
    ];
    for (op, kind) in table {
        // Both take a key id or key ARN only, as AWS's management operations do.
        for by in ["alias/store-key", &kms.scope().alias_arn("alias/store-key")] {
            assert_aws(kms.refused(op, &key_req(by)), ErrorKind::NotFoundException);
        }
        let forms = [key_id.as_str(), arn.as_str()];
        for by in forms {
            match kms.refused(op, &key_req(by)) {
                Err(e) if e.kind() == kind => assert!(e.message().contains(&arn), "{op:?}: {e}"),
                other => panic!(
                    "{op:?} by {by}: expected {}, got {other:?}",
                    kind.aws_name()
                ),
            }
        }
    }
    // DeriveSharedSecret, which kmscks performs, refuses the store's key (not KEY_AGREEMENT).
    for by in [key_id.as_str(), arn.as_str(), "alias/store-key"] {
        let r = kms.derive_shared_secret(&DeriveSharedSecretRequest {
            key_id: by.to_owned(),
            key_agreement_algorithm: Some(kmscks::types::KeyAgreementAlgorithm::Ecdh),
            public_key: vec![0x30],
            ..Default::default()
        });
        let e = assert_aws(r, ErrorKind::InvalidKeyUsageException);
        assert!(e.message().contains(&arn), "{e}");
    }
    // The automatic rotation operations refuse the store's key as AWS does (tests/rotation.rs
    // has them on default-store keys).
    for by in [key_id.as_str(), arn.as_str()] {
        let enable = EnableKeyRotationRequest {
            key_id: by.to_owned(),
            rotation_period_in_days: None,
        };
        for result in [
            kms.enable_key_rotation(&enable),
            kms.disable_key_rotation(&key_req(by)),
            kms.get_key_rotation_status(&key_req(by)).map(|_| Empty {}),
            kms.rotate_key_on_demand(&key_req(by)).map(|_| Empty {}),
            kms.list_key_rotations(&ListKeyRotationsRequest {
                key_id: by.to_owned(),
                ..Default::default()
            })
            .map(|_| Empty {}),
        ] {
            let e = assert_aws(result, ErrorKind::UnsupportedOperationException);
            assert!(e.message().contains(&arn), "{e}");
        }
    }
    // A default-store key answers GetKeyRotationStatus (false) and refuses the rest.
    let plain = create_key(&kms, None);
    assert!(
        !kms.get_key_rotation_status(&key_req(&plain))
            .unwrap()
            .key_rotation_enabled
    );
    assert_aws(
        kms.refused(
            ReplicateKey,
            &key_req("1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        ErrorKind::NotFoundException,
    );
}

// ---- Durability ---------------------------------------------------------------------------

#[test]
fn key_operations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (config, clock) = config();
    let (before, key_id, doomed, gone) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let f = connected_store(&kms, &clock, "s1");
        let key_id = create_key(&kms, Some(&f.store_id));
        alias(&kms, "alias/durable", &key_id).unwrap();
        tag_key(&kms, &key_id, vec![tag("t", "v")]).unwrap();
        kms.update_key_description(&UpdateKeyDescriptionRequest {
            key_id: key_id.clone(),
            description: "kept".into(),
        })
        .unwrap();
        kms.disable_key(&key_req(&key_id)).unwrap();
        let doomed = create_key(&kms, None);
        schedule(&kms, &doomed, Some(7));
        let gone = create_key(&kms, Some(&f.store_id));
        schedule(&kms, &gone, Some(7));
        clock.advance_days(7);
        kms.cancel_key_deletion(&key_req(&doomed)).unwrap_err();
        assert_aws(
            kms.describe_key(&key_req(&gone)),
            ErrorKind::NotFoundException,
        );
        // The week's automatic CloudHSM backups are taken by the worker: wait for them so the
        // snapshot holds what the journal holds.
        kms.wait_for_background();
        (kms.state_snapshot(), key_id, doomed, gone)
    };
    let kms = Kms::open_with(dir.path(), config).unwrap();
    assert_eq!(kms.state_snapshot(), before);
    let md = describe_key(&kms, &key_id);
    assert_eq!(md.key_state, KeyState::Disabled);
    assert_eq!(md.description, "kept");
    assert_eq!(describe_key(&kms, "alias/durable").key_id, key_id);
    assert_eq!(all_tags(&kms, &key_id, None), vec![tag("t", "v")]);
    for id in [&doomed, &gone] {
        assert_aws(kms.describe_key(&key_req(id)), ErrorKind::NotFoundException);
    }
}
