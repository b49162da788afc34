//! Crash and damage behaviour of the durable store, driven through files on disk.

use std::fs;
use std::path::{Path, PathBuf};

use kmscks::store::journal::{JOURNAL_HEADER_LEN, RECORD_HEADER_LEN};
use kmscks::store::snapshot::SNAPSHOT_HEADER_LEN;
use kmscks::store::DataDir;
use kmscks::ErrorKind;

/// The store key of these tests (any fixed key: nothing here is written by a `Kms`).
fn auth() -> kmscks::store::StoreAuth {
    kmscks::store::StoreAuth::derive(&kmscks::secret::KeyMaterial::from_slice(&[7u8; 32]).unwrap())
}

fn record(i: usize) -> Vec<u8> {
    format!("record number {i:04} with some payload").into_bytes()
}

/// Writes `n` records to a fresh journal; returns the start offset of each record.
fn write_records(dir: &Path, n: usize) -> Vec<u64> {
    let (mut d, r) = DataDir::open(dir, auth()).unwrap();
    assert!(r.records.is_empty());
    let mut starts = Vec::new();
    for i in 0..n {
        starts.push(JOURNAL_HEADER_LEN as u64 + d.journal_bytes());
        d.append(&record(i)).unwrap();
    }
    starts
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn records_come_back_in_order() {
    let t = tempfile::tempdir().unwrap();
    write_records(t.path(), 50);
    let (_d, r) = DataDir::open(t.path(), auth()).unwrap();
    assert!(r.snapshot.is_none());
    assert_eq!(r.dropped_torn_tail, None);
    assert_eq!(r.records, (0..50).map(record).collect::<Vec<_>>());
}

#[test]
fn compaction_gives_snapshot_plus_tail() {
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = DataDir::open(t.path(), auth()).unwrap();
    d.append(b"before").unwrap();
    d.compact(b"the whole state").unwrap();
    d.append(b"after-1").unwrap();
    d.append_batch(&[b"after-2", b"after-3"]).unwrap();
    drop(d);
    let (_d, r) = DataDir::open(t.path(), auth()).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(&b"the whole state"[..]));
    assert_eq!(r.records, [&b"after-1"[..], b"after-2", b"after-3"]);
    assert_eq!(r.generation, 1);
}

#[test]
fn torn_tail_at_every_offset_is_dropped_and_repaired() {
    let t = tempfile::tempdir().unwrap();
    let n = 5;
    let starts = write_records(t.path(), n);
    let journal = t.path().join("journal-0.log");
    let good = fs::read(&journal).unwrap();
    let last = starts[n - 1] as usize;
    assert_eq!(
        good.len(),
        last + RECORD_HEADER_LEN + record(n - 1).len() + kmscks::store::auth::TAG_LEN
    );

    for cut in last + 1..good.len() {
        fs::write(&journal, &good[..cut]).unwrap();
        let (mut d, r) = DataDir::open(t.path(), auth()).unwrap();
        assert_eq!(
            r.records,
            (0..n - 1).map(record).collect::<Vec<_>>(),
            "cut {cut}"
        );
        assert_eq!(
            r.dropped_torn_tail,
            Some((journal.clone(), last as u64)),
            "cut {cut}"
        );
        assert_eq!(
            fs::metadata(&journal).unwrap().len(),
            last as u64,
            "not repaired"
        );
        d.append(b"next").unwrap();
        drop(d);
        let (_d, r) = DataDir::open(t.path(), auth()).unwrap();
        assert_eq!(r.records.len(), n);
        assert_eq!(r.records[n - 1], b"next");
        assert_eq!(r.dropped_torn_tail, None);
    }
    // Cut exactly at a record boundary: nothing torn.
    fs::write(&journal, &good[..last]).unwrap();
    let (_d, r) = DataDir::open(t.path(), auth()).unwrap();
    assert_eq!(r.records.len(), n - 1);
    assert_eq!(r.dropped_torn_tail, None);
}

#[test]
fn a_last_record_failing_its_payload_check_is_cut_away_and_kept_byte_for_byte() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let n = 3;
    let starts = write_records(t.path(), n);
    let journal = t.path().join("journal-0.log");
    let mut bad = fs::read(&journal).unwrap();
    let last = starts[n - 1] as usize;
    // One payload bit of the last frame: its header verifies and its whole declared length
    // and tag are there, yet its checksum fails. A torn write can look the same, so it is cut
    // away — but it may as well be an acknowledged record (a revocation) damaged since.
    bad[last + RECORD_HEADER_LEN + 3] ^= 0x10;
    fs::write(&journal, &bad).unwrap();
    let (d, r) = DataDir::open(t.path(), auth()).unwrap();
    assert_eq!(r.records, (0..n - 1).map(record).collect::<Vec<_>>());
    assert_eq!(r.dropped_torn_tail, Some((journal.clone(), last as u64)));
    assert_eq!(fs::metadata(&journal).unwrap().len(), last as u64);
    let kept = t.path().join(format!("journal-0.log.cut-{last}"));
    assert_eq!(
        fs::read(&kept).unwrap(),
        &bad[last..],
        "the cut bytes, kept"
    );
    let mode = fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Later opens neither read the kept bytes as a journal nor remove them, nor refuse them.
    drop(d);
    let (_d, r) = DataDir::open(t.path(), auth()).unwrap();
    assert_eq!(r.records.len(), n - 1);
    assert_eq!(r.dropped_torn_tail, None);
    assert_eq!(fs::read(&kept).unwrap(), &bad[last..]);
}

#[test]
fn torn_batch_is_all_or_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = DataDir::open(t.path(), auth()).unwrap();
    d.append(b"solo").unwrap();
    let start = JOURNAL_HEADER_LEN as u64 + d.journal_bytes();
    d.append_batch(&[b"b1", b"b2", b"b3"]).unwrap();
    drop(d);
    let journal = t.path().join("journal-0.log");
    let good = fs::read(&journal).unwrap();
    for cut in start as usize + 1..good.len() {
        fs::write(&journal, &good[..cut]).unwrap();
        let (_d, r) = DataDir::open(t.path(), auth()).unwrap();
        assert_eq!(r.records, [b"solo"], "cut {cut}");
    }
}

#[test]
fn flipped_byte_in_middle_record_is_damage_with_file_and_offset() {
    let t = tempfile::tempdir().unwrap();
    let starts = write_records(t.path(), 5);
    let journal = t.path().join("journal-0.log");
    let good = fs::read(&journal).unwrap();
    let (a, b) = (starts[2] as usize, starts[3] as usize);
    for i in a..b {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        fs::write(&journal, &bad).unwrap();
        let e = DataDir::open(t.path(), auth()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageException, "byte {i}");
        let want = format!("journal {} damaged at offset {a}: ", journal.display());
        assert!(e.message().starts_with(&want), "byte {i}: {e}");
    }
    // The damaged file is left untouched for inspection (no truncation on damage).
    assert_eq!(fs::metadata(&journal).unwrap().len(), good.len() as u64);
    fs::write(&journal, &good).unwrap();
    assert_eq!(DataDir::open(t.path(), auth()).unwrap().1.records.len(), 5);
}

#[test]
fn damaged_journal_header_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    write_records(t.path(), 2);
    let journal = t.path().join("journal-0.log");
    let good = fs::read(&journal).unwrap();
    for i in 0..JOURNAL_HEADER_LEN {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        fs::write(&journal, &bad).unwrap();
        let e = DataDir::open(t.path(), auth()).unwrap_err();
        assert!(
            e.message()
                .starts_with(&format!("journal {} damaged at offset", journal.display())),
            "byte {i}: {e}"
        );
    }
}

fn compacted_dir(dir: &Path) -> PathBuf {
    let (mut d, _) = DataDir::open(dir, auth()).unwrap();
    d.append(b"x").unwrap();
    d.compact(b"snapshot payload, long enough to have a middle")
        .unwrap();
    d.append(b"y").unwrap();
    dir.join("snapshot-1.bin")
}

#[test]
fn flipped_byte_in_snapshot_is_a_precise_error() {
    let t = tempfile::tempdir().unwrap();
    let snap = compacted_dir(t.path());
    let good = fs::read(&snap).unwrap();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x04;
        fs::write(&snap, &bad).unwrap();
        let e = DataDir::open(t.path(), auth()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageException);
        let want = format!("snapshot {} damaged at offset ", snap.display());
        assert!(e.message().starts_with(&want), "byte {i}: {e}");
        if i >= SNAPSHOT_HEADER_LEN {
            assert!(
                e.message().contains(&format!(
                    "offset {SNAPSHOT_HEADER_LEN}: payload checksum mismatch"
                )),
                "{e}"
            );
        }
    }
    // Truncated snapshot.
    fs::write(&snap, &good[..good.len() - 3]).unwrap();
    let e = DataDir::open(t.path(), auth()).unwrap_err();
    assert!(e.message().contains("payload length mismatch"), "{e}");
    fs::write(&snap, &good[..5]).unwrap();
    let e = DataDir::open(t.path(), auth()).unwrap_err();
    assert!(e.message().contains("offset 0: header truncated"), "{e}");
}

#[test]
fn damaged_newest_snapshot_never_falls_back_to_an_older_one() {
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = DataDir::open(t.path(), auth()).unwrap();
    d.compact(b"state one").unwrap();
    let s1 = fs::read(t.path().join("snapshot-1.bin")).unwrap();
    let j1 = fs::read(t.path().join("journal-1.log")).unwrap();
    d.compact(b"state two").unwrap();
    drop(d);
    fs::write(t.path().join("snapshot-1.bin"), &s1).unwrap();
    fs::write(t.path().join("journal-1.log"), &j1).unwrap();
    let s2 = t.path().join("snapshot-2.bin");
    let mut bad = fs::read(&s2).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    fs::write(&s2, &bad).unwrap();
    let e = DataDir::open(t.path(), auth()).unwrap_err();
    assert!(e.message().contains("snapshot-2.bin damaged"), "{e}");
    // Nothing was cleaned up on the error path.
    assert!(t.path().join("snapshot-1.bin").exists());
}

#[test]
fn second_open_is_store_in_use_until_the_first_is_dropped() {
    let t = tempfile::tempdir().unwrap();
    let (d, _) = DataDir::open(t.path(), auth()).unwrap();
    let e = DataDir::open(t.path(), auth()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StoreInUseException);
    assert_eq!(
        e.message(),
        format!(
            "data directory {} is in use by another process",
            t.path().display()
        )
    );
    drop(d);
    DataDir::open(t.path(), auth()).unwrap();
}

#[test]
fn crash_before_snapshot_rename_keeps_old_generation() {
    let t = tempfile::tempdir().unwrap();
    compacted_dir(t.path());
    // A crash mid-write of the next compaction leaves a partial .tmp (and maybe a journal tmp).
    fs::write(t.path().join("snapshot-2.tmp"), b"KCKS partial").unwrap();
    fs::write(t.path().join("journal-2.tmp"), b"").unwrap();
    let (mut d, r) = DataDir::open(t.path(), auth()).unwrap();
    assert_eq!(r.generation, 1);
    assert_eq!(
        r.snapshot.as_deref(),
        Some(&b"snapshot payload, long enough to have a middle"[..])
    );
    assert_eq!(r.records, [b"y"]);
    assert_eq!(names(t.path()), ["LOCK", "journal-1.log", "snapshot-1.bin"]);
    // And the next compaction reuses generation 2 cleanly.
    d.compact(b"s2").unwrap();
    drop(d);
    assert_eq!(
        DataDir::open(t.path(), auth())
            .unwrap()
            .1
            .snapshot
            .as_deref(),
        Some(&b"s2"[..])
    );
}

#[test]
fn a_snapshot_whose_journal_is_missing_is_refused_naming_both_and_nothing_is_changed() {
    let t = tempfile::tempdir().unwrap();
    compacted_dir(t.path());
    let j1 = fs::read(t.path().join("journal-1.log")).unwrap();
    let (mut d, _) = DataDir::open(t.path(), auth()).unwrap();
    d.compact(b"gen two state").unwrap();
    d.append(b"acknowledged after the snapshot").unwrap();
    drop(d);
    // No crash leaves this (the journal is made durable before its snapshot exists): a
    // backup that left out the journals, say. Starting a fresh journal-2 would lose the
    // record above without a word.
    fs::remove_file(t.path().join("journal-2.log")).unwrap();
    let before = contents(t.path());
    let e = DataDir::open(t.path(), auth()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    let want = format!(
        "{} has no journal-2.log: refusing to start from the snapshot alone",
        t.path().join("snapshot-2.bin").display()
    );
    assert!(e.message().contains(&want), "{e}");
    assert_eq!(
        contents(t.path()),
        before,
        "a refused open changed the directory"
    );
    // An older journal beside it covers nothing written after the snapshot: refused all the
    // same, and left in place.
    fs::write(t.path().join("journal-1.log"), &j1).unwrap();
    let before = contents(t.path());
    let e = DataDir::open(t.path(), auth()).unwrap_err();
    assert!(e.message().contains(&want), "{e}");
    assert_eq!(
        contents(t.path()),
        before,
        "a refused open changed the directory"
    );
}

/// Every file of `dir` with its bytes, sorted by name: what a refused open must leave as it
/// was.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    names(dir)
        .into_iter()
        .map(|n| {
            let bytes = fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

#[test]
fn crash_before_old_generation_removed_uses_newest() {
    let t = tempfile::tempdir().unwrap();
    compacted_dir(t.path());
    let j1 = fs::read(t.path().join("journal-1.log")).unwrap();
    let s1 = fs::read(t.path().join("snapshot-1.bin")).unwrap();
    let (mut d, _) = DataDir::open(t.path(), auth()).unwrap();
    d.compact(b"two").unwrap();
    d.append(b"after two").unwrap();
    drop(d);
    fs::write(t.path().join("journal-1.log"), &j1).unwrap();
    fs::write(t.path().join("snapshot-1.bin"), &s1).unwrap();
    let (_d, r) = DataDir::open(t.path(), auth()).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(&b"two"[..]));
    assert_eq!(r.records, [b"after two"]);
    assert_eq!(names(t.path()), ["LOCK", "journal-2.log", "snapshot-2.bin"]);
}

#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("new-data-dir");
    compacted_dir(&dir);
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for name in ["LOCK", "journal-1.log", "snapshot-1.bin"] {
        let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}
