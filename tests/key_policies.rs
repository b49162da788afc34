//! Key policies: GetKeyPolicy / PutKeyPolicy (spec §4.3), the lockout safety check, the 32 KB
//! quota, and what a principal other than the account root may do.

mod common;

use common::*;
use kmscks::api::hsm::{CreateClusterRequest, DescribeClustersRequest, Fault};
use kmscks::api::kms::*;
use kmscks::kms::policy::LOCKOUT_MESSAGE;
use kmscks::types::{KeyState, Origin};
use kmscks::{ErrorKind, Kms};
use serde_json::{json, Value};

const USER: &str = "arn:aws:iam::111122223333:user/uid-1001";
const ROOT: &str = "arn:aws:iam::111122223333:root";

fn get_policy(kms: &Kms, key_id: &str) -> kmscks::Result<GetKeyPolicyResponse> {
    kms.get_key_policy(&GetKeyPolicyRequest {
        key_id: key_id.into(),
        policy_name: Some("default".into()),
    })
}

fn put_policy(kms: &Kms, key_id: &str, policy: &str, bypass: bool) -> kmscks::Result<Empty> {
    kms.put_key_policy(&PutKeyPolicyRequest {
        key_id: key_id.into(),
        policy_name: Some("default".into()),
        policy: policy.into(),
        bypass_policy_lockout_safety_check: bypass,
    })
}

fn statement(principal: &str, actions: Value) -> Value {
    json!({
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": actions,
        "Resource": "*"
    })
}

fn policy(statements: Vec<Value>) -> String {
    serde_json::to_string_pretty(&json!({"Version": "2012-10-17", "Statement": statements}))
        .unwrap()
}

/// The root keeps everything; the user gets `actions`.
fn root_and_user(actions: Value) -> String {
    policy(vec![
        statement(ROOT, json!("kms:*")),
        statement(USER, actions),
    ])
}

#[test]
fn default_policy_from_get_key_policy() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    for key_id in [create_key(&kms, None), create_key(&kms, Some(&f.store_id))] {
        let resp = get_policy(&kms, &key_id).unwrap();
        assert_eq!(resp.policy_name, "default");
        let doc: Value = serde_json::from_str(&resp.policy).unwrap();
        assert_eq!(
            doc,
            json!({
                "Version": "2012-10-17",
                "Id": "key-default-1",
                "Statement": [{
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": ROOT},
                    "Action": "kms:*",
                    "Resource": "*"
                }]
            })
        );
        // PolicyName may be omitted; the key ARN works as well.
        let arn = describe_key(&kms, &key_id).arn;
        let again = kms
            .get_key_policy(&GetKeyPolicyRequest {
                key_id: arn.clone(),
                policy_name: None,
            })
            .unwrap();
        assert_eq!(again, resp);
        let names = kms
            .list_key_policies(&ListRequest {
                key_id: Some(arn),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(names.policy_names, vec!["default".to_owned()]);
        assert!(!names.truncated);
        let json = serde_json::to_value(&resp).unwrap();
        assert_eq!(json["PolicyName"], "default");
        assert!(json["Policy"].is_string());
    }
}

#[test]
fn put_key_policy_replaces_the_text_exactly() {
    let (kms, _clock) = kms();
    let key_id = create_key(&kms, None);
    let text = root_and_user(json!(["kms:DescribeKey"]));
    put_policy(&kms, &key_id, &text, false).unwrap();
    assert_eq!(get_policy(&kms, &key_id).unwrap().policy, text);
    // A policy given at CreateKey is kept as given.
    let created = kms
        .create_key(&CreateKeyRequest {
            policy: Some(text.clone()),
            ..Default::default()
        })
        .unwrap()
        .key_metadata
        .key_id;
    assert_eq!(get_policy(&kms, &created).unwrap().policy, text);
    // Missing key and alias are NotFound.
    assert_aws(
        put_policy(&kms, "1234abcd-12ab-34cd-56ef-1234567890ab", &text, false),
        ErrorKind::NotFoundException,
    );
    kms.create_alias(&AliasRequest {
        alias_name: "alias/p".into(),
        target_key_id: key_id.clone(),
    })
    .unwrap();
    assert_aws(
        put_policy(&kms, "alias/p", &text, false),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn lockout_safety_check() {
    let (kms, _clock) = kms();
    let key_id = create_key(&kms, None);
    let before = get_policy(&kms, &key_id).unwrap().policy;
    // Only the user can change the policy: the caller (root) would lock itself out.
    let user_only = policy(vec![statement(USER, json!("kms:*"))]);
    let root_cannot_put = policy(vec![
        statement(ROOT, json!(["kms:DescribeKey", "kms:GetKeyPolicy"])),
        statement(USER, json!("kms:*")),
    ]);
    let denied_put = policy(vec![
        statement(ROOT, json!("kms:*")),
        json!({"Effect": "Deny", "Principal": {"AWS": ROOT}, "Action": "kms:PutKeyPolicy", "Resource": "*"}),
    ]);
    for text in [&user_only, &root_cannot_put, &denied_put] {
        let e = assert_aws(
            put_policy(&kms, &key_id, text, false),
            ErrorKind::MalformedPolicyDocumentException,
        );
        assert_eq!(e.message(), LOCKOUT_MESSAGE);
        assert_aws(
            kms.create_key(&CreateKeyRequest {
                policy: Some(text.to_string()),
                ..Default::default()
            }),
            ErrorKind::MalformedPolicyDocumentException,
        );
    }
    assert_eq!(get_policy(&kms, &key_id).unwrap().policy, before);
    // With the bypass it is accepted, and the root really is locked out.
    put_policy(&kms, &key_id, &root_cannot_put, true).unwrap();
    assert_eq!(get_policy(&kms, &key_id).unwrap().policy, root_cannot_put);
    assert_aws(
        put_policy(&kms, &key_id, &before, false),
        ErrorKind::AccessDeniedException,
    );
    assert_aws(
        kms.disable_key(&key_req(&key_id)),
        ErrorKind::AccessDeniedException,
    );
    // The user it names can restore the default policy (which then locks the user out, so
    // the check refuses it for the user unless bypassed).
    let user = kms.acting_as(USER);
    assert_aws(
        put_policy(&user, &key_id, &before, false),
        ErrorKind::MalformedPolicyDocumentException,
    );
    put_policy(&user, &key_id, &before, true).unwrap();
    kms.disable_key(&key_req(&key_id)).unwrap();
    // CreateKey with the bypass keeps a policy that locks the creator out.
    let locked = kms
        .create_key(&CreateKeyRequest {
            policy: Some(user_only.clone()),
            bypass_policy_lockout_safety_check: true,
            ..Default::default()
        })
        .unwrap()
        .key_metadata
        .key_id;
    assert_aws(
        kms.describe_key(&key_req(&locked)),
        ErrorKind::AccessDeniedException,
    );
    assert_eq!(describe_key(&user, &locked).key_state, KeyState::Enabled);
}

#[test]
fn malformed_policies_are_refused() {
    let (kms, _clock) = kms();
    let key_id = create_key(&kms, None);
    let before = get_policy(&kms, &key_id).unwrap().policy;
    let root = statement(ROOT, json!("kms:*"));
    let bad: Vec<(&str, String)> = vec![
        ("not JSON", "{\"Version\": ".into()),
        ("empty text", String::new()),
        ("array", "[]".into()),
        ("no statement", r#"{"Version": "2012-10-17"}"#.into()),
        (
            "unknown top-level member",
            serde_json::to_string(&json!({"Statement": [root.clone()], "Extra": 1})).unwrap(),
        ),
        (
            "bad version",
            serde_json::to_string(&json!({"Version": "2020-01-01", "Statement": [root.clone()]}))
                .unwrap(),
        ),
        (
            "bad effect",
            policy(vec![
                json!({"Effect": "Maybe", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}),
            ]),
        ),
        (
            "no action",
            policy(vec![
                json!({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Resource": "*"}),
            ]),
        ),
        (
            "no principal",
            policy(vec![
                json!({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}),
            ]),
        ),
        (
            "statement not an object",
            r#"{"Version": "2012-10-17", "Statement": ["x"]}"#.into(),
        ),
    ];
    for (name, text) in &bad {
        match put_policy(&kms, &key_id, text, false) {
            Err(e) if e.kind() == ErrorKind::MalformedPolicyDocumentException => {}
            other => panic!("{name}: expected MalformedPolicyDocumentException, got {other:?}"),
        }
        // The bypass skips only the lockout check, not the validation.
        match put_policy(&kms, &key_id, text, true) {
            Err(e) if e.kind() == ErrorKind::MalformedPolicyDocumentException => {}
            other => {
                panic!("{name} (bypass): expected MalformedPolicyDocumentException, got {other:?}")
            }
        }
    }
    assert_eq!(get_policy(&kms, &key_id).unwrap().policy, before);
}

#[test]
fn policy_name_other_than_default() {
    let (kms, _clock) = kms();
    let key_id = create_key(&kms, None);
    let text = get_policy(&kms, &key_id).unwrap().policy;
    for name in ["Default", "custom", ""] {
        assert_aws(
            kms.get_key_policy(&GetKeyPolicyRequest {
                key_id: key_id.clone(),
                policy_name: Some(name.into()),
            }),
            ErrorKind::NotFoundException,
        );
        assert_aws(
            kms.put_key_policy(&PutKeyPolicyRequest {
                key_id: key_id.clone(),
                policy_name: Some(name.into()),
                policy: text.clone(),
                bypass_policy_lockout_safety_check: false,
            }),
            ErrorKind::NotFoundException,
        );
    }
}

#[test]
fn policy_size_quota() {
    let (kms, _clock) = kms();
    let key_id = create_key(&kms, None);
    let base = root_and_user(json!(["kms:DescribeKey"]));
    let padded = |total: usize| {
        // Whitespace before the closing brace keeps the document valid JSON.
        let (head, tail) = base.split_at(base.len() - 1);
        format!("{head}{}{tail}", " ".repeat(total - base.len()))
    };
    let exactly_32k = padded(32 * 1024);
    assert_eq!(exactly_32k.len(), 32768);
    put_policy(&kms, &key_id, &exactly_32k, false).unwrap();
    let over = padded(33 * 1024);
    let e = assert_aws(
        put_policy(&kms, &key_id, &over, false),
        ErrorKind::LimitExceededException,
    );
    assert!(e.message().contains("33792"), "{e}");
    assert_aws(
        kms.create_key(&CreateKeyRequest {
            policy: Some(over),
            ..Default::default()
        }),
        ErrorKind::LimitExceededException,
    );
    assert_eq!(get_policy(&kms, &key_id).unwrap().policy, exactly_32k);
}

/// Every key-level operation the user might try, by its `kms:` action name.
fn user_attempts(user: &Kms, key_id: &str) -> Vec<(&'static str, kmscks::Result<()>)> {
    vec![
        ("DescribeKey", user.describe_key(&key_req(key_id)).map(drop)),
        ("GetKeyPolicy", get_policy(user, key_id).map(drop)),
        (
            "ListKeyPolicies",
            user.list_key_policies(&ListRequest {
                key_id: Some(key_id.into()),
                ..Default::default()
            })
            .map(drop),
        ),
        (
            "ListResourceTags",
            user.list_resource_tags(&ListRequest {
                key_id: Some(key_id.into()),
                ..Default::default()
            })
            .map(drop),
        ),
        (
            "ListAliases",
            user.list_aliases(&ListRequest {
                key_id: Some(key_id.into()),
                ..Default::default()
            })
            .map(drop),
        ),
        (
            "TagResource",
            user.tag_resource(&TagResourceRequest {
                key_id: key_id.into(),
                tags: vec![Tag {
                    tag_key: "by".into(),
                    tag_value: "user".into(),
                }],
            })
            .map(drop),
        ),
        (
            "UpdateKeyDescription",
            user.update_key_description(&UpdateKeyDescriptionRequest {
                key_id: key_id.into(),
                description: "by user".into(),
            })
            .map(drop),
        ),
        (
            "CreateAlias",
            user.create_alias(&AliasRequest {
                alias_name: "alias/by-user".into(),
                target_key_id: key_id.into(),
            })
            .map(drop),
        ),
        ("DisableKey", user.disable_key(&key_req(key_id)).map(drop)),
        ("EnableKey", user.enable_key(&key_req(key_id)).map(drop)),
        (
            "GetKeyRotationStatus",
            user.get_key_rotation_status(&key_req(key_id)).map(drop),
        ),
    ]
}

#[test]
fn a_principal_with_every_key_permission_still_may_not_write_an_alias_only_the_root_may() {
    let (kms, _clock) = kms();
    let user = kms.acting_as(USER);
    let (mine, theirs) = (create_key(&kms, None), create_key(&kms, None));
    put_policy(&kms, &mine, &root_and_user(json!("kms:*")), false).unwrap();
    put_policy(&kms, &theirs, &root_and_user(json!("kms:*")), false).unwrap();
    kms.create_alias(&AliasRequest {
        alias_name: "alias/taken".into(),
        target_key_id: theirs.clone(),
    })
    .unwrap();
    // A name nobody uses yet, another application's to trust: not the user's to take.
    let squat = AliasRequest {
        alias_name: "alias/prod-db".into(),
        target_key_id: mine.clone(),
    };
    let refusals = [
        (
            "kms:CreateAlias",
            "alias/prod-db",
            user.create_alias(&squat),
        ),
        (
            "kms:UpdateAlias",
            "alias/taken",
            user.update_alias(&AliasRequest {
                alias_name: "alias/taken".into(),
                target_key_id: mine.clone(),
            }),
        ),
        (
            "kms:DeleteAlias",
            "alias/taken",
            user.delete_alias(&DeleteAliasRequest {
                alias_name: "alias/taken".into(),
            }),
        ),
    ];
    for (action, name, r) in refusals {
        let e = assert_aws(r.map(drop), ErrorKind::AccessDeniedException);
        let m = e.message();
        assert!(m.contains(USER) && m.contains(action), "{m}");
        assert!(
            m.contains(&format!(":alias/{}", &name["alias/".len()..])),
            "{m}"
        );
    }
    // Nothing changed; the root may do each of them, under the same key policies.
    assert_eq!(describe_key(&kms, "alias/taken").key_id, theirs);
    assert_aws(
        kms.describe_key(&key_req("alias/prod-db")).map(drop),
        ErrorKind::NotFoundException,
    );
    kms.create_alias(&squat).unwrap();
    assert_eq!(describe_key(&kms, "alias/prod-db").key_id, mine);
    // The user still uses the key through the alias: reading an alias is the key's policy's.
    assert_eq!(describe_key(&user, "alias/prod-db").key_id, mine);
}

#[test]
fn second_principal_gets_exactly_what_the_policy_grants() {
    let (kms, _clock) = kms();
    let user = kms.acting_as(USER);
    assert_eq!(user.principal(), USER);
    let key_id = create_key(&kms, None);
    let arn = describe_key(&kms, &key_id).arn;
    // The default policy grants the user nothing.
    let e = assert_aws(
        user.describe_key(&key_req(&key_id)),
        ErrorKind::AccessDeniedException,
    );
    assert!(
        e.message().contains(USER) && e.message().contains(&arn),
        "{e}"
    );
    assert!(e.message().contains("kms:DescribeKey"), "{e}");
    for (op, res) in user_attempts(&user, &key_id) {
        match res {
            Err(e) if e.kind() == ErrorKind::AccessDeniedException => {}
            other => panic!("{op} under the default policy: got {other:?}"),
        }
    }
    // Grant a few actions (one through a wildcard); exactly those succeed.
    let granted = [
        "DescribeKey",
        "TagResource",
        "ListResourceTags",
        "GetKeyRotationStatus",
    ];
    put_policy(
        &kms,
        &key_id,
        &root_and_user(json!([
            "kms:DescribeKey",
            "kms:TagResource",
            "kms:ListResource*",
            "kms:GetKeyRotationStatus"
        ])),
        false,
    )
    .unwrap();
    for (op, res) in user_attempts(&user, &key_id) {
        if granted.contains(&op) {
            assert!(res.is_ok(), "{op} is granted: {res:?}");
        } else {
            match res {
                Err(e) if e.kind() == ErrorKind::AccessDeniedException => {
                    assert!(e.message().contains(&format!("kms:{op}")), "{op}: {e}")
                }
                other => panic!("{op} is not granted: got {other:?}"),
            }
        }
    }
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Enabled);
    // A Deny wins over an Allow.
    let with_deny = policy(vec![
        statement(ROOT, json!("kms:*")),
        statement(USER, json!("kms:*")),
        json!({"Effect": "Deny", "Principal": {"AWS": USER}, "Action": ["kms:DisableKey", "kms:ScheduleKeyDeletion"], "Resource": "*"}),
    ]);
    put_policy(&kms, &key_id, &with_deny, false).unwrap();
    assert_aws(
        user.disable_key(&key_req(&key_id)),
        ErrorKind::AccessDeniedException,
    );
    assert_aws(
        user.schedule_key_deletion(&ScheduleKeyDeletionRequest {
            key_id: key_id.clone(),
            pending_window_in_days: None,
        }),
        ErrorKind::AccessDeniedException,
    );
    user.update_key_description(&UpdateKeyDescriptionRequest {
        key_id: key_id.clone(),
        description: "user may".into(),
    })
    .unwrap();
    assert_eq!(describe_key(&user, &key_id).description, "user may");
    // Another user is still denied.
    let other = kms.acting_as("arn:aws:iam::111122223333:user/uid-1002");
    assert_aws(
        other.describe_key(&key_req(&key_id)),
        ErrorKind::AccessDeniedException,
    );
    // DescribeKey by alias is authorized against the target key.
    kms.create_alias(&AliasRequest {
        alias_name: "alias/shared".into(),
        target_key_id: key_id.clone(),
    })
    .unwrap();
    assert_eq!(describe_key(&user, "alias/shared").key_id, key_id);
    assert_aws(
        other.describe_key(&key_req("alias/shared")),
        ErrorKind::AccessDeniedException,
    );
}

#[test]
fn account_level_operations_are_refused_to_other_principals() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let user = kms.acting_as(USER);
    let cluster_id = f.cluster.cluster_id.clone();
    let store_id = f.store_id.clone();
    let attempts: Vec<(&str, kmscks::Result<()>)> = vec![
        (
            "CreateKey",
            user.create_key(&CreateKeyRequest::default()).map(drop),
        ),
        (
            "CreateKey in store",
            user.create_key(&CreateKeyRequest {
                custom_key_store_id: Some(store_id.clone()),
                origin: Some(Origin::AwsCloudhsm),
                ..Default::default()
            })
            .map(drop),
        ),
        (
            "ListKeys",
            user.list_keys(&ListRequest::default()).map(drop),
        ),
        (
            "ListAliases (account)",
            user.list_aliases(&ListRequest::default()).map(drop),
        ),
        (
            "CreateCustomKeyStore",
            user.create_custom_key_store(&store_request(&f.cluster, "other"))
                .map(drop),
        ),
        (
            "DescribeCustomKeyStores",
            user.describe_custom_key_stores(&DescribeCustomKeyStoresRequest::default())
                .map(drop),
        ),
        (
            "DisconnectCustomKeyStore",
            user.disconnect_custom_key_store(&CustomKeyStoreIdRequest {
                custom_key_store_id: store_id.clone(),
            })
            .map(drop),
        ),
        (
            "ConnectCustomKeyStore",
            user.connect_custom_key_store(&CustomKeyStoreIdRequest {
                custom_key_store_id: store_id.clone(),
            })
            .map(drop),
        ),
        (
            "DeleteCustomKeyStore",
            user.delete_custom_key_store(&CustomKeyStoreIdRequest {
                custom_key_store_id: store_id.clone(),
            })
            .map(drop),
        ),
        (
            "CreateCluster",
            user.create_cluster(&CreateClusterRequest::default())
                .map(drop),
        ),
        (
            "DescribeClusters",
            user.describe_clusters(&DescribeClustersRequest::default())
                .map(drop),
        ),
        ("ListUsers", user.list_hsm_users(&cluster_id).map(drop)),
        (
            "ListKeyObjects",
            user.list_key_objects(&cluster_id).map(drop),
        ),
        ("CreateBackup", user.create_backup(&cluster_id).map(drop)),
        ("AuditLog", user.hsm_audit_log(&cluster_id, None).map(drop)),
        (
            "InjectFault",
            user.inject_fault(&cluster_id, &Fault::NetworkDown)
                .map(drop),
        ),
        (
            "DeleteCluster",
            user.delete_cluster(&cluster_named(&cluster_id)).map(drop),
        ),
        ("LookupEvents", user.kms_events().map(drop)),
    ];
    for (op, res) in attempts {
        match res {
            Err(e) if e.kind() == ErrorKind::AccessDeniedException => {
                assert!(e.message().contains(USER), "{op}: {e}")
            }
            other => panic!("{op} as {USER}: expected AccessDeniedException, got {other:?}"),
        }
    }
    // Nothing changed: the store is still connected, no key was created, no fault applied.
    assert_eq!(
        connection_state(&kms, &store_id),
        kmscks::types::ConnectionState::Connected
    );
    assert!(kms
        .list_keys(&ListRequest::default())
        .unwrap()
        .keys
        .is_empty());
    create_key(&kms, Some(&store_id));
}

#[test]
fn principal_resource_and_condition_forms() {
    let (kms, _clock) = kms();
    let user = kms.acting_as(USER);
    let key_id = create_key(&kms, None);
    let arn = describe_key(&kms, &key_id).arn;
    let other_arn = describe_key(&kms, &create_key(&kms, None)).arn;
    let describe = |who: &Kms| who.describe_key(&key_req(&key_id)).map(drop);
    // The bare account id names the root (and passes the lockout check for it).
    let by_account = policy(vec![json!({
        "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"
    })]);
    put_policy(&kms, &key_id, &by_account, false).unwrap();
    describe(&kms).unwrap();
    assert_aws(describe(&user), ErrorKind::AccessDeniedException);
    // "*" is everyone.
    let everyone = policy(vec![
        statement(ROOT, json!("kms:*")),
        json!({"Effect": "Allow", "Principal": "*", "Action": "kms:DescribeKey", "Resource": "*"}),
    ]);
    put_policy(&kms, &key_id, &everyone, false).unwrap();
    describe(&user).unwrap();
    // A list of principals; a Resource naming another key does not apply to this one.
    let listed = policy(vec![
        statement(ROOT, json!("kms:*")),
        json!({"Effect": "Allow", "Principal": {"AWS": [USER, "arn:aws:iam::111122223333:user/uid-7"]},
               "Action": "kms:DescribeKey", "Resource": other_arn}),
    ]);
    put_policy(&kms, &key_id, &listed, false).unwrap();
    assert_aws(describe(&user), ErrorKind::AccessDeniedException);
    let listed = listed.replace(&other_arn, &arn);
    put_policy(&kms, &key_id, &listed, false).unwrap();
    describe(&user).unwrap();
    // A supported condition is evaluated; an Allow with an unsupported one never applies.
    let conditioned = |op: &str, key: &str| {
        policy(vec![
            statement(ROOT, json!("kms:*")),
            json!({"Effect": "Allow", "Principal": "*", "Action": "kms:DescribeKey", "Resource": "*",
                   "Condition": {op: {key: USER}}}),
        ])
    };
    put_policy(
        &kms,
        &key_id,
        &conditioned("StringEquals", "aws:PrincipalArn"),
        false,
    )
    .unwrap();
    describe(&user).unwrap();
    assert_aws(
        describe(&kms.acting_as("arn:aws:iam::111122223333:user/uid-1002")),
        ErrorKind::AccessDeniedException,
    );
    put_policy(
        &kms,
        &key_id,
        &conditioned("StringEquals", "kms:ViaService"),
        false,
    )
    .unwrap();
    assert_aws(describe(&user), ErrorKind::AccessDeniedException);
}

#[test]
fn a_policy_change_takes_effect_on_the_next_data_plane_call_after_allowed_ones() {
    let (kms, _clock) = kms();
    let user = kms.acting_as(USER);
    let key_id = create_key(&kms, None);
    put_policy(
        &kms,
        &key_id,
        &root_and_user(json!(["kms:Encrypt", "kms:GenerateDataKey"])),
        false,
    )
    .unwrap();
    let encrypt = EncryptRequest {
        key_id: key_id.clone(),
        plaintext: kmscks::secret::SecretBytes::new(b"x".to_vec()),
        ..Default::default()
    };
    let data_key = GenerateDataKeyRequest {
        key_id: key_id.clone(),
        number_of_bytes: Some(32),
        ..Default::default()
    };
    // Allowed, several times over, single and batched: the verdicts may be remembered.
    for _ in 0..3 {
        user.encrypt(&encrypt).unwrap();
        user.generate_data_key(&data_key).unwrap();
    }
    let batch = vec![data_key.clone(); 4];
    assert!(user
        .generate_data_key_batch(&batch, true)
        .iter()
        .all(|r| r.is_ok()));
    // The user loses Encrypt: the very next call is refused, GenerateDataKey still allowed.
    put_policy(
        &kms,
        &key_id,
        &root_and_user(json!(["kms:GenerateDataKey"])),
        false,
    )
    .unwrap();
    assert_aws(user.encrypt(&encrypt), ErrorKind::AccessDeniedException);
    user.generate_data_key(&data_key).unwrap();
    // Then everything: the batch is refused item by item.
    put_policy(
        &kms,
        &key_id,
        &policy(vec![statement(ROOT, json!("kms:*"))]),
        false,
    )
    .unwrap();
    assert_aws(
        user.generate_data_key(&data_key),
        ErrorKind::AccessDeniedException,
    );
    for r in user.generate_data_key_batch(&batch, true) {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::AccessDeniedException);
    }
}
