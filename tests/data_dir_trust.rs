//! Nothing in a data directory is trusted unless this process's uid owns it: a directory
//! another user may write, a symlink in place of the directory or another user's symlink on
//! the path to it, a planted symlink where a temporary file will be written, a key file of
//! another owner, a journal or snapshot another user may write — each is refused or defused,
//! and the refusal names the path and what is wrong with it.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use kmscks::api::kms::CreateKeyRequest;
use kmscks::{ErrorKind, Kms, KmsConfig};
use support::Need;

#[test]
fn a_data_directory_group_or_others_may_write_is_refused_naming_its_mode() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    drop(Kms::open(&dir).unwrap());
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
    let e = Kms::open(&dir).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    assert!(
        e.message().contains("0770") && e.message().contains("data"),
        "{e}"
    );
    // Nothing was lost: made private again, it opens.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    Kms::open(&dir).unwrap();
}

#[test]
fn a_symlink_in_place_of_the_data_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let real = t.path().join("real");
    drop(Kms::open(&real).unwrap());
    let link = t.path().join("link");
    symlink(&real, &link).unwrap();
    let e = Kms::open(&link).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    assert!(e.message().contains("not a directory"), "{e}");
}

#[test]
fn a_symlink_in_place_of_the_data_directory_is_refused_with_a_trailing_slash_or_dot() {
    let t = tempfile::tempdir().unwrap();
    let real = t.path().join("real");
    drop(Kms::open(&real).unwrap());
    let link = t.path().join("link");
    symlink(&real, &link).unwrap();
    // `lstat` of `link/` follows the link: the name as its components give it is checked.
    for given in [
        format!("{}/", link.display()),
        format!("{}/.", link.display()),
    ] {
        let e = Kms::open(&given).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageException, "{given}: {e}");
        assert!(e.message().contains("not a directory"), "{given}: {e}");
    }
    // A real directory given so opens as itself.
    drop(Kms::open(format!("{}/", real.display())).unwrap());
    Kms::open(format!("{}/.", real.display())).unwrap();
}

/// A directory others may write to with the sticky bit, as `/tmp` or a `root:team 1770` team
/// directory: trusted, since only an entry's owner may replace the entry.
fn sticky_dir(path: &std::path::Path) {
    fs::create_dir(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o1777)).unwrap();
}

#[test]
fn a_symlink_on_the_path_owned_by_another_user_is_refused_naming_it_and_its_owner() {
    if !support::runnable(&[Need::Root]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let team = t.path().join("team");
    sticky_dir(&team);
    let victim = t.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
    // Another user's link in the team directory: they may re-point it at any time, and the
    // journals, snapshots and key files written through it would land in their directory.
    let link = team.join("link");
    symlink(&victim, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
    let e = Kms::open(link.join("data")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    let want = format!(
        "{}, which is a symbolic link owned by uid 65534",
        link.display()
    );
    assert!(e.message().contains(&want), "{e}");
    assert!(
        !victim.join("data").exists(),
        "nothing is created through the link"
    );
    // Given by a path without the link, the same directory opens.
    Kms::open(victim.join("data")).unwrap();
}

#[test]
fn a_symlink_on_the_path_owned_by_us_is_followed() {
    let t = tempfile::tempdir().unwrap();
    let team = t.path().join("team");
    sticky_dir(&team);
    let mine = t.path().join("mine");
    fs::create_dir(&mine).unwrap();
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o700)).unwrap();
    let link = team.join("link");
    symlink(&mine, &link).unwrap();
    let kms = Kms::open(link.join("data")).unwrap();
    kms.create_key(&CreateKeyRequest::default()).unwrap();
    drop(kms);
    assert!(mine.join("data/keys").is_dir());
}

#[test]
fn a_planted_symlink_at_a_temporary_file_is_removed_not_followed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let victim = t.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let config = || KmsConfig {
        compact_after_bytes: 1,
        ..KmsConfig::default()
    };
    let kms = Kms::open_with(&dir, config()).unwrap();
    // The next journals and snapshots the commits below rotate to and write.
    for g in 1..8 {
        for name in [format!("journal-{g}.tmp"), format!("snapshot-{g}.tmp")] {
            let _ = symlink(&victim, dir.join(name));
        }
    }
    for _ in 0..4 {
        kms.create_key(&CreateKeyRequest::default()).unwrap();
    }
    drop(kms);
    let links_left = fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_symlink())
        .count();
    assert!(
        links_left < 14,
        "the commits wrote where links were planted"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    let reopened = Kms::open_with(&dir, config()).unwrap();
    assert_eq!(
        reopened.list_keys(&Default::default()).unwrap().keys.len(),
        4
    );
}

/// The store's files in `dir` whose names start with `prefix`.
fn store_files(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    files
}

#[test]
fn a_journal_or_snapshot_group_or_others_may_write_is_refused_naming_it_and_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let config = || KmsConfig {
        compact_after_bytes: 1,
        ..KmsConfig::default()
    };
    let kms = Kms::open_with(&dir, config()).unwrap();
    for _ in 0..3 {
        kms.create_key(&CreateKeyRequest::default()).unwrap();
    }
    drop(kms);
    // A directory others may enter (allowed) holding a file they may write (refused): whoever
    // could write a journal could cut acknowledged records off its end.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let journal = store_files(&dir, "journal-").pop().expect("a journal");
    let snapshot = store_files(&dir, "snapshot-").pop().expect("a snapshot");
    for (file, mode, shown) in [(&journal, 0o620, "0620"), (&snapshot, 0o602, "0602")] {
        fs::set_permissions(file, fs::Permissions::from_mode(mode)).unwrap();
        let e = Kms::open_with(&dir, config()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            e.message().contains(&*name) && e.message().contains(shown),
            "{e}"
        );
        fs::set_permissions(file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Nothing was lost: made private again, everything opens.
    let reopened = Kms::open_with(&dir, config()).unwrap();
    assert_eq!(
        reopened.list_keys(&Default::default()).unwrap().keys.len(),
        3
    );
}

#[test]
fn a_data_directory_or_key_file_owned_by_another_user_is_refused() {
    if !support::runnable(&[Need::Root]) {
        return;
    }
    let chown = |path: &std::path::Path, uid: u32| {
        std::os::unix::fs::chown(path, Some(uid), None).unwrap();
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    drop(Kms::open(&dir).unwrap());

    chown(&dir, 65534);
    let e = Kms::open(&dir).unwrap_err();
    assert!(e.message().contains("owned by uid 65534"), "{e}");
    chown(&dir, 0);

    let master = fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "key"))
        .expect("a key file");
    chown(&master, 65534);
    let e = Kms::open(&dir).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    assert!(
        e.message().contains("owned by uid 65534") && e.message().contains(".key"),
        "{e}"
    );
    chown(&master, 0);

    let journal = store_files(&dir, "journal-").pop().expect("a journal");
    chown(&journal, 65534);
    let e = Kms::open(&dir).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
    assert!(
        e.message().contains("owned by uid 65534") && e.message().contains("journal-"),
        "{e}"
    );
    chown(&journal, 0);
    Kms::open(&dir).unwrap();
}
