//! Limit/Marker paging of the List operations (ListKeys, ListAliases, ListResourceTags,
//! DescribeCustomKeyStores) at scale and across writes: every item exactly once and in order,
//! markers that stay valid while keys come and go, and AWS's errors for a bad marker or limit.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::*;
use kmscks::api::kms::*;
use kmscks::{ErrorKind, Kms};

fn schedule_deletion(kms: &Kms, key_id: &str) {
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key_id.into(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
}

fn list_keys(kms: &Kms, limit: Option<u32>, marker: Option<String>) -> ListKeysResponse {
    kms.list_keys(&ListRequest {
        limit,
        marker,
        ..Default::default()
    })
    .unwrap()
}

/// Every page of ListKeys at `limit`, checking the Truncated/NextMarker pairing on the way.
fn all_key_ids(kms: &Kms, limit: Option<u32>) -> Vec<String> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = list_keys(kms, limit, marker.take());
        assert!(page.keys.len() <= limit.unwrap_or(100) as usize);
        out.extend(page.keys.into_iter().map(|k| k.key_id));
        assert_eq!(page.truncated, page.next_marker.is_some());
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => return out,
        }
    }
}

fn alias_page(kms: &Kms, key_id: Option<&str>, marker: Option<String>) -> ListAliasesResponse {
    kms.list_aliases(&ListRequest {
        key_id: key_id.map(str::to_owned),
        limit: Some(3),
        marker,
    })
    .unwrap()
}

fn create_alias(kms: &Kms, name: &str, key_id: &str) {
    kms.create_alias(&AliasRequest {
        alias_name: name.into(),
        target_key_id: key_id.into(),
    })
    .unwrap();
}

fn delete_alias(kms: &Kms, name: &str) {
    kms.delete_alias(&DeleteAliasRequest {
        alias_name: name.into(),
    })
    .unwrap();
}

#[test]
fn full_listing_of_2500_keys_returns_every_key_once_in_order_at_every_limit() {
    let (kms, _clock) = kms();
    let mut ids: Vec<String> = (0..2500).map(|_| create_key(&kms, None)).collect();
    ids.sort();
    for limit in [Some(1), Some(7), None, Some(999), Some(1000)] {
        assert_eq!(all_key_ids(&kms, limit), ids, "limit {limit:?}");
    }
    let arns: Vec<String> = list_keys(&kms, Some(3), None)
        .keys
        .into_iter()
        .map(|k| k.key_arn)
        .collect();
    let described: Vec<String> = ids[..3].iter().map(|k| describe_key(&kms, k).arn).collect();
    assert_eq!(arns, described, "each entry carries its key's ARN");
}

#[test]
fn key_markers_stay_valid_across_interleaved_creates_and_deletes() {
    let (kms, clock) = kms();
    let mut ids: BTreeSet<String> = (0..120).map(|_| create_key(&kms, None)).collect();
    // Half the keys are scheduled for deletion now; they disappear while the listing runs.
    let doomed: BTreeSet<String> = ids.iter().step_by(2).cloned().collect();
    for k in &doomed {
        schedule_deletion(&kms, k);
    }
    let mut seen = Vec::new();
    let mut marker = None;
    let mut created = BTreeSet::new();
    for round in 0.. {
        let page = list_keys(&kms, Some(9), marker.take());
        seen.extend(page.keys.into_iter().map(|k| k.key_id));
        // Between two pages: a key is created and a key is deleted.
        created.insert(create_key(&kms, None));
        if round == 2 {
            clock.advance_days(7);
        }
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in order and never repeated"
    );
    let seen: BTreeSet<String> = seen.into_iter().collect();
    ids.retain(|k| !doomed.contains(k));
    assert!(!ids.is_empty());
    assert!(
        ids.is_subset(&seen),
        "every key that existed throughout is listed: missing {:?}",
        ids.difference(&seen).collect::<Vec<_>>()
    );
    let extra: Vec<&String> = seen
        .difference(&ids)
        .filter(|k| !doomed.contains(*k) && !created.contains(*k))
        .collect();
    assert!(extra.is_empty(), "nothing else is listed: {extra:?}");
}

#[test]
fn a_key_marker_whose_key_was_deleted_resumes_after_it() {
    let (kms, clock) = kms();
    let mut ids: Vec<String> = (0..10).map(|_| create_key(&kms, None)).collect();
    ids.sort();
    let first = list_keys(&kms, Some(4), None);
    let last_listed = first.keys.last().unwrap().key_id.clone();
    assert_eq!(last_listed, ids[3]);
    schedule_deletion(&kms, &last_listed);
    clock.advance_days(7);
    assert_aws(
        kms.describe_key(&key_req(&last_listed)),
        ErrorKind::NotFoundException,
    );
    let next = list_keys(&kms, Some(4), first.next_marker);
    let next: Vec<String> = next.keys.into_iter().map(|k| k.key_id).collect();
    assert_eq!(next, ids[4..8].to_vec());
}

#[test]
fn alias_markers_survive_deleting_the_marked_alias_and_writes_between_pages() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let other = create_key(&kms, None);
    for i in 0..10 {
        create_alias(&kms, &format!("alias/a{i:02}"), &key);
        create_alias(&kms, &format!("alias/b{i:02}"), &other);
    }
    for only in [None, Some(key.as_str())] {
        let first = alias_page(&kms, only, None);
        let names: Vec<&str> = first
            .aliases
            .iter()
            .map(|a| a.alias_name.as_str())
            .collect();
        assert_eq!(names, ["alias/a00", "alias/a01", "alias/a02"]);
        // The marked alias goes, one before it comes and one after it comes.
        delete_alias(&kms, "alias/a02");
        create_alias(&kms, "alias/a015", &key);
        create_alias(&kms, "alias/a025", &key);
        let next = alias_page(&kms, only, first.next_marker.clone());
        let names: Vec<&str> = next.aliases.iter().map(|a| a.alias_name.as_str()).collect();
        assert_eq!(names, ["alias/a025", "alias/a03", "alias/a04"]);
        delete_alias(&kms, "alias/a015");
        delete_alias(&kms, "alias/a025");
        create_alias(&kms, "alias/a02", &key);
    }
    // The per-key listing ends with that key's last alias, not at the next key's first one.
    let mut marker = None;
    let mut names = Vec::new();
    loop {
        let page = alias_page(&kms, Some(&key), marker.take());
        assert_eq!(page.truncated, page.next_marker.is_some());
        names.extend(page.aliases.into_iter().map(|a| {
            assert_eq!(a.target_key_id, key);
            a.alias_name
        }));
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("alias/a{i:02}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn aliases_listed_by_key_follow_re_pointing_and_key_deletion() {
    let (kms, clock) = kms();
    let a = create_key(&kms, None);
    let b = create_key(&kms, None);
    create_alias(&kms, "alias/one", &a);
    create_alias(&kms, "alias/two", &a);
    kms.update_alias(&AliasRequest {
        alias_name: "alias/one".into(),
        target_key_id: b.clone(),
    })
    .unwrap();
    let names = |key: &str| -> Vec<String> {
        alias_page(&kms, Some(key), None)
            .aliases
            .into_iter()
            .map(|a| a.alias_name)
            .collect()
    };
    assert_eq!(names(&a), ["alias/two"]);
    assert_eq!(names(&b), ["alias/one"]);
    schedule_deletion(&kms, &a);
    clock.advance_days(7);
    assert_eq!(names(&b), ["alias/one"]);
    let all: Vec<String> = alias_page(&kms, None, None)
        .aliases
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    assert_eq!(all, ["alias/one"]);
}

#[test]
fn foreign_forged_or_garbage_markers_and_bad_limits_are_refused_as_aws_does() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    create_key(&kms, None);
    for i in 0..4 {
        create_alias(&kms, &format!("alias/x{i}"), &key);
    }
    kms.tag_resource(&TagResourceRequest {
        key_id: key.clone(),
        tags: (0..3)
            .map(|i| Tag {
                tag_key: format!("t{i}"),
                tag_value: String::new(),
            })
            .collect(),
    })
    .unwrap();
    let alias_marker = alias_page(&kms, None, None).next_marker.unwrap();
    let key_marker = list_keys(&kms, Some(1), None).next_marker.unwrap();
    let tag_marker = kms
        .list_resource_tags(&ListRequest {
            key_id: Some(key.clone()),
            limit: Some(1),
            marker: None,
        })
        .unwrap()
        .next_marker
        .unwrap();
    // base64url of "keys\nnot-a-key-id": the right list, but no key id after it.
    let forged = "a2V5cwpub3QtYS1rZXktaWQ";
    let invalid = |m: &str| format!("The marker {m} is not valid for this request");
    for m in [alias_marker.as_str(), tag_marker.as_str(), forged, "!!!"] {
        let e = assert_aws(
            kms.list_keys(&ListRequest {
                marker: Some(m.into()),
                ..Default::default()
            }),
            ErrorKind::InvalidMarkerException,
        );
        assert_eq!(e.message(), invalid(m));
    }
    for m in [key_marker.as_str(), tag_marker.as_str()] {
        let e = assert_aws(
            kms.list_aliases(&ListRequest {
                marker: Some(m.into()),
                ..Default::default()
            }),
            ErrorKind::InvalidMarkerException,
        );
        assert_eq!(e.message(), invalid(m));
    }
    for m in [key_marker.as_str(), alias_marker.as_str()] {
        let e = assert_aws(
            kms.list_resource_tags(&ListRequest {
                key_id: Some(key.clone()),
                marker: Some(m.into()),
                ..Default::default()
            }),
            ErrorKind::InvalidMarkerException,
        );
        assert_eq!(e.message(), invalid(m));
    }
    let e = assert_aws(
        kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
            marker: Some(key_marker.clone()),
            ..Default::default()
        }),
        ErrorKind::InvalidMarkerException,
    );
    assert_eq!(e.message(), invalid(&key_marker));
    let e = assert_aws(
        kms.list_keys(&ListRequest {
            marker: Some(String::new()),
            ..Default::default()
        }),
        ErrorKind::ValidationException,
    );
    assert!(e
        .message()
        .contains("at 'marker' failed to satisfy constraint"));
    for (limit, constraint) in [
        (0, "Member must have value greater than or equal to 1"),
        (1001, "Member must have value less than or equal to 1000"),
    ] {
        let e = assert_aws(
            kms.list_keys(&ListRequest {
                limit: Some(limit),
                ..Default::default()
            }),
            ErrorKind::ValidationException,
        );
        assert_eq!(
            e.message(),
            format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy \
                 constraint: {constraint}"
            )
        );
    }
    assert_aws(
        kms.list_aliases(&ListRequest {
            limit: Some(101),
            ..Default::default()
        }),
        ErrorKind::ValidationException,
    );
}

/// Prints how long a full ListKeys takes at the default limit over `KMSCKS_LIST_KEYS_N` keys
/// (100,000 by default). Run it in release: `cargo test --release --test list_paging --
/// --ignored full_list_keys_timing --nocapture`.
#[test]
#[ignore = "a measurement, not a check: minutes to create the keys"]
fn full_list_keys_timing() {
    let n: usize = std::env::var("KMSCKS_LIST_KEYS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (kms, _clock) = kms();
    let started = Instant::now();
    for _ in 0..n {
        create_key(&kms, None);
    }
    eprintln!("created {n} keys in {:?}", started.elapsed());
    for limit in [None, Some(1000)] {
        let started = Instant::now();
        let listed = all_key_ids(&kms, limit).len();
        let took = started.elapsed();
        assert_eq!(listed, n);
        eprintln!("full ListKeys of {n} keys at limit {limit:?}: {took:?}");
    }
}

#[test]
fn aliases_listed_by_key_after_a_reopen_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, clock) = config();
    config.compact_after_bytes = 1; // a compaction is due after every write
    let (a, b) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let a = create_key(&kms, None);
        let b = create_key(&kms, None);
        create_alias(&kms, "alias/a1", &a);
        create_alias(&kms, "alias/b1", &b);
        create_alias(&kms, "alias/a2", &a);
        // Dropping the instance would cancel the compaction in flight.
        kms.wait_for_compaction().unwrap();
        (a, b)
    };
    let kms = Kms::open_with(dir.path(), config).unwrap();
    let names = |key: &str| -> Vec<String> {
        alias_page(&kms, Some(key), None)
            .aliases
            .into_iter()
            .map(|a| a.alias_name)
            .collect()
    };
    assert_eq!(names(&a), ["alias/a1", "alias/a2"]);
    assert_eq!(names(&b), ["alias/b1"]);
    schedule_deletion(&kms, &a);
    clock.advance_days(7);
    assert_eq!(names(&b), ["alias/b1"]);
    let all: Vec<String> = alias_page(&kms, None, None)
        .aliases
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    assert_eq!(
        all,
        ["alias/b1"],
        "the reopened key's deletion took its aliases"
    );
}
