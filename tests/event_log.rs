//! The KMS event log on disk: JSON-lines files in `<data-dir>/events/`, one event per line
//! with consecutive sequence numbers, rotated by size, expired after the retention, recovered
//! exactly once after a crash, private to the daemon's user — and no longer part of the state.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use kmscks::api::kms::TrailEvent;
use kmscks::types::Clock;
use kmscks::{ErrorKind, Kms, KmsConfig};

fn events_dir(dir: &Path) -> PathBuf {
    dir.join("events")
}

/// The event log files, oldest first.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(events_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    v.sort();
    v
}

/// Every complete line of every file, oldest first, as JSON (a torn last line left out).
fn lines(dir: &Path) -> Vec<serde_json::Value> {
    files(dir)
        .iter()
        .flat_map(|f| {
            let text = fs::read_to_string(f).unwrap();
            text.split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every file ends with a complete line.
fn no_torn_line(dir: &Path) -> bool {
    files(dir)
        .iter()
        .all(|f| fs::read_to_string(f).unwrap().ends_with('\n'))
}

fn seqs(dir: &Path) -> Vec<u64> {
    lines(dir)
        .iter()
        .map(|l| l["eventSeq"].as_u64().unwrap())
        .collect()
}

/// Records `n` events (DisableKey, EnableKey, ... on `key`).
fn toggle(kms: &Kms, key: &str, n: usize) {
    for i in 0..n {
        if i % 2 == 0 {
            kms.disable_key(&key_req(key)).unwrap();
        } else {
            kms.enable_key(&key_req(key)).unwrap();
        }
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn names(events: &[TrailEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_name.as_str()).collect()
}

#[test]
fn events_land_in_the_file_in_commit_order_with_consecutive_seqs_in_private_files() {
    let t = tempfile::tempdir().unwrap();
    let (config, clock) = config();
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let key = create_key(&kms, None);
    toggle(&kms, &key, 2);

    let got = lines(t.path());
    let want_names = ["CreateKey", "DisableKey", "EnableKey"];
    assert_eq!(
        got.iter()
            .map(|l| l["eventName"].as_str().unwrap())
            .collect::<Vec<_>>(),
        want_names
    );
    assert_eq!(seqs(t.path()), [0, 1, 2]);
    let first = &got[0];
    assert_eq!(first["eventSource"], "kms.amazonaws.com");
    assert_eq!(first["principal"], kms.principal());
    assert!(first["detail"].is_object(), "{first}");
    let time = first["eventTime"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    // What LookupEvents answers is what the file holds.
    let events = kms.kms_events().unwrap();
    assert_eq!(names(&events), want_names);
    assert_eq!(events[0].time, clock.now());
    let files = files(t.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("events/events-00000000000000000000.jsonl"));
    assert_eq!(mode(&events_dir(t.path())), 0o700);
    assert_eq!(mode(&files[0]), 0o600);

    drop(kms);
    let kms = Kms::open_with(t.path(), config).unwrap();
    assert_eq!(
        kms.kms_events().unwrap(),
        events,
        "the same events after a restart"
    );
    assert_eq!(seqs(t.path()), [0, 1, 2], "and each once");
}

#[test]
fn files_rotate_at_the_size_limit_and_rotated_files_go_once_past_retention() {
    let t = tempfile::tempdir().unwrap();
    let (mut config, clock) = config();
    config.event_log_file_bytes = 1000;
    config.event_log_retain_days = 2;
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let key = create_key(&kms, None);
    toggle(&kms, &key, 19);

    // Rotated by size: each file within the limit, and each rotated only when the next line
    // would not fit; every file is named after its first event.
    let phase_a = files(t.path());
    assert!(phase_a.len() >= 3, "{phase_a:?}");
    for (i, f) in phase_a.iter().enumerate() {
        let text = fs::read_to_string(f).unwrap();
        assert!(text.len() <= 1000, "{}: {} bytes", f.display(), text.len());
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            name,
            format!("events-{:020}.jsonl", first["eventSeq"].as_u64().unwrap())
        );
        if let Some(next) = phase_a.get(i + 1) {
            let next_line = fs::read_to_string(next)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .len()
                + 1;
            assert!(
                text.len() + next_line > 1000,
                "{} rotated early",
                f.display()
            );
        }
    }
    assert_eq!(seqs(t.path()), (0..20).collect::<Vec<u64>>());
    assert_eq!(kms.kms_events().unwrap().len(), 20);

    // Three days on, rotating drops every file whose successor began before the retention:
    // all but the newest file of before.
    clock.advance_days(3);
    let mut written = 0;
    while files(t.path()) == phase_a && written < 100 {
        toggle(&kms, &key, 1);
        written += 1;
    }
    let after = files(t.path());
    let last_a = phase_a.last().unwrap();
    for gone in &phase_a[..phase_a.len() - 1] {
        assert!(!gone.exists(), "{} outlived its retention", gone.display());
    }
    assert_eq!(&after[0], last_a, "the file that ends at the cut stays");
    let first_kept = lines(t.path())[0]["eventSeq"].as_u64().unwrap();
    let events = kms.kms_events().unwrap();
    assert_eq!(events.len() as u64, 20 + written - first_kept);

    // Retention is also applied at open.
    drop(kms);
    clock.advance_days(3);
    let kms = Kms::open_with(t.path(), config).unwrap();
    assert!(!last_a.exists(), "expired at open");
    assert_eq!(files(t.path()).len(), after.len() - 1);
    assert_eq!(kms.kms_events().unwrap().last(), events.last());
}

/// Damage done to the event log files (given oldest first).
type Damage = dyn Fn(&[PathBuf]);

#[test]
fn events_lost_from_the_file_tail_reappear_exactly_once_on_reopen() {
    let t = tempfile::tempdir().unwrap();
    let (mut config, _clock) = config();
    config.event_log_file_bytes = 1000;
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let key = create_key(&kms, None);
    toggle(&kms, &key, 11);
    let all = kms.kms_events().unwrap();
    let want: Vec<u64> = (0..12).collect();
    drop(kms);

    // A crash between the journal's fsync and the event write, in three sizes: the newest line
    // torn; the newest file gone and the one before it torn; every file gone.
    let damage: [&Damage; 3] = [
        &|files| {
            let last = files.last().unwrap();
            let len = fs::metadata(last).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(last)
                .unwrap()
                .set_len(len - 7)
                .unwrap();
        },
        &|files| {
            fs::remove_file(files.last().unwrap()).unwrap();
            let before = &files[files.len() - 2];
            let text = fs::read_to_string(before).unwrap();
            let cut = text.trim_end().rfind('\n').unwrap() + 10;
            fs::write(before, &text[..cut]).unwrap();
        },
        &|files| {
            for f in files {
                fs::remove_file(f).unwrap();
            }
        },
    ];
    for (i, damage) in damage.iter().enumerate() {
        let before = files(t.path());
        assert!(before.len() >= 2, "case {i}: {before:?}");
        damage(&before);
        assert_ne!(seqs(t.path()), want, "case {i}: the damage lost events");
        let kms = Kms::open_with(t.path(), config.clone()).unwrap();
        assert!(no_torn_line(t.path()), "case {i}: the torn line was cut");
        assert_eq!(seqs(t.path()), want, "case {i}: every event once, in order");
        assert_eq!(kms.kms_events().unwrap(), all, "case {i}");
    }
    // And the sequence goes on from there.
    let kms = Kms::open_with(t.path(), config).unwrap();
    toggle(&kms, &key, 1);
    assert_eq!(seqs(t.path()), (0..13).collect::<Vec<u64>>());
}

#[test]
fn events_the_journal_lost_with_its_torn_tail_are_cut_from_the_files() {
    let t = tempfile::tempdir().unwrap();
    let (config, _clock) = config();
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let key = create_key(&kms, None);
    toggle(&kms, &key, 3);
    let all = kms.kms_events().unwrap();
    drop(kms);
    // The last journal record torn (as if its fsync never completed): its event was never
    // acknowledged, so it must not stay in the log either.
    let journal = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("journal-")
        })
        .unwrap();
    let len = fs::metadata(&journal).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let [file] = &files(t.path())[..] else {
        panic!("one event log file: {:?}", files(t.path()))
    };
    let text = fs::read_to_string(file).unwrap();
    let lost_at = text.trim_end().rfind('\n').unwrap() + 1;

    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    assert_eq!(kms.kms_events().unwrap(), all[..3]);
    assert_eq!(seqs(t.path()), [0, 1, 2]);
    // The cut line is kept aside, beside the file it was cut from, and an open leaves it be.
    let cut = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(events_dir(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_str().unwrap().contains(".jsonl.cut-"))
            .collect()
    };
    let aside = file.with_file_name(format!(
        "{}.cut-{lost_at}",
        file.file_name().unwrap().to_str().unwrap()
    ));
    assert_eq!(cut(t.path()), std::slice::from_ref(&aside));
    assert_eq!(fs::read_to_string(&aside).unwrap(), text[lost_at..]);
    assert_eq!(mode(&aside), 0o600);
    drop(kms);
    let kms = Kms::open_with(t.path(), config).unwrap();
    assert_eq!(
        cut(t.path()),
        [aside],
        "nothing more is cut, nothing is read back"
    );
    assert_eq!(seqs(t.path()), [0, 1, 2]);
    kms.enable_key(&key_req(&key)).unwrap();
    assert_eq!(
        seqs(t.path()),
        [0, 1, 2, 3],
        "the next event takes the freed number"
    );
}

#[test]
fn events_survive_compaction_on_every_commit() {
    let t = tempfile::tempdir().unwrap();
    let (mut config, _clock) = config();
    config.compact_after_bytes = 1;
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let key = create_key(&kms, None);
    toggle(&kms, &key, 4);
    let all = kms.kms_events().unwrap();
    assert_eq!(all.len(), 5);
    drop(kms);
    let kms = Kms::open_with(t.path(), config).unwrap();
    assert_eq!(kms.kms_events().unwrap(), all);
    assert_eq!(seqs(t.path()), [0, 1, 2, 3, 4]);
}

fn refused_with(dir: &Path, config: &KmsConfig, words: &[&str]) {
    let e = Kms::open_with(dir, config.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    for w in words {
        assert!(e.message().contains(w), "{w:?} not in: {e}");
    }
}

#[test]
fn a_symlinked_events_directory_or_file_or_a_group_readable_file_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (config, _clock) = config();
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();

    // The directory a symbolic link.
    let dir = t.path().join("a");
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&elsewhere, events_dir(&dir)).unwrap();
    let shown = events_dir(&dir).display().to_string();
    refused_with(&dir, &config, &[&shown, "symbolic link"]);
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written there"
    );

    // A file a symbolic link.
    let dir = t.path().join("b");
    let kms = Kms::open_with(&dir, config.clone()).unwrap();
    create_key(&kms, None);
    drop(kms);
    let file = files(&dir).pop().unwrap();
    let target = elsewhere.join("copy.jsonl");
    fs::rename(&file, &target).unwrap();
    std::os::unix::fs::symlink(&target, &file).unwrap();
    let shown = file.display().to_string();
    refused_with(&dir, &config, &[&shown, "symbolic link"]);

    // A file others may read.
    fs::remove_file(&file).unwrap();
    fs::rename(&target, &file).unwrap();
    Kms::open_with(&dir, config.clone()).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    refused_with(&dir, &config, &[&shown, "group or others"]);
}

#[test]
fn the_snapshot_does_not_grow_with_the_events_recorded() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let encoded = |kms: &Kms| {
        bincode::serde::encode_to_vec(kms.state_snapshot(), bincode::config::standard())
            .unwrap()
            .len()
    };
    toggle(&kms, &key, 2);
    let small = encoded(&kms);
    toggle(&kms, &key, 400);
    assert_eq!(kms.state_snapshot().kms.next_event_seq, 403);
    // Only the event counter's varint may widen.
    assert!(
        encoded(&kms) <= small + 2,
        "{small} -> {} bytes",
        encoded(&kms)
    );
    assert_eq!(kms.kms_events().unwrap().len(), 403);
}

#[test]
fn a_damaged_line_inside_the_log_is_reported_by_lookup_events_naming_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let (config, _clock) = config();
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let key = create_key(&kms, None);
    toggle(&kms, &key, 3);
    drop(kms);
    let file = files(t.path()).pop().unwrap();
    let text = fs::read_to_string(&file).unwrap();
    let second = text.find('\n').unwrap() + 1;
    let mut bytes = text.into_bytes();
    bytes[second] = b'#';
    fs::write(&file, bytes).unwrap();

    // The open reads only the tail it may have to cut; the damage is found on reading.
    let kms = Kms::open_with(t.path(), config).unwrap();
    let e = kms.kms_events().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    let want = format!("{} line 2 is damaged", file.display());
    assert!(e.message().contains(&want), "{e}");
}

/// Rewrites `file` with the lines `edit` leaves of it.
fn edit_lines(file: &Path, edit: impl FnOnce(&mut Vec<&str>)) {
    let text = fs::read_to_string(file).unwrap();
    let mut all: Vec<&str> = text.lines().collect();
    edit(&mut all);
    let kept: String = all.iter().map(|l| format!("{l}\n")).collect();
    fs::write(file, kept).unwrap();
}

#[test]
fn a_line_removed_from_the_newest_file_is_refused_at_open_naming_the_line_where_it_was() {
    let t = tempfile::tempdir().unwrap();
    let (config, _clock) = config();
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let key = create_key(&kms, None);
    toggle(&kms, &key, 8);
    drop(kms);
    let file = files(t.path()).pop().unwrap();
    edit_lines(&file, |lines| {
        lines.remove(2);
    });
    // Found from the end (the open reads the tail), reported where the gap is.
    refused_with(
        t.path(),
        &config,
        &[
            &format!("{} line 3 is damaged", file.display()),
            "event 3 where 2 should be: event 2 is missing here",
        ],
    );
}

#[test]
fn a_line_removed_from_an_older_file_is_reported_by_lookup_events_naming_the_line() {
    let t = tempfile::tempdir().unwrap();
    let (mut config, _clock) = config();
    config.event_log_file_bytes = 4096;
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let key = create_key(&kms, None);
    toggle(&kms, &key, 30);
    drop(kms);
    let oldest = files(t.path()).remove(0);
    assert!(files(t.path()).len() >= 2, "the log rotated");
    edit_lines(&oldest, |lines| {
        lines.remove(1);
    });

    // The open reads only the newest file's tail; reading the older file finds the gap.
    let kms = Kms::open_with(t.path(), config).unwrap();
    let e = kms.kms_events().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    let want = format!(
        "{} line 2 is damaged: event 2 where 1 should be: event 1 is missing here",
        oldest.display()
    );
    assert!(e.message().contains(&want), "{e}");
    let mut req = kmscks::api::kms::LookupEventsRequest::default();
    let e = loop {
        match kms.lookup_events(&req) {
            Ok(page) => match page.next_token {
                Some(t) => req.next_token = Some(t),
                None => panic!("LookupEvents paged over the gap without an error"),
            },
            Err(e) => break e,
        }
    };
    assert!(e.message().contains(&want), "{e}");
}

#[test]
fn lines_cut_off_the_end_after_a_compaction_are_refused_at_open_not_renumbered() {
    let t = tempfile::tempdir().unwrap();
    let (mut config, _clock) = config();
    config.compact_after_bytes = 16 << 10;
    let kms = Kms::open_with(t.path(), config.clone()).unwrap();
    let started = kms.compaction_stats().unwrap().started;
    let key = create_key(&kms, None);
    while kms.compaction_stats().unwrap().started == started {
        toggle(&kms, &key, 1);
    }
    // The journal no longer holds the events the compaction took into the snapshot.
    kms.wait_for_compaction().unwrap();
    drop(kms);
    let file = files(t.path()).pop().unwrap();
    let mut kept = 0;
    edit_lines(&file, |lines| {
        lines.truncate(lines.len() - 3);
        kept = lines.len();
    });

    refused_with(
        t.path(),
        &config,
        &[
            &format!("event log file {}", file.display()),
            "were removed from the end of the event log",
        ],
    );
    // Untouched by the refusal; with the events directory moved away, a new log starts.
    assert_eq!(fs::read_to_string(&file).unwrap().lines().count(), kept);
    fs::rename(events_dir(t.path()), t.path().join("events.old")).unwrap();
    let kms = Kms::open_with(t.path(), config).unwrap();
    toggle(&kms, &key, 1);
    assert!(!kms.kms_events().unwrap().is_empty());
}
