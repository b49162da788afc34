//! Grants (CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant): what a
//! grant lets its grantee do beside the key policy, its constraints, who may end it, its
//! exceptions, DryRun, and that it is durable and goes with its key.

mod common;

use std::time::Duration;

use common::*;
use kmscks::api::kms::*;
use kmscks::secret::SecretBytes;
use kmscks::types::EncryptionContext;
use kmscks::{ErrorKind, Kms};

const USER: &str = "arn:aws:iam::111122223333:user/uid-1001";
const OTHER: &str = "arn:aws:iam::111122223333:user/uid-1002";

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn grant_req(key_id: &str, grantee: &str, ops: &[GrantOperation]) -> CreateGrantRequest {
    CreateGrantRequest {
        key_id: key_id.into(),
        grantee_principal: grantee.into(),
        operations: ops.to_vec(),
        ..Default::default()
    }
}

fn grant(kms: &Kms, key_id: &str, grantee: &str, ops: &[GrantOperation]) -> CreateGrantResponse {
    kms.create_grant(&grant_req(key_id, grantee, ops)).unwrap()
}

fn encrypt(kms: &Kms, key_id: &str, context: EncryptionContext) -> kmscks::Result<EncryptResponse> {
    kms.encrypt(&EncryptRequest {
        key_id: key_id.into(),
        plaintext: SecretBytes::new(b"hello".to_vec()),
        encryption_context: context,
        ..Default::default()
    })
}

fn decrypt(kms: &Kms, blob: &[u8], context: EncryptionContext) -> kmscks::Result<DecryptResponse> {
    kms.decrypt(&DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        encryption_context: context,
        ..Default::default()
    })
}

fn list(kms: &Kms, key_id: &str) -> Vec<GrantListEntry> {
    kms.list_grants(&ListGrantsRequest {
        key_id: key_id.into(),
        ..Default::default()
    })
    .unwrap()
    .grants
}

/// A key whose policy allows the account root everything, then has `statements`.
fn key_with_policy(kms: &Kms, statements: &[serde_json::Value]) -> String {
    let mut all = vec![serde_json::json!(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
         "Action": "kms:*", "Resource": "*"}
    )];
    all.extend_from_slice(statements);
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": all});
    kms.create_key(&CreateKeyRequest {
        policy: Some(policy.to_string()),
        ..Default::default()
    })
    .unwrap()
    .key_metadata
    .key_id
}

fn subset(pairs: &[(&str, &str)]) -> Option<GrantConstraints> {
    Some(GrantConstraints {
        encryption_context_subset: Some(ctx(pairs)),
        ..Default::default()
    })
}

fn equals(pairs: &[(&str, &str)]) -> Option<GrantConstraints> {
    Some(GrantConstraints {
        encryption_context_equals: Some(ctx(pairs)),
        ..Default::default()
    })
}

use GrantOperation as G;

#[test]
fn a_grant_lets_its_grantee_perform_exactly_the_listed_operations() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as(USER);
    assert_aws(
        encrypt(&user, &key, ctx(&[])),
        ErrorKind::AccessDeniedException,
    );

    let created = grant(&kms, &key, USER, &[G::Encrypt, G::Decrypt]);
    assert_eq!(created.grant_id.len(), 64);
    assert!(!created.grant_token.is_empty());
    let blob = encrypt(&user, &key, ctx(&[])).unwrap().ciphertext_blob;
    assert_eq!(
        decrypt(&user, &blob, ctx(&[])).unwrap().plaintext.expose(),
        b"hello"
    );

    // Not listed: refused, as before the grant.
    assert_aws(
        user.generate_data_key(&GenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: Some(32),
            ..Default::default()
        }),
        ErrorKind::AccessDeniedException,
    );
    assert_aws(
        user.describe_key(&key_req(&key)),
        ErrorKind::AccessDeniedException,
    );
    // Another principal gets nothing from it.
    let other = kms.acting_as(OTHER);
    assert_aws(
        encrypt(&other, &key, ctx(&[])),
        ErrorKind::AccessDeniedException,
    );
    // Nor does it reach another key.
    let second = create_key(&kms, None);
    assert_aws(
        encrypt(&user, &second, ctx(&[])),
        ErrorKind::AccessDeniedException,
    );
}

#[test]
fn a_grant_allows_describe_key_and_re_encrypt_between_keys() {
    let (kms, _clock) = kms();
    let (from, to) = (create_key(&kms, None), create_key(&kms, None));
    let user = kms.acting_as(USER);
    grant(&kms, &from, USER, &[G::DescribeKey, G::ReEncryptFrom]);
    assert_eq!(
        user.describe_key(&key_req(&from))
            .unwrap()
            .key_metadata
            .key_id,
        from
    );
    let blob = encrypt(&kms, &from, ctx(&[])).unwrap().ciphertext_blob;
    let re = |kms: &Kms| {
        kms.re_encrypt(&ReEncryptRequest {
            ciphertext_blob: blob.clone(),
            destination_key_id: to.clone(),
            ..Default::default()
        })
    };
    assert_aws(re(&user), ErrorKind::AccessDeniedException);
    grant(&kms, &to, USER, &[G::ReEncryptTo]);
    let out = re(&user).unwrap();
    assert!(out.key_id.ends_with(&to));
}

#[test]
fn a_subset_constraint_allows_contexts_that_include_its_pairs_and_refuses_others() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as(USER);
    kms.create_grant(&CreateGrantRequest {
        constraints: subset(&[("Dept", "IT")]),
        ..grant_req(&key, USER, &[G::Encrypt, G::Decrypt])
    })
    .unwrap();
    let good = ctx(&[("Dept", "IT"), ("Project", "x")]);
    let blob = encrypt(&user, &key, good.clone()).unwrap().ciphertext_blob;
    decrypt(&user, &blob, good).unwrap();
    // Keys fold case in a constraint; values do not.
    encrypt(&user, &key, ctx(&[("dept", "IT")])).unwrap();
    for bad in [ctx(&[]), ctx(&[("Dept", "it")]), ctx(&[("Other", "IT")])] {
        assert_aws(encrypt(&user, &key, bad), ErrorKind::AccessDeniedException);
    }
    // The root's blob under another context: the grant does not reach it.
    let root_blob = encrypt(&kms, &key, ctx(&[("Dept", "HR")]))
        .unwrap()
        .ciphertext_blob;
    assert_aws(
        decrypt(&user, &root_blob, ctx(&[("Dept", "HR")])),
        ErrorKind::AccessDeniedException,
    );
}

#[test]
fn an_equals_constraint_allows_exactly_its_context() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as(USER);
    kms.create_grant(&CreateGrantRequest {
        constraints: equals(&[("Dept", "IT")]),
        ..grant_req(&key, USER, &[G::GenerateDataKey])
    })
    .unwrap();
    let gdk = |context| {
        user.generate_data_key(&GenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: Some(16),
            encryption_context: context,
            ..Default::default()
        })
    };
    gdk(ctx(&[("Dept", "IT")])).unwrap();
    assert_aws(
        gdk(ctx(&[("Dept", "IT"), ("x", "y")])),
        ErrorKind::AccessDeniedException,
    );
    assert_aws(gdk(ctx(&[])), ErrorKind::AccessDeniedException);
}

#[test]
fn a_constraint_with_keys_differing_only_in_case_is_refused_naming_them_and_no_grant_is_made() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let e = kms
        .create_grant(&CreateGrantRequest {
            constraints: equals(&[("tenant", "a"), ("Tenant", "a")]),
            ..grant_req(&key, USER, &[G::Encrypt])
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ValidationException);
    assert!(
        e.message().contains("constraints.encryptionContextEquals")
            && e.message().contains("'Tenant' and 'tenant'"),
        "{e}"
    );
    let listed = kms
        .list_grants(&ListGrantsRequest {
            key_id: key.clone(),
            ..Default::default()
        })
        .unwrap();
    assert!(listed.grants.is_empty());
}

#[test]
fn a_batch_checks_each_item_against_the_grant_constraints_on_its_own() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as(USER);
    kms.create_grant(&CreateGrantRequest {
        constraints: subset(&[("Dept", "IT")]),
        ..grant_req(&key, USER, &[G::Encrypt])
    })
    .unwrap();
    let item = |context| EncryptRequest {
        key_id: key.clone(),
        plaintext: SecretBytes::new(b"x".to_vec()),
        encryption_context: context,
        ..Default::default()
    };
    let out = user.encrypt_batch(&[
        item(ctx(&[("Dept", "IT")])),
        item(ctx(&[("Dept", "HR")])),
        item(ctx(&[("Dept", "IT")])),
    ]);
    assert!(out[0].is_ok());
    assert_aws(
        out[1].as_ref().map(|_| ()).map_err(Clone::clone),
        ErrorKind::AccessDeniedException,
    );
    assert!(out[2].is_ok());
}

#[test]
fn after_revoke_grant_returns_the_grantees_next_decrypt_is_refused() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as(USER);
    let g = grant(&kms, &key, USER, &[G::Decrypt]);
    let blob = encrypt(&kms, &key, ctx(&[])).unwrap().ciphertext_blob;
    decrypt(&user, &blob, ctx(&[])).unwrap();
    kms.revoke_grant(&RevokeGrantRequest {
        key_id: key.clone(),
        grant_id: g.grant_id.clone(),
        dry_run: false,
    })
    .unwrap();
    assert_aws(
        decrypt(&user, &blob, ctx(&[])),
        ErrorKind::AccessDeniedException,
    );
    assert!(list(&kms, &key).is_empty());
    // Revoking it again: it is gone.
    assert_aws(
        kms.revoke_grant(&RevokeGrantRequest {
            key_id: key,
            grant_id: g.grant_id,
            dry_run: false,
        }),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn a_grant_is_retired_by_token_or_by_key_and_grant_id_by_whom_it_names() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let (user, other) = (kms.acting_as(USER), kms.acting_as(OTHER));
    let retire_by_id = |k: &Kms, id: &str| {
        k.retire_grant(&RetireGrantRequest {
            key_id: Some(key.clone()),
            grant_id: Some(id.to_owned()),
            ..Default::default()
        })
    };

    // The retiring principal, by key and grant id; a stranger may not.
    let g = kms
        .create_grant(&CreateGrantRequest {
            retiring_principal: Some(OTHER.into()),
            ..grant_req(&key, USER, &[G::Decrypt])
        })
        .unwrap();
    assert_aws(
        retire_by_id(&user, &g.grant_id),
        ErrorKind::AccessDeniedException,
    );
    retire_by_id(&other, &g.grant_id).unwrap();
    assert!(list(&kms, &key).is_empty());

    // The grantee, by token, when the grant lists RetireGrant.
    let g = grant(&kms, &key, USER, &[G::Decrypt, G::RetireGrant]);
    user.retire_grant(&RetireGrantRequest {
        grant_token: Some(g.grant_token.clone()),
        ..Default::default()
    })
    .unwrap();
    assert!(list(&kms, &key).is_empty());
    assert_aws(
        user.retire_grant(&RetireGrantRequest {
            grant_token: Some(g.grant_token),
            ..Default::default()
        }),
        ErrorKind::NotFoundException,
    );

    // The account root, as a backstop.
    let g = grant(&kms, &key, USER, &[G::Decrypt]);
    assert_aws(
        retire_by_id(&user, &g.grant_id),
        ErrorKind::AccessDeniedException,
    );
    retire_by_id(&kms, &g.grant_id).unwrap();

    // Neither a token nor both ids: a validation error.
    assert_aws(
        kms.retire_grant(&RetireGrantRequest {
            key_id: Some(key.clone()),
            ..Default::default()
        }),
        ErrorKind::ValidationException,
    );
}

#[test]
fn a_key_policy_allowing_retire_grant_lets_no_one_retire_anothers_grant() {
    let (kms, _clock) = kms();
    // OTHER may do everything with the key but revoke grants: `kms:RetireGrant` in a key
    // policy is not effective (AWS's rule), so it is no way around the Deny.
    let key = key_with_policy(
        &kms,
        &[
            serde_json::json!({"Effect": "Allow", "Principal": {"AWS": OTHER},
                               "Action": "kms:*", "Resource": "*"}),
            serde_json::json!({"Effect": "Deny", "Principal": {"AWS": OTHER},
                               "Action": "kms:RevokeGrant", "Resource": "*"}),
        ],
    );
    let g = grant(&kms, &key, USER, &[G::Decrypt]);
    let other = kms.acting_as(OTHER);
    let e = other
        .retire_grant(&RetireGrantRequest {
            key_id: Some(key.clone()),
            grant_id: Some(g.grant_id.clone()),
            ..Default::default()
        })
        .expect_err("retired another principal's grant by the key policy");
    assert_eq!(e.kind(), ErrorKind::AccessDeniedException, "{e}");
    assert!(e.message().contains("kms:RetireGrant"), "{e}");
    assert_eq!(list(&kms, &key).len(), 1, "the grant is still there");
}

#[test]
fn the_same_name_and_parameters_return_the_same_grant_with_a_new_token() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let named = CreateGrantRequest {
        name: Some("ebs:vol-1/attach_x".into()),
        ..grant_req(&key, USER, &[G::Encrypt, G::Decrypt])
    };
    let a = kms.create_grant(&named).unwrap();
    let b = kms
        .create_grant(&CreateGrantRequest {
            operations: vec![G::Decrypt, G::Encrypt],
            ..named.clone()
        })
        .unwrap();
    assert_eq!(a.grant_id, b.grant_id);
    assert_ne!(a.grant_token, b.grant_token);
    assert_eq!(list(&kms, &key).len(), 1);
    // The same name with other parameters is another grant.
    let c = kms
        .create_grant(&CreateGrantRequest {
            operations: vec![G::Decrypt],
            ..named
        })
        .unwrap();
    assert_ne!(c.grant_id, a.grant_id);
    let grants = list(&kms, &key);
    assert_eq!(grants.len(), 2);
    assert!(grants
        .iter()
        .all(|g| g.name.as_deref() == Some("ebs:vol-1/attach_x")));
}

#[test]
fn list_grants_pages_by_limit_and_marker_and_filters_by_grant_id_and_grantee() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let mut ids: Vec<String> = (0..5)
        .map(|i| grant(&kms, &key, if i < 3 { USER } else { OTHER }, &[G::Encrypt]).grant_id)
        .collect();
    ids.sort();
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_grants(&ListGrantsRequest {
                key_id: key.clone(),
                limit: Some(2),
                marker: marker.clone(),
                ..Default::default()
            })
            .unwrap();
        assert!(page.grants.len() <= 2);
        assert_eq!(page.truncated, page.next_marker.is_some());
        seen.extend(page.grants.iter().map(|g| g.grant_id.clone()));
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let only = |req: ListGrantsRequest| kms.list_grants(&req).unwrap().grants;
    let one = only(ListGrantsRequest {
        key_id: key.clone(),
        grant_id: Some(ids[2].clone()),
        ..Default::default()
    });
    assert_eq!(one.len(), 1);
    let entry = &one[0];
    assert_eq!(entry.grant_id, ids[2]);
    assert!(entry.key_id.starts_with("arn:aws:kms:"));
    assert_eq!(entry.issuing_account, "arn:aws:iam::111122223333:root");
    assert_eq!(entry.operations, [G::Encrypt]);
    let others = only(ListGrantsRequest {
        key_id: key.clone(),
        grantee_principal: Some(OTHER.into()),
        ..Default::default()
    });
    assert_eq!(others.len(), 2);
    assert!(others.iter().all(|g| g.grantee_principal == OTHER));

    // The member shapes AWS names.
    let json = serde_json::to_value(entry).unwrap();
    for member in [
        "KeyId",
        "GrantId",
        "CreationDate",
        "GranteePrincipal",
        "IssuingAccount",
        "Operations",
    ] {
        assert!(json.get(member).is_some(), "{member} in {json}");
    }
    assert_aws(
        kms.list_grants(&ListGrantsRequest {
            key_id: key,
            marker: Some("bm90IGEgbWFya2Vy".into()),
            ..Default::default()
        }),
        ErrorKind::InvalidMarkerException,
    );
}

#[test]
fn list_retirable_grants_lists_a_principals_grants_across_keys_for_the_root() {
    let (kms, _clock) = kms();
    let (a, b) = (create_key(&kms, None), create_key(&kms, None));
    for key in [&a, &b, &a] {
        kms.create_grant(&CreateGrantRequest {
            retiring_principal: Some(OTHER.into()),
            ..grant_req(key, USER, &[G::Decrypt])
        })
        .unwrap();
    }
    grant(&kms, &a, USER, &[G::Decrypt]); // no retiring principal
    let page = |marker| {
        kms.list_retirable_grants(&ListRetirableGrantsRequest {
            retiring_principal: OTHER.into(),
            limit: Some(2),
            marker,
        })
        .unwrap()
    };
    let first = page(None);
    assert_eq!(first.grants.len(), 2);
    assert!(first.truncated);
    let second = page(first.next_marker);
    assert_eq!(second.grants.len(), 1);
    assert!(!second.truncated);
    assert!(first
        .grants
        .iter()
        .chain(&second.grants)
        .all(|g| g.retiring_principal.as_deref() == Some(OTHER)));
    assert_aws(
        kms.acting_as(OTHER)
            .list_retirable_grants(&ListRetirableGrantsRequest {
                retiring_principal: OTHER.into(),
                ..Default::default()
            }),
        ErrorKind::AccessDeniedException,
    );
}

#[test]
fn dry_run_runs_every_check_and_changes_nothing() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as(USER);
    let dry = CreateGrantRequest {
        dry_run: true,
        ..grant_req(&key, USER, &[G::Decrypt])
    };
    assert_aws(kms.create_grant(&dry), ErrorKind::DryRunOperationException);
    assert!(list(&kms, &key).is_empty(), "a dry run creates nothing");
    // A failing check answers that check's exception.
    assert_aws(user.create_grant(&dry), ErrorKind::AccessDeniedException);
    assert_aws(
        kms.create_grant(&CreateGrantRequest {
            operations: vec![],
            ..dry.clone()
        }),
        ErrorKind::ValidationException,
    );

    let g = grant(&kms, &key, USER, &[G::Decrypt]);
    let revoke = RevokeGrantRequest {
        key_id: key.clone(),
        grant_id: g.grant_id.clone(),
        dry_run: true,
    };
    assert_aws(
        kms.revoke_grant(&revoke),
        ErrorKind::DryRunOperationException,
    );
    assert_aws(user.revoke_grant(&revoke), ErrorKind::AccessDeniedException);
    let retire = RetireGrantRequest {
        grant_token: Some(g.grant_token.clone()),
        dry_run: true,
        ..Default::default()
    };
    assert_aws(
        kms.retire_grant(&retire),
        ErrorKind::DryRunOperationException,
    );
    assert_aws(user.retire_grant(&retire), ErrorKind::AccessDeniedException);
    assert_eq!(
        list(&kms, &key).len(),
        1,
        "dry runs retire and revoke nothing"
    );
    let blob = encrypt(&kms, &key, ctx(&[])).unwrap().ciphertext_blob;
    decrypt(&user, &blob, ctx(&[])).unwrap();
    // A dry run of an unknown grant is the unknown grant's exception.
    assert_aws(
        kms.revoke_grant(&RevokeGrantRequest {
            grant_id: "0".repeat(64),
            ..revoke
        }),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn create_grant_refuses_malformed_members_with_aws_exceptions() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let base = grant_req(&key, USER, &[G::Decrypt]);
    let kind = |req: CreateGrantRequest| kms.create_grant(&req).unwrap_err().kind();
    assert_eq!(
        kind(CreateGrantRequest {
            operations: vec![],
            ..base.clone()
        }),
        ErrorKind::ValidationException
    );
    assert_eq!(
        kind(CreateGrantRequest {
            name: Some("no spaces".into()),
            ..base.clone()
        }),
        ErrorKind::ValidationException
    );
    assert_eq!(
        kind(CreateGrantRequest {
            name: Some("n".repeat(257)),
            ..base.clone()
        }),
        ErrorKind::ValidationException
    );
    assert_eq!(
        kind(CreateGrantRequest {
            grantee_principal: String::new(),
            ..base.clone()
        }),
        ErrorKind::ValidationException
    );
    assert_eq!(
        kind(CreateGrantRequest {
            operations: vec![G::Sign],
            constraints: subset(&[("a", "b")]),
            ..base.clone()
        }),
        ErrorKind::ValidationException,
        "constraints are for operations with an encryption context"
    );
    let nine: Vec<(String, String)> = (0..9).map(|i| (format!("k{i}"), "v".into())).collect();
    assert_eq!(
        kind(CreateGrantRequest {
            constraints: Some(GrantConstraints {
                encryption_context_subset: Some(nine.into_iter().collect()),
                ..Default::default()
            }),
            ..base.clone()
        }),
        ErrorKind::ValidationException
    );
    assert_eq!(
        kind(CreateGrantRequest {
            grant_tokens: vec!["not-a-token".into()],
            ..base.clone()
        }),
        ErrorKind::InvalidGrantTokenException
    );
    assert_eq!(
        kind(CreateGrantRequest {
            key_id: "alias/nope".into(),
            ..base.clone()
        }),
        ErrorKind::NotFoundException,
    );
    assert_eq!(
        kind(CreateGrantRequest {
            key_id: "00000000-0000-4000-8000-000000000000".into(),
            ..base.clone()
        }),
        ErrorKind::NotFoundException
    );
    // Constraints with DescribeKey and RetireGrant beside a cryptographic operation are fine.
    kms.create_grant(&CreateGrantRequest {
        operations: vec![G::Decrypt, G::DescribeKey, G::RetireGrant],
        constraints: subset(&[("a", "b")]),
        ..base
    })
    .unwrap();
}

#[test]
fn malformed_and_unknown_grant_ids_and_tokens_get_their_own_exceptions() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let revoke = |id: &str| {
        kms.revoke_grant(&RevokeGrantRequest {
            key_id: key.clone(),
            grant_id: id.into(),
            dry_run: false,
        })
    };
    assert_aws(revoke("nope"), ErrorKind::InvalidGrantIdException);
    assert_aws(revoke(&"a".repeat(64)), ErrorKind::NotFoundException);
    assert_aws(
        kms.retire_grant(&RetireGrantRequest {
            grant_token: Some("bogus".into()),
            ..Default::default()
        }),
        ErrorKind::InvalidGrantTokenException,
    );
    assert_aws(
        kms.list_grants(&ListGrantsRequest {
            key_id: key.clone(),
            grant_id: Some("nope".into()),
            ..Default::default()
        }),
        ErrorKind::InvalidGrantIdException,
    );
    // Every operation with GrantTokens checks them.
    assert_aws(
        kms.encrypt(&EncryptRequest {
            key_id: key.clone(),
            plaintext: SecretBytes::new(b"x".to_vec()),
            grant_tokens: vec!["bogus".into()],
            ..Default::default()
        }),
        ErrorKind::InvalidGrantTokenException,
    );
    // A token CreateGrant returned is valid anywhere tokens are taken.
    let g = grant(&kms, &key, USER, &[G::Encrypt]);
    kms.acting_as(USER)
        .encrypt(&EncryptRequest {
            key_id: key,
            plaintext: SecretBytes::new(b"x".to_vec()),
            grant_tokens: vec![g.grant_token],
            ..Default::default()
        })
        .unwrap();
}

#[test]
fn create_grant_follows_the_key_state_and_retire_and_revoke_work_in_any() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let g = grant(&kms, &key, USER, &[G::Decrypt]);
    kms.disable_key(&key_req(&key)).unwrap();
    assert_aws(
        kms.create_grant(&grant_req(&key, USER, &[G::Decrypt])),
        ErrorKind::DisabledException,
    );
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    assert_aws(
        kms.create_grant(&grant_req(&key, USER, &[G::Decrypt])),
        ErrorKind::KMSInvalidStateException,
    );
    assert_eq!(
        list(&kms, &key).len(),
        1,
        "ListGrants works while pending deletion"
    );
    kms.revoke_grant(&RevokeGrantRequest {
        key_id: key.clone(),
        grant_id: g.grant_id,
        dry_run: false,
    })
    .unwrap();
}

#[test]
fn a_grant_with_create_grant_lets_its_grantee_grant_no_more_than_it_has() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as(USER);
    kms.create_grant(&CreateGrantRequest {
        constraints: subset(&[("Dept", "IT")]),
        ..grant_req(&key, USER, &[G::Decrypt, G::CreateGrant])
    })
    .unwrap();
    let sub = grant_req(&key, OTHER, &[G::Decrypt]);
    // Without the constraint: looser than the grant that allows it.
    assert_aws(user.create_grant(&sub), ErrorKind::AccessDeniedException);
    // An operation the grant does not have.
    assert_aws(
        user.create_grant(&CreateGrantRequest {
            operations: vec![G::Encrypt],
            constraints: subset(&[("Dept", "IT")]),
            ..sub.clone()
        }),
        ErrorKind::AccessDeniedException,
    );
    user.create_grant(&CreateGrantRequest {
        constraints: equals(&[("Dept", "IT")]),
        ..sub
    })
    .unwrap();
    let blob = encrypt(&kms, &key, ctx(&[("Dept", "IT")]))
        .unwrap()
        .ciphertext_blob;
    decrypt(&kms.acting_as(OTHER), &blob, ctx(&[("Dept", "IT")])).unwrap();
}

#[test]
fn grants_work_on_keys_in_a_custom_key_store() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key = create_key(&kms, Some(&f.store_id));
    let user = kms.acting_as(USER);
    let g = grant(&kms, &key, USER, &[G::Encrypt, G::Decrypt]);
    let blob = encrypt(&user, &key, ctx(&[])).unwrap().ciphertext_blob;
    decrypt(&user, &blob, ctx(&[])).unwrap();
    // While the store is disconnected (the key Unavailable), grants can still be created,
    // on a key disabled underneath too (it shows Unavailable: spec §4.5), but not on one
    // pending deletion (which shows PendingDeletion).
    let disabled = create_key(&kms, Some(&f.store_id));
    let doomed = create_key(&kms, Some(&f.store_id));
    kms.disable_key(&key_req(&disabled)).unwrap();
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: doomed.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    assert_aws(
        kms.create_grant(&grant_req(&disabled, OTHER, &[G::Decrypt])),
        ErrorKind::DisabledException,
    );
    disconnect(&kms, &clock, &f.store_id);
    grant(&kms, &key, OTHER, &[G::Decrypt]);
    grant(&kms, &disabled, OTHER, &[G::Decrypt]);
    assert_aws(
        kms.create_grant(&grant_req(&doomed, OTHER, &[G::Decrypt])),
        ErrorKind::KMSInvalidStateException,
    );
    connect(&kms, &clock, &f.store_id);
    assert_eq!(
        list(&kms, &disabled).len(),
        1,
        "the grant outlives the disconnection"
    );
    kms.revoke_grant(&RevokeGrantRequest {
        key_id: key.clone(),
        grant_id: g.grant_id,
        dry_run: false,
    })
    .unwrap();
    assert_aws(
        decrypt(&user, &blob, ctx(&[])),
        ErrorKind::AccessDeniedException,
    );
    decrypt(&kms.acting_as(OTHER), &blob, ctx(&[])).unwrap();
}

#[test]
fn grants_survive_a_restart_and_go_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let (config, clock) = config();
    let (key, blob, id) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let key = create_key(&kms, None);
        let g = kms
            .create_grant(&CreateGrantRequest {
                retiring_principal: Some(OTHER.into()),
                name: Some("kept".into()),
                constraints: subset(&[("a", "b")]),
                ..grant_req(&key, USER, &[G::Decrypt])
            })
            .unwrap();
        let blob = encrypt(&kms, &key, ctx(&[("a", "b")]))
            .unwrap()
            .ciphertext_blob;
        (key, blob, g.grant_id)
    };
    let kms = Kms::open_with(dir.path(), config).unwrap();
    let grants = list(&kms, &key);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grant_id, id);
    assert_eq!(grants[0].name.as_deref(), Some("kept"));
    assert_eq!(grants[0].constraints, subset(&[("a", "b")]));
    decrypt(&kms.acting_as(USER), &blob, ctx(&[("a", "b")])).unwrap();

    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    clock.advance(Duration::from_secs(8 * 86_400));
    kms.run_scheduled_deletions().unwrap(); // or the background worker did already
    assert_aws(
        kms.describe_key(&key_req(&key)),
        ErrorKind::NotFoundException,
    );
    let retirable = kms
        .list_retirable_grants(&ListRetirableGrantsRequest {
            retiring_principal: OTHER.into(),
            ..Default::default()
        })
        .unwrap();
    assert!(retirable.grants.is_empty(), "the key's grants went with it");
}

#[test]
fn grant_operations_are_recorded_in_the_event_log() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let g = grant(&kms, &key, USER, &[G::Decrypt]);
    kms.retire_grant(&RetireGrantRequest {
        key_id: Some(key.clone()),
        grant_id: Some(g.grant_id),
        ..Default::default()
    })
    .unwrap();
    let g = grant(&kms, &key, USER, &[G::Decrypt]);
    kms.revoke_grant(&RevokeGrantRequest {
        key_id: key,
        grant_id: g.grant_id,
        dry_run: false,
    })
    .unwrap();
    let names: Vec<String> = kms
        .kms_events()
        .unwrap()
        .into_iter()
        .map(|e| e.event_name)
        .filter(|n| n.contains("Grant"))
        .collect();
    assert_eq!(
        names,
        ["CreateGrant", "RetireGrant", "CreateGrant", "RevokeGrant"]
    );
}

#[test]
fn a_key_holds_at_most_50000_grants() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    for _ in 0..kmscks::types::limits::MAX_GRANTS_PER_KEY {
        grant(&kms, &key, USER, &[G::Decrypt]);
    }
    assert_aws(
        kms.create_grant(&grant_req(&key, USER, &[G::Decrypt])),
        ErrorKind::LimitExceededException,
    );
    // Another key is not affected.
    grant(&kms, &create_key(&kms, None), USER, &[G::Decrypt]);
}

#[test]
fn a_grant_may_allow_only_what_its_key_can_do_and_constrain_only_a_symmetric_encryption_key() {
    use kmscks::types::{KeySpec, KeyUsage};
    let (kms, _clock) = kms();
    let symmetric = create_key(&kms, None);
    let hmac = create_key_of(&kms, KeySpec::Hmac256, KeyUsage::GenerateVerifyMac);
    let signing = create_key_of(&kms, KeySpec::EccNistP256, KeyUsage::SignVerify);
    use GrantOperation::*;
    for (key, refused, allowed) in [
        (
            &symmetric,
            Sign,
            vec![Encrypt, GenerateDataKeyPair, DescribeKey],
        ),
        (&symmetric, GenerateMac, vec![ReEncryptFrom, RetireGrant]),
        (&hmac, Encrypt, vec![GenerateMac, VerifyMac, DescribeKey]),
        (&hmac, GetPublicKey, vec![CreateGrant]),
        (&signing, Decrypt, vec![Sign, Verify, GetPublicKey]),
        (&signing, GenerateDataKey, vec![DescribeKey]),
    ] {
        let e = assert_aws(
            kms.create_grant(&grant_req(key, USER, &[allowed[0], refused])),
            ErrorKind::ValidationException,
        );
        assert!(e.message().contains(refused.as_str()), "{e}");
        grant(&kms, key, USER, &allowed);
    }
    let e = assert_aws(
        kms.create_grant(&CreateGrantRequest {
            // DescribeKey may sit beside constraints; on an HMAC key they constrain nothing.
            constraints: subset(&[("k", "v")]),
            ..grant_req(&hmac, USER, &[DescribeKey])
        }),
        ErrorKind::ValidationException,
    );
    assert!(
        e.message().contains("symmetric encryption keys only"),
        "{e}"
    );
    // Nothing was created by the refusals: the keys hold the allowed grants only.
    assert_eq!(list(&kms, &hmac).len(), 2);
    assert_eq!(list(&kms, &signing).len(), 2);
}

#[test]
fn an_explicit_deny_in_the_key_policy_overrides_every_grant_and_silence_does_not() {
    let (kms, _clock) = kms();
    // Root may do everything; USER is denied Decrypt, DescribeKey and CreateGrant outright,
    // and given nothing (so Encrypt is only unallowed, not denied).
    let key = key_with_policy(
        &kms,
        &[
            serde_json::json!({"Effect": "Deny", "Principal": {"AWS": USER},
                             "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"],
                             "Resource": "*"}),
        ],
    );
    grant(
        &kms,
        &key,
        USER,
        &[G::Encrypt, G::Decrypt, G::DescribeKey, G::CreateGrant],
    );
    let user = kms.acting_as(USER);
    let explicit = |r: kmscks::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::AccessDeniedException, "{what}: {e}");
        assert!(
            e.message()
                .contains("with an explicit deny in a resource-based policy"),
            "{what}: {e}"
        );
    };
    // Silent policy: the grant allows it.
    encrypt(&user, &key, ctx(&[])).unwrap();
    // Denied: no grant overrides it, on the data plane (one call and a batch) or the control
    // plane.
    let blob = encrypt(&kms, &key, ctx(&[])).unwrap().ciphertext_blob;
    explicit(decrypt(&user, &blob, ctx(&[])).map(drop), "Decrypt");
    let batch = user.decrypt_batch(&[DecryptRequest {
        ciphertext_blob: blob.clone(),
        ..Default::default()
    }]);
    explicit(
        batch.into_iter().next().expect("one answer").map(drop),
        "Decrypt in a batch",
    );
    explicit(user.describe_key(&key_req(&key)).map(drop), "DescribeKey");
    explicit(
        user.create_grant(&grant_req(&key, OTHER, &[G::Encrypt]))
            .map(drop),
        "CreateGrant",
    );
    // Root, whom nothing denies, is served as before.
    decrypt(&kms, &blob, ctx(&[])).unwrap();
}
