//! The data-directory format version: a directory written in another format (an older
//! kmscks's: format 1, before the state was split into its CloudHSM and KMS halves, or the
//! format just before this one — format 8 held no rotation schedules; format 7 held no grants; format 6's event log lines had one sequence number and no
//! unjournaled lines, and it kept no passing-state end time, backup retention policy or tags
//! on CloudHSM clusters, nor tags on backups; format 5 had no hash chain in the HSM audit
//! records and no reboot counter, kept no copy time, expiry exemption or deletion time on
//! CloudHSM backups, nor the cluster certificate on a custom key store; format 4 had no authentication tags on
//! journal frames and snapshots, and kept HSM password hashes unwrapped) is refused at open
//! with a
//! `StorageException` that names the file and both format numbers (the version is checked
//! before any tag, so an older file is reported as such, not as damage).

use std::fs;
use std::path::{Path, PathBuf};

use kmscks::store::journal::FORMAT_VERSION as STATE_FORMAT;
use kmscks::{ErrorKind, Kms};

/// The only file in `dir` whose name starts with `prefix`.
fn only_file(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

/// Rewrites the format version in the header of `file` (whose header checksum covers the
/// `crc_over` bytes before it), keeping the header checksum valid.
fn set_version(file: &Path, version: u32, crc_over: usize) {
    let mut bytes = fs::read(file).unwrap();
    bytes[4..8].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..crc_over]);
    bytes[crc_over..crc_over + 4].copy_from_slice(&crc.to_le_bytes());
    fs::write(file, bytes).unwrap();
}

fn refused(dir: &Path, file: &Path) {
    refused_as(dir, file, 1);
}

fn refused_as(dir: &Path, file: &Path, old: u32) {
    let e = Kms::open(dir).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    let message = e.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains(&format!("format {old}")), "{message}");
    assert!(
        message.contains(&format!("format {STATE_FORMAT}")),
        "{message}"
    );
}

#[test]
fn a_snapshot_in_an_older_format_is_refused_naming_the_file_and_both_formats() {
    let t = tempfile::tempdir().unwrap();
    drop(Kms::open(t.path()).unwrap());
    let snapshot = only_file(t.path(), "snapshot-");
    set_version(&snapshot, 1, 28);
    refused(t.path(), &snapshot);
}

#[test]
fn a_journal_in_an_older_format_is_refused_naming_the_file_and_both_formats() {
    let t = tempfile::tempdir().unwrap();
    drop(Kms::open(t.path()).unwrap());
    let journal = only_file(t.path(), "journal-");
    set_version(&journal, 1, 16);
    refused(t.path(), &journal);
}

#[test]
fn a_snapshot_of_the_previous_format_is_refused_naming_both_formats() {
    let t = tempfile::tempdir().unwrap();
    drop(Kms::open(t.path()).unwrap());
    let snapshot = only_file(t.path(), "snapshot-");
    set_version(&snapshot, STATE_FORMAT - 1, 28);
    refused_as(t.path(), &snapshot, STATE_FORMAT - 1);
}

#[test]
fn a_directory_in_the_current_format_opens_again() {
    let t = tempfile::tempdir().unwrap();
    drop(Kms::open(t.path()).unwrap());
    drop(Kms::open(t.path()).unwrap());
}
