//! Durability of the control plane through `Kms::open`: restart, compaction, resumed
//! connections, crashes (a child process killed with SIGKILL), damaged files, the directory
//! lock, and secrets at rest.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use common::*;
use kmscks::api::hsm::{DescribeClustersRequest, Fault};
use kmscks::api::kms::*;
use kmscks::control::keyring::MASTER_KEY;
use kmscks::control::Keyring;
use kmscks::control::State;
use kmscks::crypto::wrap;
use kmscks::hsm::model::KeyObject;
use kmscks::kms::keys::default_material_aad;
use kmscks::kms::model::{Backing, Lifecycle};
use kmscks::store::auth::TAG_LEN;
use kmscks::store::compaction::Step;
use kmscks::store::journal::{JOURNAL_HEADER_LEN, RECORD_HEADER_LEN};
use kmscks::store::keyfile::{self, KeyFileOptions, PASSPHRASE_ENV};
use kmscks::store::snapshot::SNAPSHOT_HEADER_LEN;
use kmscks::types::{ConnectionState, KeyId, KeyState, SystemClock};
use kmscks::{ErrorKind, Kms, KmsConfig};

/// Env var naming the data directory a child test works in.
const CHILD_DIR_ENV: &str = "KMSCKS_TEST_CHILD_DIR";
/// Env var naming what the passphrase child does.
const CHILD_ACTION_ENV: &str = "KMSCKS_TEST_CHILD_ACTION";
/// Prefix of the lines a child prints for the parent (libtest prints its own lines too).
const LINE: &str = "KMSCKS-CHILD ";

const CUSTOM_POLICY: &str = r#"{"Version":"2012-10-17","Id":"custom-policy","Statement":[{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},{"Sid":"Reader","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/reader"},"Action":"kms:DescribeKey","Resource":"*"}]}"#;

/// Held for writing while this process spawns a child, for reading while it opens a data
/// directory. Between fork and exec a child holds a copy of every descriptor of this process,
/// the LOCK of another test's instance included (flock locks follow the open file, and
/// close-on-exec only closes it at exec): an instance dropped during a spawn would stay
/// locked until the child has closed its copies. That is later than `spawn` returning: the
/// kernel resumes a vfork parent when the child replaces its memory, just before it closes
/// its close-on-exec descriptors. So the write lock is held until the child shows it is past
/// exec (it printed a line, or exited) — see [`Spawned`].
static SPAWN: RwLock<()> = RwLock::new(());

fn try_open(dir: &Path, config: &KmsConfig) -> kmscks::Result<Kms> {
    let _no_spawn = SPAWN.read().unwrap_or_else(|p| p.into_inner());
    Kms::open_with(dir, config.clone())
}

fn open(dir: &Path, config: &KmsConfig) -> Kms {
    try_open(dir, config).unwrap()
}

/// A child just spawned, and the [`SPAWN`] write lock, held until the caller has seen the
/// child past exec (dropping the guard then lets data directories be opened again).
struct Spawned {
    child: std::process::Child,
    past_exec: std::sync::RwLockWriteGuard<'static, ()>,
}

fn spawn(cmd: &mut Command) -> Spawned {
    let past_exec = SPAWN.write().unwrap_or_else(|p| p.into_inner());
    Spawned {
        child: cmd.spawn().unwrap(),
        past_exec,
    }
}

fn id_req(store_id: &str) -> CustomKeyStoreIdRequest {
    CustomKeyStoreIdRequest {
        custom_key_store_id: store_id.into(),
    }
}

fn tag(kms: &Kms, key_id: &str, k: &str, v: &str) {
    kms.tag_resource(&TagResourceRequest {
        key_id: key_id.into(),
        tags: vec![Tag {
            tag_key: k.into(),
            tag_value: v.into(),
        }],
    })
    .unwrap();
}

fn alias(kms: &Kms, name: &str, key_id: &str) {
    kms.create_alias(&AliasRequest {
        alias_name: name.into(),
        target_key_id: key_id.into(),
    })
    .unwrap();
}

fn schedule(kms: &Kms, key_id: &str, days: u32) {
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key_id.into(),
        pending_window_in_days: Some(days),
    })
    .unwrap();
}

/// What `populate` made.
struct Populated {
    clusters: Vec<String>,
    stores: Vec<String>,
}

/// Fills an instance with one of everything: three clusters (one backed up), a connected, a
/// disconnected and a FAILED store, default and store keys in every state, aliases, tags and
/// a custom key policy.
fn populate(kms: &Kms, clock: &impl TestClock) -> Populated {
    let connected = connected_store(kms, clock, "Connected");
    let gone = connected_store(kms, clock, "Disconnected");
    let failing = connected_store(kms, clock, "Failing");
    kms.create_backup(&connected.cluster.cluster_id).unwrap();

    // Tags and aliases first: keys pending deletion or unavailable refuse them.
    let mut keys = Vec::new();
    for store in [None, Some(connected.store_id.as_str())] {
        keys.extend((0..3).map(|_| create_key(kms, store)));
    }
    for store in [&gone.store_id, &gone.store_id, &failing.store_id] {
        keys.push(create_key(kms, Some(store)));
    }
    for (i, k) in keys.iter().enumerate() {
        tag(kms, k, "Index", &i.to_string());
        alias(kms, &format!("alias/key-{i}"), k);
    }
    // Per store: enabled, disabled, pending deletion.
    for base in [0, 3] {
        kms.disable_key(&key_req(&keys[base + 1])).unwrap();
        schedule(kms, &keys[base + 2], 7);
    }
    // Keys of the disconnected and the failed store are UNAVAILABLE (one pending deletion).
    schedule(kms, &keys[7], 30);
    disconnect(kms, clock, &gone.store_id);
    disconnect(kms, clock, &failing.store_id);
    kms.inject_fault(&failing.cluster.cluster_id, &Fault::NetworkDown)
        .unwrap();
    let failed = connect(kms, clock, &failing.store_id);
    assert_eq!(failed.connection_state, ConnectionState::Failed);
    assert!(failed.connection_error_code.is_some());

    tag(kms, &keys[0], "Project", "durability");
    kms.update_key_description(&UpdateKeyDescriptionRequest {
        key_id: keys[1].clone(),
        description: "described".into(),
    })
    .unwrap();
    kms.put_key_policy(&PutKeyPolicyRequest {
        key_id: keys[0].clone(),
        policy_name: None,
        policy: CUSTOM_POLICY.into(),
        bypass_policy_lockout_safety_check: false,
    })
    .unwrap();
    assert_eq!(describe_key(kms, &keys[0]).key_state, KeyState::Enabled);
    assert_eq!(describe_key(kms, &keys[4]).key_state, KeyState::Disabled);
    assert_eq!(
        describe_key(kms, &keys[5]).key_state,
        KeyState::PendingDeletion
    );
    assert_eq!(describe_key(kms, &keys[6]).key_state, KeyState::Unavailable);
    assert_eq!(
        describe_key(kms, &keys[7]).key_state,
        KeyState::PendingDeletion
    );
    assert_eq!(describe_key(kms, &keys[8]).key_state, KeyState::Unavailable);
    Populated {
        clusters: [connected, gone, failing]
            .into_iter()
            .map(|s| s.cluster.cluster_id)
            .collect(),
        stores: Vec::new(),
    }
}

/// Every Describe*/List* output, as JSON text.
fn outputs(kms: &Kms, p: &Populated) -> String {
    let mut all = serde_json::Map::new();
    let mut put = |name: String, v: serde_json::Value| {
        assert!(all.insert(name, v).is_none());
    };
    let j = |v: &dyn erased::Ser| v.json();
    put(
        "DescribeCustomKeyStores".into(),
        j(&kms
            .describe_custom_key_stores(&DescribeCustomKeyStoresRequest::default())
            .unwrap()),
    );
    for s in &p.stores {
        put(
            format!("DescribeCustomKeyStores/{s}"),
            j(&describe_store(kms, s)),
        );
    }
    put(
        "DescribeClusters".into(),
        j(&kms
            .describe_clusters(&DescribeClustersRequest::default())
            .unwrap()),
    );
    put(
        "DescribeBackups".into(),
        j(&kms.describe_backups(&Default::default()).unwrap().backups),
    );
    for c in &p.clusters {
        put(format!("ListUsers/{c}"), j(&kms.list_hsm_users(c).unwrap()));
        put(
            format!("ListKeyObjects/{c}"),
            j(&kms.list_key_objects(c).unwrap()),
        );
        put(
            format!("AuditLog/{c}"),
            j(&kms.hsm_audit_log(c, None).unwrap()),
        );
    }
    let keys = kms.list_keys(&ListRequest::default()).unwrap();
    assert!(!keys.truncated);
    put("ListKeys".into(), j(&keys));
    for k in &keys.keys {
        let id = &k.key_id;
        let for_key = ListRequest {
            key_id: Some(id.clone()),
            ..Default::default()
        };
        put(
            format!("DescribeKey/{id}"),
            j(&kms.describe_key(&key_req(id)).unwrap()),
        );
        put(
            format!("ListResourceTags/{id}"),
            j(&kms.list_resource_tags(&for_key).unwrap()),
        );
        put(
            format!("ListAliases/{id}"),
            j(&kms.list_aliases(&for_key).unwrap()),
        );
        put(
            format!("ListKeyPolicies/{id}"),
            j(&kms.list_key_policies(&for_key).unwrap()),
        );
        put(
            format!("GetKeyPolicy/{id}"),
            j(&kms
                .get_key_policy(&GetKeyPolicyRequest {
                    key_id: id.clone(),
                    policy_name: None,
                })
                .unwrap()),
        );
        put(
            format!("GetKeyRotationStatus/{id}"),
            match kms.get_key_rotation_status(&key_req(id)) {
                Ok(r) => j(&r),
                Err(e) => serde_json::json!({"error": e.kind().aws_name()}),
            },
        );
    }
    put(
        "ListAliases".into(),
        j(&kms.list_aliases(&ListRequest::default()).unwrap()),
    );
    put("KmsEvents".into(), j(&kms.kms_events().unwrap()));
    serde_json::to_string_pretty(&serde_json::Value::Object(all)).unwrap()
}

/// `&dyn Serialize` is not object safe; this tiny shim is.
mod erased {
    pub(crate) trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn generation_on_disk(dir: &Path) -> u64 {
    file_names(dir)
        .iter()
        .filter_map(|n| {
            n.strip_prefix("snapshot-")?
                .strip_suffix(".bin")?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// Populates, records, and checks that reopening (several times) gives byte-identical output.
fn restart_round_trip(compact_after_bytes: u64) -> (tempfile::TempDir, u64) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (mut config, clock) = config();
    config.compact_after_bytes = compact_after_bytes;
    let kms = open(&dir, &config);
    let mut p = populate(&kms, &clock);
    p.stores = kms
        .describe_custom_key_stores(&DescribeCustomKeyStoresRequest::default())
        .unwrap()
        .custom_key_stores
        .into_iter()
        .map(|s| s.custom_key_store_id)
        .collect();
    assert_eq!(p.stores.len(), 3);
    let before = outputs(&kms, &p);
    let state = kms.state_snapshot();
    // Dropping the instance would cancel a compaction in flight, and with it the generation
    // the caller counts.
    kms.wait_for_compaction().unwrap();
    drop(kms);
    let generation = generation_on_disk(&dir);
    for round in 0..3 {
        let kms = open(&dir, &config);
        assert_eq!(outputs(&kms, &p), before, "round {round}");
        assert!(
            kms.state_snapshot() == state,
            "state differs in round {round}"
        );
    }
    // Writing after a restart is durable too.
    let kms = open(&dir, &config);
    let extra = create_key(&kms, None);
    tag(&kms, &extra, "After", "restart");
    let after = outputs(&kms, &p);
    assert_ne!(after, before);
    drop(kms);
    let kms = open(&dir, &config);
    assert_eq!(outputs(&kms, &p), after);
    (t, generation)
}

#[test]
fn restart_gives_back_every_description_byte_for_byte() {
    let (t, generation) = restart_round_trip(8 << 20);
    // Only the snapshot written at creation (it records the account and Region).
    assert_eq!(generation, 1, "nothing should have been compacted by size");
    assert!(t.path().join("data/journal-1.log").exists());
}

#[test]
fn restart_across_compactions_gives_back_every_description() {
    let (t, generation) = restart_round_trip(4096);
    assert!(
        generation > 1,
        "expected several compactions, got {generation}"
    );
    let names = file_names(&t.path().join("data"));
    // Only the current generation is left.
    let current = generation_on_disk(&t.path().join("data"));
    assert!(
        names.contains(&format!("snapshot-{current}.bin")),
        "{names:?}"
    );
    assert!(
        names.contains(&format!("journal-{current}.log")),
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with("snapshot-")).count(),
        1,
        "{names:?}"
    );
}

#[test]
fn connecting_and_disconnecting_stores_resume_on_reopen() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (mut config, clock) = config();
    let kms = open(&dir, &config);
    let a = connected_store(&kms, &clock, "WillConnect");
    let b = connected_store(&kms, &clock, "WillDisconnect");
    disconnect(&kms, &clock, &a.store_id);
    drop(kms);

    // A connect delay far longer than the test: only the resume on reopen completes them.
    config.connect_delay = Duration::from_secs(3600);
    let kms = open(&dir, &config);
    kms.connect_custom_key_store(&id_req(&a.store_id)).unwrap();
    kms.disconnect_custom_key_store(&id_req(&b.store_id))
        .unwrap();
    assert_eq!(
        connection_state(&kms, &a.store_id),
        ConnectionState::Connecting
    );
    assert_eq!(
        connection_state(&kms, &b.store_id),
        ConnectionState::Disconnecting
    );
    drop(kms);

    let kms = open(&dir, &config);
    let a_now = kms
        .wait_for_connection(&a.store_id, Duration::from_secs(30))
        .unwrap();
    assert_eq!(a_now.connection_state, ConnectionState::Connected);
    let b_now = kms
        .wait_for_connection(&b.store_id, Duration::from_secs(30))
        .unwrap();
    assert_eq!(b_now.connection_state, ConnectionState::Disconnected);
    // And the completion itself was made durable.
    drop(kms);
    let kms = open(&dir, &config);
    assert_eq!(
        connection_state(&kms, &a.store_id),
        ConnectionState::Connected
    );
    assert_eq!(
        connection_state(&kms, &b.store_id),
        ConnectionState::Disconnected
    );
    let key = create_key(&kms, Some(&a.store_id));
    assert_eq!(describe_key(&kms, &key).key_state, KeyState::Enabled);
}

#[test]
fn second_open_is_refused_until_the_first_instance_is_dropped() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (mut config, clock) = config();
    // A pending connection keeps the background worker busy waiting; it must still let go.
    config.connect_delay = Duration::from_secs(3600);
    let fast = KmsConfig {
        connect_delay: Duration::from_millis(5),
        ..config.clone()
    };
    let kms = open(&dir, &fast);
    let f = connected_store(&kms, &clock, "Locked");
    disconnect(&kms, &clock, &f.store_id);
    drop(kms);
    let kms = open(&dir, &config);
    kms.connect_custom_key_store(&id_req(&f.store_id)).unwrap();
    let e = assert_aws(try_open(&dir, &config), ErrorKind::StoreInUseException);
    assert!(
        e.message()
            .contains(&format!("data directory {} is in use", dir.display())),
        "{e}"
    );
    assert_aws(
        try_open(&dir, &KmsConfig::default()),
        ErrorKind::StoreInUseException,
    );
    // A clone keeps the instance (and the lock) alive.
    let clone = kms.acting_as("arn:aws:iam::111122223333:user/someone");
    drop(kms);
    assert_aws(try_open(&dir, &config), ErrorKind::StoreInUseException);
    drop(clone);
    // The last handle is gone: the worker is joined and the lock released at once.
    let kms = open(&dir, &config);
    assert_eq!(
        kms.wait_for_connection(&f.store_id, Duration::from_secs(30))
            .unwrap()
            .connection_state,
        ConnectionState::Connected
    );
}

// ---- Compaction off the commit path --------------------------------------------------------

#[test]
fn writes_commit_while_a_compaction_is_in_flight_and_reopen_gives_the_same_state() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (mut config, _clock) = config();
    config.compact_after_bytes = 1; // due as soon as the journal outgrows the snapshot
    let kms = open(&dir, &config);
    // The job says when it starts, then waits for the test's word before it reads anything.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    kms.set_compaction_hook(Some(Arc::new(move |step| {
        if step == Step::Build {
            let _ = started_tx.send(());
            let _ = release_rx.lock().unwrap().recv();
        }
        true
    })));
    let stats = |kms: &Kms| kms.compaction_stats().unwrap();
    // One compaction so far: the snapshot written when the directory was created.
    assert_eq!(stats(&kms).started, 1);
    let mut keys = Vec::new();
    while stats(&kms).started < 2 {
        keys.push(create_key(&kms, None));
        assert!(keys.len() < 1000, "no compaction started");
    }
    started_rx.recv().unwrap();
    // The job is held. Writes commit meanwhile, on another thread so that a commit waiting for
    // the job fails the test instead of hanging it.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = {
        let kms = kms.clone();
        std::thread::spawn(move || {
            let key = create_key(&kms, None);
            tag(&kms, &key, "Written", "during compaction");
            alias(&kms, "alias/during", &key);
            done_tx.send(key).unwrap();
        })
    };
    let during = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a write waited for the compaction in flight");
    writer.join().unwrap();
    // The triggers those writes met were deferred, not queued behind the job.
    assert_eq!((stats(&kms).started, stats(&kms).completed), (2, 1));
    let state = kms.state_snapshot();
    release_tx.send(()).unwrap();
    kms.wait_for_compaction().unwrap();
    kms.set_compaction_hook(None);
    assert_eq!((stats(&kms).completed, stats(&kms).failed), (2, 0));
    drop(kms);
    // The new snapshot holds the keys written before the rotation; the writes made during the
    // compaction are in the journal after it.
    let g = generation_on_disk(&dir);
    assert_eq!(
        file_names(&dir)
            .into_iter()
            .filter(|n| n.ends_with(".bin") || n.ends_with(".log"))
            .collect::<Vec<_>>(),
        [format!("journal-{g}.log"), format!("snapshot-{g}.bin")]
    );
    {
        let _no_spawn = SPAWN.read().unwrap_or_else(|p| p.into_inner());
        let (_keys, _disk, recovered) =
            Keyring::open_data_dir(&dir, KeyFileOptions::default()).unwrap();
        assert_eq!(
            recovered.records.len(),
            3,
            "CreateKey, TagResource, CreateAlias"
        );
    }
    let kms = open(&dir, &config);
    assert!(kms.state_snapshot() == state, "reopened state differs");
    assert_eq!(describe_key(&kms, &during).key_state, KeyState::Enabled);
    assert_eq!(
        kms.list_resource_tags(&ListRequest {
            key_id: Some(during.clone()),
            ..Default::default()
        })
        .unwrap()
        .tags
        .len(),
        1
    );
}

#[test]
fn a_compaction_stopped_at_any_step_leaves_a_directory_that_reopens_to_the_same_state() {
    for stop_at in [Step::Build, Step::WroteTemp, Step::Renamed, Step::Removed] {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("data");
        let (mut config, _clock) = config();
        config.compact_after_bytes = 1;
        let kms = open(&dir, &config);
        // The job waits for the test's word before it reads anything, then stops where a
        // crash would stop it; the instance is then dropped as if dead.
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        kms.set_compaction_hook(Some(Arc::new(move |step| {
            if step == Step::Build {
                let _ = go_rx.lock().unwrap().recv();
            }
            step != stop_at
        })));
        let mut keys = Vec::new();
        while kms.compaction_stats().unwrap().started < 2 {
            keys.push(create_key(&kms, None));
            assert!(keys.len() < 1000, "no compaction started");
        }
        // Written after the rotation, while the job is in flight (so no second one starts).
        tag(&kms, &keys[0], "After", "rotation");
        go_tx.send(()).unwrap();
        let _ = kms.wait_for_compaction();
        let state = kms.state_snapshot();
        drop(kms);
        let left = file_names(&dir);
        let count = |suffix: &str| left.iter().filter(|n| n.ends_with(suffix)).count();
        let expected = match stop_at {
            Step::Build => (1, 0, 2),
            Step::WroteTemp => (1, 1, 2),
            Step::Renamed => (2, 0, 2),
            Step::Removed => (1, 0, 2),
        };
        assert_eq!(
            (count(".bin"), count(".tmp"), count(".log")),
            expected,
            "what a crash at {stop_at:?} leaves: {left:?}"
        );
        let kms = open(&dir, &config);
        assert!(kms.state_snapshot() == state, "stopped at {stop_at:?}");
        // And the reopened instance compacts everything on its next trigger.
        kms.set_compaction_hook(None);
        let before = kms.compaction_stats().unwrap().completed;
        while kms.compaction_stats().unwrap().started < 1 {
            create_key(&kms, None);
        }
        kms.wait_for_compaction().unwrap();
        assert_eq!(kms.compaction_stats().unwrap().completed, before + 1);
        let state = kms.state_snapshot();
        drop(kms);
        assert!(open(&dir, &config).state_snapshot() == state, "{stop_at:?}");
    }
}

// ---- Damage ---------------------------------------------------------------------------------

/// The newest journal: the one appended to.
fn current_journal(dir: &Path) -> PathBuf {
    let newest = file_names(dir)
        .iter()
        .filter_map(|n| {
            n.strip_prefix("journal-")?
                .strip_suffix(".log")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    dir.join(format!("journal-{newest}.log"))
}

/// Start offsets of the journal's frames.
fn frame_starts(journal: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = JOURNAL_HEADER_LEN;
    while pos < journal.len() {
        starts.push(pos);
        let len = u32::from_le_bytes(journal[pos + 4..pos + 8].try_into().unwrap()) as usize;
        pos += RECORD_HEADER_LEN + len + TAG_LEN;
    }
    assert_eq!(
        pos,
        journal.len(),
        "journal does not end on a frame boundary"
    );
    starts
}

/// A small populated data directory without compaction; returns it and the state before and
/// after the last write (a tag).
fn small_dir(dir: &Path, config: &KmsConfig) -> (State, State) {
    let kms = open(dir, config);
    let a = create_key(&kms, None);
    let b = create_key(&kms, None);
    alias(&kms, "alias/a", &a);
    kms.disable_key(&key_req(&b)).unwrap();
    let before_last = kms.state_snapshot();
    tag(&kms, &a, "Last", "write");
    let after = kms.state_snapshot();
    (before_last, after)
}

#[test]
fn flipped_byte_inside_the_journal_names_file_and_offset() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, _clock) = config();
    small_dir(&dir, &config);
    let path = current_journal(&dir);
    let good = fs::read(&path).unwrap();
    let starts = frame_starts(&good);
    assert!(starts.len() >= 4, "{starts:?}");
    // Damage the payload, then the header, of every frame that has a valid frame after it.
    for (i, &start) in starts[..starts.len() - 1].iter().enumerate() {
        let end = starts[i + 1];
        for at in [(start + RECORD_HEADER_LEN + end) / 2, start + 5] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            let e = assert_aws(try_open(&dir, &config), ErrorKind::StorageException);
            let msg = e.message();
            assert!(
                msg.contains(&format!("{} damaged at offset {start}", path.display())),
                "frame {i} byte {at}: {msg}"
            );
        }
    }
    // The damage is reported, not repaired: the good file opens as before.
    fs::write(&path, &good).unwrap();
    open(&dir, &config);
}

/// The offset of the only occurrence of `needle` in `hay` at or after `from`.
fn find_once(hay: &[u8], needle: &[u8], from: usize) -> usize {
    let found: Vec<usize> = (from..=hay.len() - needle.len())
        .filter(|&i| &hay[i..i + needle.len()] == needle)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{:?} found at {found:?}",
        String::from_utf8_lossy(needle)
    );
    found[0]
}

#[test]
fn an_offline_edit_of_a_journal_record_with_its_crc_recomputed_is_damage_naming_file_and_offset() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, _clock) = config();
    small_dir(&dir, &config);
    let path = current_journal(&dir);
    let good = fs::read(&path).unwrap();
    let last = *frame_starts(&good).last().unwrap();
    // The last record tags a key "Last" = "write": an editor changes the value and fixes the
    // frame's two CRC32s, as anyone who can write the file could.
    let mut bad = good.clone();
    let at = find_once(&bad, b"write", last);
    bad[at..at + 5].copy_from_slice(b"wrote");
    let len = u32::from_le_bytes(bad[last + 4..last + 8].try_into().unwrap()) as usize;
    let body = last + RECORD_HEADER_LEN;
    let crc = crc32fast::hash(&bad[body..body + len + TAG_LEN]);
    bad[last + 8..last + 12].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bad[last..last + 12]);
    bad[last + 12..last + 16].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bad).unwrap();
    let e = assert_aws(try_open(&dir, &config), ErrorKind::StorageException);
    assert!(
        e.message().contains(&format!(
            "journal {} damaged at offset {last}: authentication tag mismatch",
            path.display()
        )),
        "{e}"
    );
    // Reported, not repaired or truncated away (it is the last frame, yet not torn).
    assert_eq!(fs::read(&path).unwrap(), bad);
    fs::write(&path, &good).unwrap();
    open(&dir, &config);
}

#[test]
fn an_offline_edit_of_a_snapshot_with_its_crc_recomputed_is_damage_naming_file_and_offset() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, _clock) = config();
    small_dir(&dir, &config);
    let path = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "bin"))
        .expect("a snapshot");
    let good = fs::read(&path).unwrap();
    // The snapshot names the account: an editor changes it and fixes both CRC32s.
    let mut bad = good.clone();
    let account = config.scope.account_id.as_bytes();
    let at = find_once(&bad, account, SNAPSHOT_HEADER_LEN);
    bad[at] = if bad[at] == b'9' { b'8' } else { b'9' };
    let crc = crc32fast::hash(&bad[SNAPSHOT_HEADER_LEN..]);
    bad[24..28].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bad[0..28]);
    bad[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bad).unwrap();
    let e = assert_aws(try_open(&dir, &config), ErrorKind::StorageException);
    assert!(
        e.message().contains(&format!(
            "snapshot {} damaged at offset 32: authentication tag mismatch",
            path.display()
        )),
        "{e}"
    );
    fs::write(&path, &good).unwrap();
    open(&dir, &config);
}

#[test]
fn torn_journal_tail_loses_only_the_last_record() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, _clock) = config();
    let (before_last, after) = small_dir(&dir, &config);
    let path = current_journal(&dir);
    let good = fs::read(&path).unwrap();
    let last = *frame_starts(&good).last().unwrap();
    for cut in [
        last + 1,
        last + RECORD_HEADER_LEN,
        (last + good.len()) / 2,
        good.len() - 1,
    ] {
        fs::write(&path, &good[..cut]).unwrap();
        let kms = open(&dir, &config);
        assert!(kms.state_snapshot() == before_last, "cut at {cut}");
        drop(kms);
        // The torn tail was cut away on open.
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            last as u64,
            "cut at {cut}"
        );
    }
    fs::write(&path, &good).unwrap();
    let kms = open(&dir, &config);
    assert!(kms.state_snapshot() == after);
}

#[test]
fn flipped_byte_inside_a_snapshot_names_file_and_offset() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (mut config, clock) = config();
    config.compact_after_bytes = 4096;
    let kms = open(&dir, &config);
    connected_store(&kms, &clock, "Snap");
    // Dropping the instance cancels a compaction in flight, which would leave only the
    // creation's snapshot, whose payload is too short to hold the state this test damages.
    kms.wait_for_compaction().unwrap();
    drop(kms);
    let g = generation_on_disk(&dir);
    assert!(
        g > 1,
        "expected a compaction's snapshot, found generation {g}"
    );
    let path = dir.join(format!("snapshot-{g}.bin"));
    let good = fs::read(&path).unwrap();
    let mut bad = good.clone();
    // A byte in the middle of the payload, past the header and its tag.
    bad[SNAPSHOT_HEADER_LEN + (good.len() - SNAPSHOT_HEADER_LEN) / 2] ^= 0x01;
    fs::write(&path, &bad).unwrap();
    let e = assert_aws(try_open(&dir, &config), ErrorKind::StorageException);
    assert!(
        e.message().contains(&format!(
            "{} damaged at offset {SNAPSHOT_HEADER_LEN}",
            path.display()
        )),
        "{e}"
    );
    // A damaged header field is located exactly.
    let mut bad = good.clone();
    bad[9] ^= 0x01; // generation
    fs::write(&path, &bad).unwrap();
    let e = assert_aws(try_open(&dir, &config), ErrorKind::StorageException);
    assert!(e.message().contains("damaged at offset"), "{e}");
    fs::write(&path, &good).unwrap();
    open(&dir, &config);
}

#[test]
fn a_used_data_directory_whose_master_key_is_missing_is_refused_and_no_key_is_minted() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, _clock) = config();
    small_dir(&dir, &config);
    let master = dir.join("keys").join(format!("{MASTER_KEY}.key"));
    fs::remove_file(&master).unwrap();
    let files = file_names(&dir);
    // A new master key could authenticate none of the journal and snapshot: they would be
    // refused as if tampered with, and the new key file would stay.
    let e = assert_aws(try_open(&dir, &config), ErrorKind::StorageException);
    let want = format!(
        "the master key {} is missing, but the data directory holds",
        master.display()
    );
    assert!(e.message().contains(&want), "{e}");
    assert!(!master.exists(), "a new master key was written");
    assert_eq!(file_names(&dir.join("keys")), Vec::<String>::new());
    assert_eq!(
        file_names(&dir),
        files,
        "a refused open changed the directory"
    );
}

#[test]
fn a_temporary_key_file_a_killed_open_left_is_removed_at_the_next_open() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, _clock) = config();
    small_dir(&dir, &config);
    let keys = dir.join("keys");
    // What a kill between creating the key file (a hard link) and removing its temporary name
    // leaves: a second name for the master key, in the clear without a passphrase.
    let left = keys.join(format!(".{MASTER_KEY}.00000000deadbeef.tmp"));
    fs::hard_link(keys.join(format!("{MASTER_KEY}.key")), &left).unwrap();
    drop(open(&dir, &config));
    assert!(!left.exists(), "the temporary copy is still there");
    assert_eq!(file_names(&keys), [format!("{MASTER_KEY}.key")]);
}

/// A damaged cluster key file closes that cluster's keys to the data plane, with the damage
/// named; it does not stop the open, and every other key serves.
#[test]
fn a_damaged_cluster_key_file_closes_its_keys_and_the_rest_open_and_serve() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, clock) = config();
    let (in_store, default) = {
        let kms = open(&dir, &config);
        let f = connected_store(&kms, &clock, "S");
        (create_key(&kms, Some(&f.store_id)), create_key(&kms, None))
    };
    let encrypt = |kms: &Kms, key: &str| {
        kms.encrypt(&EncryptRequest {
            key_id: key.to_owned(),
            plaintext: kmscks::secret::SecretBytes::from_slice(b"x"),
            ..Default::default()
        })
    };
    let cluster_file = fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("cluster-")
        })
        .expect("the cluster's key file");
    let mut bytes = fs::read(&cluster_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&cluster_file, &bytes).unwrap();

    let kms = open(&dir, &config);
    encrypt(&kms, &default).unwrap();
    let e = encrypt(&kms, &in_store).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KMSInternalException, "{e}");
    assert!(
        e.message().contains("data plane") && e.message().contains("damaged"),
        "{e}"
    );
}

// ---- Secrets at rest ------------------------------------------------------------------------

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn hsm_password_hashes_are_not_in_the_clear_in_the_journal_and_verify_at_another_count() {
    use kmscks::api::hsm::UserRequest;
    use kmscks::secret::Password;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, _clock) = config();
    let kms = open(&dir, &config);
    let cluster = active_cluster(&kms).cluster_id;
    let alice = "aliceSecret42";
    kms.create_hsm_user(&UserRequest {
        cluster_id: cluster.clone(),
        username: "alice".into(),
        role: None,
        password: Password::new(alice),
    })
    .unwrap();
    let state = kms.state_snapshot();
    drop(kms);

    // What an unwrapped hash would be: PBKDF2 of the known password with the stored salt and
    // count. Neither it nor the password is anywhere in the directory.
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, password) in [("kmsuser", KMSUSER_PASSWORD), ("alice", alice)] {
        let u = state
            .hsm
            .users
            .iter()
            .find(|((c, n), _)| c.as_str() == cluster && n == name)
            .map(|(_, u)| u)
            .expect("the user is in the state");
        let mut hash = [0u8; 32];
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(u.password.iterations).unwrap(),
            &u.password.salt,
            password.as_bytes(),
            &mut hash,
        );
        assert_eq!(
            u.password.iterations,
            KmsConfig::TEST_HSM_PASSWORD_ITERATIONS
        );
        secrets.push((format!("{name}'s password hash"), hash.to_vec()));
        secrets.push((format!("{name}'s password"), password.as_bytes().to_vec()));
        // The search can find what is there: the wrapped form is in the journal.
        secrets.push((
            format!("!{name}'s wrapped hash"),
            u.password.wrapped.clone(),
        ));
    }
    let mut files = Vec::new();
    all_files(&dir, &mut files);
    let mut wrapped_seen = 0;
    for file in &files {
        let bytes = fs::read(file).unwrap();
        for (what, needle) in &secrets {
            let found = bytes.windows(needle.len()).any(|w| w == &needle[..]);
            if what.starts_with('!') {
                wrapped_seen += usize::from(found);
            } else {
                assert!(!found, "{what} in the clear in {}", file.display());
            }
        }
    }
    assert!(wrapped_seen >= 2, "the wrapped hashes are on disk");

    // Reopened with another iteration count (the production default), the hashes made at
    // the test count still verify, and a wrong password still does not.
    let reopened = open(
        &dir,
        &KmsConfig {
            hsm_password_iterations: kmscks::hsm::PASSWORD_ITERATIONS,
            ..config.clone()
        },
    );
    reopened
        .login_hsm_user(&cluster, "alice", &Password::new(alice))
        .unwrap();
    let e = reopened
        .login_hsm_user(&cluster, "kmsuser", &Password::new("wrongPassw0rd"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CloudHsmAccessDeniedException);
}

/// An Origin EXTERNAL key holding 32 random bytes imported with RSAES_OAEP_SHA_256.
fn import_fresh_material(kms: &Kms) -> String {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
    use kmscks::types::{ExpirationModel, Origin, WrappingAlgorithm, WrappingKeySpec};
    let key = kms
        .create_key(&CreateKeyRequest {
            origin: Some(Origin::External),
            ..Default::default()
        })
        .unwrap()
        .key_metadata
        .key_id;
    let p = kms
        .get_parameters_for_import(&GetParametersForImportRequest {
            key_id: key.clone(),
            wrapping_algorithm: Some(WrappingAlgorithm::RsaesOaepSha256),
            wrapping_key_spec: Some(WrappingKeySpec::Rsa2048),
        })
        .unwrap();
    let public =
        OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(&p.public_key).unwrap())
            .unwrap();
    let mut material = [0u8; 32];
    aws_lc_rs::rand::fill(&mut material).unwrap();
    let mut sealed = vec![0; public.ciphertext_size()];
    let n = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &material, &mut sealed, None)
        .unwrap()
        .len();
    sealed.truncate(n);
    kms.import_key_material(&ImportKeyMaterialRequest {
        key_id: key.clone(),
        import_token: p.import_token,
        encrypted_key_material: sealed,
        expiration_model: Some(ExpirationModel::KeyMaterialDoesNotExpire),
        ..Default::default()
    })
    .unwrap();
    key
}

#[test]
fn no_key_material_or_password_is_written_in_the_clear() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (mut config, clock) = config();
    config.compact_after_bytes = 4096; // snapshots too must hold no secret
    let kms = open(&dir, &config);
    let f = connected_store(&kms, &clock, "Secrets");
    let default_keys = [create_key(&kms, None), create_key(&kms, None)];
    let store_keys = [
        create_key(&kms, Some(&f.store_id)),
        create_key(&kms, Some(&f.store_id)),
    ];
    let imported = [import_fresh_material(&kms)];
    // One more write after the last compaction, so the journal holds records too.
    tag(&kms, &store_keys[1], "k", "v");
    let state = kms.state_snapshot();
    // Dropping the instance would cancel a compaction in flight; let it write its snapshot.
    kms.wait_for_compaction().unwrap();
    drop(kms);
    // Generation 1 is the creation's near-empty snapshot: a later one holds the keys.
    let g = generation_on_disk(&dir);
    assert!(
        g > 1,
        "expected a compaction's snapshot, found generation {g}"
    );

    // Unwrap every key's material with the wrapping keys on disk.
    let (_keys, datadir, _) = {
        let _no_spawn = SPAWN.read().unwrap_or_else(|p| p.into_inner());
        Keyring::open_data_dir(&dir, KeyFileOptions::default()).unwrap()
    };
    let opts = KeyFileOptions::default();
    let master = keyfile::load_key(&datadir, MASTER_KEY, &opts).unwrap();
    let mut materials = Vec::new();
    for id in default_keys.iter().chain(&store_keys).chain(&imported) {
        let key = &state.kms.keys[&KeyId::parse(id).unwrap()];
        let material = match &key.backing {
            Backing::Default { wrapped } => {
                wrap::unwrap_key(&master, &default_material_aad(&key.id), wrapped).unwrap()
            }
            Backing::External(m) => {
                let wrapped = m.wrapped.as_ref().expect("the keys here hold material");
                wrap::unwrap_key(
                    &master,
                    &kmscks::kms::import::material_aad(&key.id),
                    wrapped,
                )
                .unwrap()
            }
            Backing::CloudHsm { store, handle, .. } => {
                let cluster_id = &state.kms.stores[store].cluster_id;
                let wk = &state.hsm.clusters[cluster_id].wrapping_key;
                let object = &state.hsm.objects[&(cluster_id.clone(), *handle)];
                let kek = keyfile::load_key(&datadir, wk, &opts).unwrap();
                wrap::unwrap_key(&kek, &KeyObject::wrap_aad(wk, *handle), &object.wrapped).unwrap()
            }
        };
        materials.push(material.expose().to_vec());
    }
    drop(datadir);
    assert_eq!(materials.len(), 5);
    for (i, m) in materials.iter().enumerate() {
        assert!(materials[..i].iter().all(|o| o != m), "materials repeat");
    }

    let mut files = Vec::new();
    all_files(&dir, &mut files);
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        let bytes = fs::read(file).unwrap();
        for m in &materials {
            assert!(
                !bytes.windows(m.len()).any(|w| w == &m[..]),
                "key material in the clear in {}",
                file.display()
            );
        }
        let pw = KMSUSER_PASSWORD.as_bytes();
        assert!(
            !bytes.windows(pw.len()).any(|w| w == pw),
            "kmsuser password in the clear in {}",
            file.display()
        );
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("keys")), 0o700);
    let key_files = file_names(&dir.join("keys"));
    assert!(
        key_files.contains(&format!("{MASTER_KEY}.key")),
        "{key_files:?}"
    );
    assert_eq!(key_files.len(), 2, "{key_files:?}");
}

// ---- Child processes ------------------------------------------------------------------------

fn child(name: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR_ENV, dir)
    .env_remove(PASSPHRASE_ENV)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    cmd
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{LINE}{line}").unwrap();
    out.flush().unwrap();
}

fn child_dir() -> PathBuf {
    std::env::var_os(CHILD_DIR_ENV)
        .expect("only run by the parent test, which sets the data directory")
        .into()
}

/// A small xorshift generator: the test needs randomness, not a dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(nanos | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One step of the crash child's script. Keys are named by their description, which the
/// child chooses, so an in-flight CreateKey can be recognised after the crash.
#[derive(Clone, Debug)]
enum Op {
    Create {
        name: String,
        in_store: bool,
    },
    Tag {
        name: String,
        key: String,
        value: String,
    },
    Alias {
        alias: String,
        name: String,
    },
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    Schedule {
        name: String,
    },
}

impl Op {
    fn encode(&self) -> String {
        match self {
            Op::Create { name, in_store } => format!("create {name} {in_store}"),
            Op::Tag { name, key, value } => format!("tag {name} {key} {value}"),
            Op::Alias { alias, name } => format!("alias {alias} {name}"),
            Op::Disable { name } => format!("disable {name}"),
            Op::Enable { name } => format!("enable {name}"),
            Op::Schedule { name } => format!("schedule {name}"),
        }
    }
    fn decode(s: &str) -> Op {
        let w: Vec<&str> = s.split(' ').collect();
        let n = || w[1].to_string();
        match w[0] {
            "create" => Op::Create {
                name: n(),
                in_store: w[2] == "true",
            },
            "tag" => Op::Tag {
                name: n(),
                key: w[2].into(),
                value: w[3].into(),
            },
            "alias" => Op::Alias {
                alias: n(),
                name: w[2].into(),
            },
            "disable" => Op::Disable { name: n() },
            "enable" => Op::Enable { name: n() },
            "schedule" => Op::Schedule { name: n() },
            other => panic!("unknown op {other}"),
        }
    }
}

/// What the child's keys and aliases look like, by key name.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    /// name → (in a store, lifecycle, tags)
    keys: BTreeMap<String, (bool, &'static str, BTreeMap<String, String>)>,
    /// alias → key name
    aliases: BTreeMap<String, String>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        fn key<'m>(
            m: &'m mut Model,
            n: &str,
        ) -> &'m mut (bool, &'static str, BTreeMap<String, String>) {
            m.keys.get_mut(n).expect("op on an unknown key")
        }
        match op {
            Op::Create { name, in_store } => {
                self.keys
                    .insert(name.clone(), (*in_store, "enabled", BTreeMap::new()));
            }
            Op::Tag {
                name,
                key: k,
                value,
            } => {
                key(self, name).2.insert(k.clone(), value.clone());
            }
            Op::Alias { alias, name } => {
                self.aliases.insert(alias.clone(), name.clone());
            }
            Op::Disable { name } => key(self, name).1 = "disabled",
            Op::Enable { name } => key(self, name).1 = "enabled",
            Op::Schedule { name } => key(self, name).1 = "pending",
        }
    }

    /// The child's keys (description `crash-…`) and their aliases, as the state has them.
    fn of(state: &State) -> Model {
        let mut m = Model::default();
        let mut names = BTreeMap::new();
        for k in state.kms.keys.values() {
            if !k.description.starts_with("crash-") {
                continue;
            }
            names.insert(k.id, k.description.clone());
            let life = match k.lifecycle {
                Lifecycle::Enabled => "enabled",
                Lifecycle::Disabled => "disabled",
                Lifecycle::PendingDeletion { .. } => "pending",
            };
            let in_store = matches!(k.backing, Backing::CloudHsm { .. });
            let prev = m
                .keys
                .insert(k.description.clone(), (in_store, life, k.tags.clone()));
            assert!(prev.is_none(), "two keys named {}", k.description);
        }
        for a in state.kms.aliases.values() {
            if let Some(n) = names.get(&a.target) {
                m.aliases.insert(a.name.clone(), n.clone());
            }
        }
        m
    }
}

/// The state-wide invariants a crash must never break.
fn check_invariants(state: &State) {
    let scope = &state.scope;
    for a in state.kms.aliases.values() {
        assert!(
            state.kms.keys.contains_key(&a.target),
            "alias {} points at missing key {}",
            a.name,
            a.target
        );
    }
    let mut backed = 0;
    for k in state.kms.keys.values() {
        if let Backing::CloudHsm { store, handle, .. } = &k.backing {
            let cluster = &state.kms.stores[store].cluster_id;
            let object = state
                .hsm
                .objects
                .get(&(cluster.clone(), *handle))
                .unwrap_or_else(|| panic!("key {} has no HSM key object", k.id));
            assert_eq!(object.label, scope.key_arn(&k.id));
            backed += 1;
        }
    }
    // And no HSM key object was left behind without its KMS key.
    let kms_objects = state
        .hsm
        .objects
        .values()
        .filter(|o| o.owner == "kmsuser")
        .count();
    assert_eq!(kms_objects, backed, "orphaned HSM key objects");
}

/// Run by `crash_mid_write_keeps_every_acknowledged_write` in a child process: writes until
/// it is killed. Prints `try <op>` before and `ok` after each write.
#[test]
#[ignore = "child process of crash_mid_write_keeps_every_acknowledged_write"]
fn crash_child() {
    let dir = child_dir();
    let config = KmsConfig {
        compact_after_bytes: 16 << 10,
        ..KmsConfig::default()
    };
    let kms = Kms::open_with(&dir, config).unwrap();
    let store = std::env::var("KMSCKS_TEST_STORE").unwrap();
    let run = std::env::var("KMSCKS_TEST_RUN").unwrap();
    say("ready");
    let mut rng = Rng::seeded();
    let mut ids: Vec<(String, String)> = Vec::new(); // (name, key id), not pending deletion
    for n in 0.. {
        let op = if ids.is_empty() || rng.below(3) == 0 {
            Op::Create {
                name: format!("crash-{run}-{n}"),
                in_store: rng.below(2) == 0,
            }
        } else {
            let (name, _) = ids[rng.below(ids.len() as u64) as usize].clone();
            match rng.below(5) {
                0 => Op::Tag {
                    name,
                    key: format!("t{}", rng.below(3)),
                    value: format!("v{n}"),
                },
                1 => Op::Alias {
                    alias: format!("alias/crash-{run}-{n}"),
                    name,
                },
                2 => Op::Disable { name },
                3 => Op::Enable { name },
                _ => Op::Schedule { name },
            }
        };
        say(&format!("try {}", op.encode()));
        let id_of = |name: &str| ids.iter().find(|(n, _)| n == name).unwrap().1.clone();
        match &op {
            Op::Create { name, in_store } => {
                let id = kms
                    .create_key(&CreateKeyRequest {
                        description: Some(name.clone()),
                        custom_key_store_id: in_store.then(|| store.clone()),
                        origin: in_store.then_some(kmscks::types::Origin::AwsCloudhsm),
                        ..Default::default()
                    })
                    .unwrap()
                    .key_metadata
                    .key_id;
                ids.push((name.clone(), id));
            }
            Op::Tag { name, key, value } => tag(&kms, &id_of(name), key, value),
            Op::Alias { alias: a, name } => alias(&kms, a, &id_of(name)),
            Op::Disable { name } => kms.disable_key(&key_req(&id_of(name))).map(drop).unwrap(),
            Op::Enable { name } => kms.enable_key(&key_req(&id_of(name))).map(drop).unwrap(),
            Op::Schedule { name } => {
                schedule(&kms, &id_of(name), 7);
                ids.retain(|(n, _)| n != name);
            }
        }
        say("ok");
    }
}

#[test]
fn crash_mid_write_keeps_every_acknowledged_write() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let config = KmsConfig::default();
    let kms = open(&dir, &config);
    let f = connected_store(&kms, &SystemClock, "Crash");
    create_key(&kms, None); // creates the master key file up front
    drop(kms);

    let mut rng = Rng::seeded();
    let seed = rng.0;
    let mut model = Model::default();
    let mut kills_mid_write = 0;
    for run in 0..24 {
        let mut cmd = child("crash_child", &dir);
        cmd.env("KMSCKS_TEST_STORE", &f.store_id)
            .env("KMSCKS_TEST_RUN", run.to_string());
        let Spawned {
            child: mut c,
            past_exec,
        } = spawn(&mut cmd);
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // One message per write the child starts, so the kill comes after a chosen number of
        // them however loaded the machine is.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let reader = {
            let lines = lines.clone();
            let out = c.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    // libtest may have started the line with `test crash_child ... `.
                    let Some((_, msg)) = line.split_once(LINE) else {
                        continue;
                    };
                    if msg == "ready" {
                        let _ = ready_tx.send(());
                    } else {
                        if msg.starts_with("try ") {
                            let _ = started_tx.send(());
                        }
                        lines.lock().unwrap().push(msg.to_owned());
                    }
                }
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("child of run {run} never got ready (seed {seed})"));
        // It printed: it is past exec and holds none of this process's descriptors.
        drop(past_exec);
        // The crash point under test: during the child's n-th write (n random), wherever in
        // that write a random few hundred microseconds after it started lands.
        let n = 3 + rng.below(10);
        for _ in 0..n {
            started_rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("child of run {run} stopped writing (seed {seed})"));
        }
        // Not synchronisation: the jitter places the kill inside the write.
        std::thread::sleep(Duration::from_micros(rng.below(800)));
        c.kill().unwrap();
        c.wait().unwrap();
        reader.join().unwrap();

        // Replay what the child reported: acknowledged ops, and at most one in flight.
        let lines = lines.lock().unwrap().clone();
        let mut in_flight = None;
        for l in &lines {
            if let Some(op) = l.strip_prefix("try ") {
                assert!(in_flight.is_none(), "run {run}: two writes in flight");
                in_flight = Some(Op::decode(op));
            } else {
                assert_eq!(l, "ok", "run {run}");
                model.apply(&in_flight.take().expect("ok without try"));
            }
        }
        if in_flight.is_some() {
            kills_mid_write += 1;
        }

        let kms = try_open(&dir, &config)
            .unwrap_or_else(|e| panic!("run {run} (seed {seed}): reopen failed: {e}"));
        let state = kms.state_snapshot();
        check_invariants(&state);
        let actual = Model::of(&state);
        if actual != model {
            let op = in_flight.as_ref().unwrap_or_else(|| {
                panic!(
                    "run {run} (seed {seed}): state differs from the acknowledged writes\n\
                     expected {model:?}\nactual {actual:?}"
                )
            });
            // The write in flight may have been made durable before the kill: then it is
            // there in full, and it counts from now on.
            let mut with = model.clone();
            with.apply(op);
            assert_eq!(
                actual, with,
                "run {run} (seed {seed}): neither without nor with in-flight {op:?}"
            );
            model = with;
        }
        // The reopened instance is writable.
        assert_eq!(
            connection_state(&kms, &f.store_id),
            ConnectionState::Connected
        );
        drop(kms);
    }
    assert!(
        model.keys.len() >= 24,
        "children made too few keys ({}): the test did not exercise much",
        model.keys.len()
    );
    eprintln!(
        "crash test: seed {seed}, {kills_mid_write} kills mid-write, {} keys",
        model.keys.len()
    );
}

/// Run by `passphrase_seals_key_files` in a child process with `KMSCKS_PASSPHRASE` set (or
/// not): does `KMSCKS_TEST_CHILD_ACTION` and prints `ok` or `err <ExceptionName> <message>`.
#[test]
#[ignore = "child process of passphrase_seals_key_files"]
fn passphrase_child() {
    let dir = child_dir();
    let action = std::env::var(CHILD_ACTION_ENV).unwrap();
    let result = (|| -> kmscks::Result<()> {
        let kms = Kms::open(&dir)?;
        match action.as_str() {
            "setup" => {
                let f = connected_store(&kms, &SystemClock, "Sealed");
                create_key(&kms, None);
                create_key(&kms, Some(&f.store_id));
                disconnect(&kms, &SystemClock, &f.store_id);
            }
            "use" => {
                kms.create_key(&CreateKeyRequest::default())?;
                let store = kms
                    .describe_custom_key_stores(&DescribeCustomKeyStoresRequest::default())?
                    .custom_key_stores
                    .remove(0)
                    .custom_key_store_id;
                // Connecting unwraps kmsuser's password under the (sealed) master key.
                assert_eq!(
                    connect(&kms, &SystemClock, &store).connection_state,
                    ConnectionState::Connected
                );
                kms.create_key(&CreateKeyRequest {
                    custom_key_store_id: Some(store),
                    origin: Some(kmscks::types::Origin::AwsCloudhsm),
                    ..Default::default()
                })?;
            }
            other => panic!("unknown action {other}"),
        }
        Ok(())
    })();
    match result {
        Ok(()) => say("ok"),
        Err(e) => say(&format!("err {} {}", e.kind().aws_name(), e.message())),
    }
}

fn run_passphrase_child(dir: &Path, action: &str, passphrase: Option<&str>) -> String {
    let mut cmd = child("passphrase_child", dir);
    cmd.env(CHILD_ACTION_ENV, action);
    if let Some(p) = passphrase {
        cmd.env(PASSPHRASE_ENV, p);
    }
    let Spawned { child, past_exec } = spawn(&mut cmd);
    let out = child.wait_with_output().unwrap();
    drop(past_exec);
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.split_once(LINE).map(|(_, r)| r))
        .unwrap_or_else(|| panic!("child printed no result: {text}"));
    assert!(out.status.success(), "child failed: {text}");
    line.to_owned()
}

#[test]
fn passphrase_seals_key_files() {
    const PASS: &str = "correct horse battery staple";
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    assert_eq!(run_passphrase_child(&dir, "setup", Some(PASS)), "ok");
    let key_files = file_names(&dir.join("keys"));
    assert_eq!(key_files.len(), 2, "{key_files:?}");
    for name in &key_files {
        let bytes = fs::read(dir.join("keys").join(name)).unwrap();
        assert_eq!(&bytes[..4], b"KCKK");
        assert_eq!(bytes[5], 1, "{name} is not sealed");
        assert!(
            !bytes.windows(PASS.len()).any(|w| w == PASS.as_bytes()),
            "passphrase written to {name}"
        );
    }
    // Without the passphrase (this process never has it), or with a wrong one, the open
    // fails and the error says why.
    let no_pass = run_passphrase_child(&dir, "use", None);
    assert!(
        no_pass.starts_with("err StorageException ")
            && no_pass.contains("is sealed: KMSCKS_PASSPHRASE is not set"),
        "{no_pass}"
    );
    let wrong = run_passphrase_child(&dir, "use", Some("wrong passphrase"));
    assert!(
        wrong.starts_with("err StorageException ") && wrong.contains("wrong passphrase or damaged"),
        "{wrong}"
    );
    // With it, everything works and the key files are unchanged.
    let before: Vec<Vec<u8>> = key_files
        .iter()
        .map(|n| fs::read(dir.join("keys").join(n)).unwrap())
        .collect();
    assert_eq!(run_passphrase_child(&dir, "use", Some(PASS)), "ok");
    let after: Vec<Vec<u8>> = key_files
        .iter()
        .map(|n| fs::read(dir.join("keys").join(n)).unwrap())
        .collect();
    assert_eq!(before, after);
    // This process has no passphrase: the open itself refuses, naming the sealed key file.
    let e = try_open(&dir, &KmsConfig::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException);
    assert!(
        e.message()
            .contains("is sealed: KMSCKS_PASSPHRASE is not set"),
        "{e}"
    );
}

#[test]
fn deletions_due_while_stopped_happen_on_reopen_and_stay_done() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (config, clock) = config();
    let kms = open(&dir, &config);
    let up = connected_store(&kms, &clock, "Up");
    let down = connected_store(&kms, &clock, "Down");
    let default_key = create_key(&kms, None);
    let up_key = create_key(&kms, Some(&up.store_id));
    let down_key = create_key(&kms, Some(&down.store_id));
    let survivor = create_key(&kms, None);
    alias(&kms, "alias/doomed", &default_key);
    alias(&kms, "alias/survivor", &survivor);
    for k in [&default_key, &up_key, &down_key] {
        schedule(&kms, k, 7);
    }
    disconnect(&kms, &clock, &down.store_id);
    drop(kms);

    clock.advance_days(8);
    let kms = open(&dir, &config);
    for k in [&default_key, &up_key, &down_key] {
        assert_aws(kms.describe_key(&key_req(k)), ErrorKind::NotFoundException);
    }
    assert_eq!(describe_key(&kms, &survivor).key_state, KeyState::Enabled);
    let aliases: Vec<String> = kms
        .list_aliases(&ListRequest::default())
        .unwrap()
        .aliases
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    assert!(
        aliases.contains(&"alias/survivor".to_string()),
        "{aliases:?}"
    );
    assert!(
        !aliases.contains(&"alias/doomed".to_string()),
        "{aliases:?}"
    );
    // The connected store's HSM key is deleted; the disconnected one's is orphaned.
    assert!(kms
        .list_key_objects(&up.cluster.cluster_id)
        .unwrap()
        .is_empty());
    assert_eq!(
        kms.list_key_objects(&down.cluster.cluster_id)
            .unwrap()
            .len(),
        1
    );
    let deletions: Vec<String> = kms
        .kms_events()
        .unwrap()
        .into_iter()
        .filter(|e| e.event_name == "DeleteKey")
        .map(|e| e.detail)
        .collect();
    assert_eq!(deletions.len(), 3, "{deletions:?}");
    let status = |s: &str| deletions.iter().filter(|d| d.contains(s)).count();
    assert_eq!(status("SUCCESS"), 1, "{deletions:?}");
    assert_eq!(status("FAILURE"), 1, "{deletions:?}");
    let state = kms.state_snapshot();
    drop(kms);
    // The deletions were made durable: nothing comes back on the next open.
    let kms = open(&dir, &config);
    assert!(kms.state_snapshot() == state);
    assert_aws(
        kms.describe_key(&key_req(&up_key)),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn data_directory_of_another_account_or_region_is_refused() {
    // Before and after the first compaction.
    for compact_after_bytes in [8 << 20, 1] {
        other_scope_is_refused(compact_after_bytes);
    }
    // Even a directory that holds nothing yet.
    let t = tempfile::tempdir().unwrap();
    let (config, _clock) = config();
    drop(open(t.path(), &config));
    let other = KmsConfig {
        scope: kmscks::types::Scope {
            account_id: "444455556666".into(),
            region: "us-east-1".into(),
        },
        ..config
    };
    assert_aws(try_open(t.path(), &other), ErrorKind::StorageException);
}

fn other_scope_is_refused(compact_after_bytes: u64) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let (mut config, _clock) = config();
    config.compact_after_bytes = compact_after_bytes;
    let kms = open(&dir, &config);
    create_key(&kms, None);
    // Dropping the instance would cancel a compaction in flight.
    kms.wait_for_compaction().unwrap();
    drop(kms);
    for (account, region) in [("444455556666", "us-east-1"), ("111122223333", "eu-west-1")] {
        let other = KmsConfig {
            scope: kmscks::types::Scope {
                account_id: account.into(),
                region: region.into(),
            },
            ..config.clone()
        };
        let e = assert_aws(try_open(&dir, &other), ErrorKind::StorageException);
        assert!(
            e.message()
                .contains(&format!("not account {account} in {region}")),
            "{e}"
        );
    }
    open(&dir, &config);
}
