//! Which directories the store trusts, and how it creates its own durably.
//!
//! Nothing in a data directory is trusted unless this process's effective uid owns it
//! ([`check_owned_dir`]). That is not enough on its own: every file operation goes by path,
//! so whoever may write to a directory *above* the data directory can rename the data
//! directory away between two operations and put one of their own in its place — a journal
//! rotated into their directory, acknowledged records they then delete. So the path to it is
//! checked as well ([`check_ancestors`], as OpenSSH's `StrictModes` checks a home directory):
//! every directory above it must be owned by root or by us, and not writable by group or
//! others unless it has the sticky bit (as `/tmp` has: there only an entry's owner may rename
//! or remove it). For the same reason every symbolic link on the way must be owned by root or
//! by us (in a sticky directory its owner may still replace it), and the path it leads to is
//! checked in turn.
//!
//! A directory the store creates is made durable in its parent ([`create_private_dir`]): each
//! level created is followed by an fsync of the directory that holds it, and the target's own
//! entry is made durable even when an earlier run created it and crashed before its fsync.

use std::fs::{self, DirBuilder, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{io_error, sync_dir};
use crate::{err, Result};

/// Group and other write bits: with either, another user could plant, replace or remove files
/// (a symlink where a temporary file will be written, a snapshot of their own).
const FOREIGN_WRITE: u32 = 0o022;

/// The sticky bit: in a directory that has it, only an entry's owner (or the directory's) may
/// rename or remove the entry.
const STICKY: u32 = 0o1000;

/// Refuses `dir` unless it is a real directory (not a symlink) owned by this process's
/// effective uid and not writable by group or others: nothing in a data directory is trusted
/// unless we own it. `StorageException` naming the path, its owner and mode.
pub(crate) fn check_owned_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).map_err(|e| io_error("inspect directory", dir, e))?;
    let kind = (meta.file_type().is_dir(), "is not a directory (a symlink or a file)");
    let Some(problem) = not_ours(&meta, kind) else {
        return Ok(());
    };
    Err(err!(
        StorageException,
        "data directory {} {problem}; kmscks trusts nothing in a directory it does not own",
        dir.display()
    ))
}

/// Refuses the store file `file` (opened at `path`; `what` it is, "journal" or "snapshot")
/// unless it is a regular file owned by this process's effective uid and not writable by group
/// or others. Checked on the open descriptor, so the file checked is the file read. A data
/// directory group or others may enter (mode 0750, 0755) is allowed; a file in it they may
/// write is not: whoever could write a journal could cut acknowledged records off its end (a
/// revocation undone), which its records' tags cannot show, or rewrite a snapshot while it is
/// mapped, after its tag was checked. `StorageException` naming the file, its owner and mode.
pub(crate) fn check_owned_file(file: &fs::File, path: &Path, what: &str) -> Result<()> {
    let meta = file
        .metadata()
        .map_err(|e| io_error(&format!("inspect {what}"), path, e))?;
    let Some(problem) = not_ours(&meta, (meta.file_type().is_file(), "is not a regular file"))
    else {
        return Ok(());
    };
    Err(err!(
        StorageException,
        "{what} {} {problem}; kmscks trusts nothing in its data directory it does not own",
        path.display()
    ))
}

/// What keeps an entry of the data directory from being ours alone, if anything: not of its
/// kind (`kind`: whether it is, and what to say when not), owned by another uid, or writable
/// by group or others.
fn not_ours(meta: &Metadata, (of_its_kind, not_of_its_kind): (bool, &str)) -> Option<String> {
    let (owner, mode, me) = (meta.uid(), meta.mode() & 0o7777, crate::peer::effective_uid());
    if !of_its_kind {
        Some(not_of_its_kind.to_owned())
    } else if owner != me {
        Some(format!("is owned by uid {owner}, not by uid {me} who runs kmscks"))
    } else if mode & FOREIGN_WRITE != 0 {
        Some(format!(
            "has mode {mode:04o}: group or others may write to it (chmod go-w it)"
        ))
    } else {
        None
    }
}

/// Refuses `dir` when an entry above it (on the path as given, or on the paths its symbolic
/// links lead to) lets another user replace it: a directory owned by neither root nor this
/// process's effective uid, or one group or others may write to without the sticky bit; or a
/// symbolic link owned by neither (its owner may re-point it wherever the directory holding
/// it has the sticky bit, and may replace it anyway wherever they may write that directory).
/// `StorageException` naming the data directory, the entry above it, its owner (and mode).
/// Entries that do not exist yet are not checked (the store creates them, mode 0700).
pub(crate) fn check_ancestors(dir: &Path) -> Result<()> {
    let me = crate::peer::effective_uid();
    let abs = std::path::absolute(dir).map_err(|e| io_error("resolve the path of", dir, e))?;
    // The path as given, and, through every link on it, the paths the links lead to. The data
    // directory itself is left to `check_owned_dir` (which refuses a link there outright).
    let mut links = 0;
    let Some(deepest) = check_entries(dir, &abs, 1, me, &mut links)? else {
        return Ok(());
    };
    // The path its links lead to, once all are resolved: the deepest existing entry above,
    // and every directory above that (already checked on the way; checked again as resolved,
    // which is what every later operation goes through).
    let real = fs::canonicalize(&deepest).map_err(|e| io_error("resolve", &deepest, e))?;
    for above in real.ancestors() {
        let meta = fs::metadata(above).map_err(|e| io_error("inspect directory", above, e))?;
        if let Some(problem) = foreign(&meta, me) {
            return Err(refuse_above(dir, above, &problem, me));
        }
    }
    Ok(())
}

/// How many symbolic links [`check_entries`] follows for one data directory before it gives
/// up: Linux's own limit for resolving one path (`MAXSYMLINKS`).
const MAX_LINKS: u32 = 40;

/// Checks every existing entry of `path` and of its ancestors, skipping the first `skip` of
/// them (`path` itself with 1), for [`check_ancestors`] of the data directory `dir`: a
/// directory as [`foreign`] judges it; a symbolic link by its owner alone (its mode means
/// nothing), then the path it leads to, entry by entry, the same way (`links` counts the
/// links followed, against [`MAX_LINKS`]). Why a link's owner: in a directory with the sticky
/// bit (`/tmp`, a `root:team 1770` team directory) the directory is rightly trusted, yet a
/// link in it may still be re-pointed by its owner, who would then receive the journals,
/// snapshots and key files written through it — and could put back an older journal, undoing
/// an acknowledged DisableKey. Returns the deepest existing entry checked, if any.
fn check_entries(
    dir: &Path,
    path: &Path,
    skip: usize,
    me: u32,
    links: &mut u32,
) -> Result<Option<PathBuf>> {
    let mut deepest = None;
    for above in path.ancestors().skip(skip) {
        let meta = match fs::symlink_metadata(above) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("inspect directory", above, e)),
            Ok(meta) => meta,
        };
        deepest.get_or_insert_with(|| above.to_path_buf());
        if !meta.file_type().is_symlink() {
            if let Some(problem) = foreign(&meta, me) {
                return Err(refuse_above(dir, above, &problem, me));
            }
            continue;
        }
        let owner = meta.uid();
        if owner != 0 && owner != me {
            return Err(err!(
                StorageException,
                "data directory {} lies under {}, which is a symbolic link owned by uid \
                 {owner}: its owner could point it elsewhere and have the data directory's \
                 journals, snapshots and keys written where they choose; kmscks trusts nothing \
                 in a directory it does not own (give the data directory by a path without \
                 that link, or through a link owned by root or uid {me})",
                dir.display(),
                above.display()
            ));
        }
        *links += 1;
        if *links > MAX_LINKS {
            return Err(err!(
                StorageException,
                "data directory {} lies under {}: more than {MAX_LINKS} symbolic links were \
                 followed checking the path to it (a loop of links?)",
                dir.display(),
                above.display()
            ));
        }
        let target = fs::read_link(above).map_err(|e| io_error("read symbolic link", above, e))?;
        // A relative target is resolved from the directory holding the link; an absolute one
        // replaces it (`join`).
        check_entries(dir, &parent_of(above).join(target), 0, me, links)?;
    }
    Ok(deepest)
}

/// The refusal of data directory `dir` because of the directory `above` it, which `problem`
/// describes (the uid `me` runs kmscks).
fn refuse_above(dir: &Path, above: &Path, problem: &str, me: u32) -> crate::KmsError {
    err!(
        StorageException,
        "data directory {} lies under {}, which {problem}: another user could move the \
         data directory away and put their own in its place; kmscks trusts nothing in a \
         directory it does not own (choose a data directory whose every parent is owned by \
         root or uid {me} and not writable by group or others, or has the sticky bit as \
         /tmp has)",
        dir.display(),
        above.display()
    )
}

/// What lets another user than `me` replace an entry of the directory `meta` describes.
fn foreign(meta: &Metadata, me: u32) -> Option<String> {
    let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
    if owner != 0 && owner != me {
        Some(format!("is owned by uid {owner}"))
    } else if mode & FOREIGN_WRITE != 0 && mode & STICKY == 0 {
        Some(format!(
            "has mode {mode:04o}: group or others may write to it, and it has no sticky bit"
        ))
    } else {
        None
    }
}

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist, each level made
/// durable in the directory holding it; makes `dir`'s own entry durable in its parent even if
/// it existed (an earlier run may have crashed before its fsync); then checks it as
/// [`check_owned_dir`] does (an existing directory is checked, never repaired).
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let abs = std::path::absolute(dir).map_err(|e| io_error("resolve the path of", dir, e))?;
    let mut missing: Vec<&Path> = Vec::new();
    for level in abs.ancestors() {
        match fs::symlink_metadata(level) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(level),
            _ => break,
        }
    }
    let target_created = missing.first() == Some(&abs.as_path());
    for level in missing.iter().rev() {
        match DirBuilder::new().mode(0o700).create(level) {
            // Created meanwhile by another thread or process: checked below all the same.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error("create directory", level, e)),
            Ok(()) => {}
        }
        sync_dir(&parent_of(level))?;
    }
    if !target_created {
        sync_dir(&parent_of(&abs))?;
    }
    check_owned_dir(dir)
}

/// The data directory's creation: refuses an untrusted path before creating anything
/// ([`check_ancestors`]), creates what is missing ([`create_private_dir`]), then checks the
/// whole path again. The second check is what makes the first one hold: a level missing at the
/// first was not checked, and another user may have made it in between (our `mkdir` then
/// finds it and goes on), with their own mode or owner, to swap our directory out of it later.
/// Once every level exists and passes, no other user can change one.
pub(crate) fn create_trusted_dir(dir: &Path) -> Result<()> {
    create_trusted_dir_with(dir, || {})
}

/// [`create_trusted_dir`], running `between` after the first check and before the creation:
/// where another user's `mkdir` may land, which a test puts there.
fn create_trusted_dir_with(dir: &Path, between: impl FnOnce()) -> Result<()> {
    check_ancestors(dir)?;
    between();
    create_private_dir(dir)?;
    check_ancestors(dir)
}

/// The directory holding `path` (absolute): its parent, or `/` for the root itself.
fn parent_of(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new("/")).to_path_buf()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::error::ErrorKind;
    use crate::store::synced;

    fn mkdir_mode(path: &Path, mode: u32) {
        fs::create_dir(path).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_data_directory_under_a_parent_others_may_write_is_refused_and_not_created() {
        let t = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o775, 0o757] {
            let shared = t.path().join(format!("shared-{mode:o}"));
            mkdir_mode(&shared, mode);
            let data = shared.join("data");
            let e = crate::store::DataDir::lock(&data).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
            let text = e.to_string();
            assert!(text.contains(&shared.display().to_string()), "{text}");
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert!(!data.exists(), "nothing is created under an untrusted parent");
        }
    }

    #[test]
    fn a_level_another_user_made_between_the_check_and_the_mkdir_is_refused_after_creation() {
        let t = tempfile::tempdir().unwrap();
        let level = t.path().join("proj");
        let data = level.join("data");
        // Another user's `mkdir proj; chmod 777 proj` lands after the first check (which
        // passes: `proj` does not exist yet) and before our `mkdir`, which then accepts it.
        let e = create_trusted_dir_with(&data, || mkdir_mode(&level, 0o777)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
        assert!(e.to_string().contains("proj, which has mode 0777"), "{e}");
    }

    #[test]
    fn every_missing_level_of_a_new_data_directory_is_created_private_and_trusted() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("a/b/data");
        create_trusted_dir(&data).unwrap();
        for level in [t.path().join("a"), t.path().join("a/b"), data] {
            let mode = fs::metadata(&level).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", level.display());
        }
    }

    #[test]
    fn a_parent_others_may_write_with_the_sticky_bit_is_trusted() {
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("sticky");
        mkdir_mode(&shared, 0o1777);
        let data = shared.join("data");
        crate::store::DataDir::lock(&data).unwrap();
        assert!(data.is_dir());
    }

    #[test]
    fn a_link_on_the_path_is_checked_where_it_leads() {
        let t = tempfile::tempdir().unwrap();
        let open = t.path().join("open");
        mkdir_mode(&open, 0o777);
        mkdir_mode(&open.join("real"), 0o700);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(open.join("real"), &link).unwrap();
        let e = check_ancestors(&link.join("data")).unwrap_err();
        assert!(e.to_string().contains("open, which has mode 0777"), "{e}");
        // The same chain without the writable directory is trusted.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        check_ancestors(&link.join("data")).unwrap();
    }

    #[test]
    fn a_link_on_the_path_owned_by_another_user_is_refused_naming_it_and_its_owner() {
        if crate::peer::effective_uid() != 0 {
            eprintln!("skipped: giving a symbolic link to another uid needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        // A team directory: others may write to it, but only an entry's owner may replace
        // the entry, so the directory is trusted; the link in it is its owner's to re-point.
        let team = t.path().join("team");
        mkdir_mode(&team, 0o1777);
        let victim = t.path().join("victim");
        mkdir_mode(&victim, 0o700);
        let link = team.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        let e = crate::store::DataDir::lock(&link.join("data")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
        let text = e.to_string();
        let want = format!("{}, which is a symbolic link owned by uid 65534", link.display());
        assert!(text.contains(&want), "{text}");
        assert!(!victim.join("data").exists(), "nothing is created through the link");
    }

    #[test]
    fn a_link_on_the_path_owned_by_us_in_a_sticky_directory_is_trusted() {
        let t = tempfile::tempdir().unwrap();
        let team = t.path().join("team");
        mkdir_mode(&team, 0o1777);
        let mine = t.path().join("mine");
        mkdir_mode(&mine, 0o700);
        let link = team.join("link");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        crate::store::DataDir::lock(&link.join("data")).unwrap();
        assert!(mine.join("data").is_dir());
    }

    #[test]
    fn a_link_reached_through_another_link_is_checked_for_its_owner_too() {
        if crate::peer::effective_uid() != 0 {
            eprintln!("skipped: giving a symbolic link to another uid needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let team = t.path().join("team");
        mkdir_mode(&team, 0o1777);
        let mine = t.path().join("mine");
        mkdir_mode(&mine, 0o700);
        // Ours, leading to theirs (relative, so resolved from the directory holding it),
        // leading to a private directory: the path as given shows only our link.
        let theirs = team.join("theirs");
        std::os::unix::fs::symlink(&mine, &theirs).unwrap();
        std::os::unix::fs::lchown(&theirs, Some(65534), Some(65534)).unwrap();
        let ours = t.path().join("ours");
        std::os::unix::fs::symlink("team/theirs", &ours).unwrap();
        let e = check_ancestors(&ours.join("data")).unwrap_err();
        let want = "theirs, which is a symbolic link owned by uid 65534";
        assert!(e.to_string().contains(want), "{e}");
    }

    #[test]
    fn a_loop_of_links_on_the_path_is_refused_not_followed_forever() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = check_ancestors(&a.join("data")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
        assert!(e.to_string().contains("more than 40 symbolic links"), "{e}");
    }

    #[test]
    fn a_parent_owned_by_another_user_is_refused() {
        if crate::peer::effective_uid() != 0 {
            eprintln!("skipped: giving a directory to another uid needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let theirs = t.path().join("theirs");
        mkdir_mode(&theirs, 0o755);
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let e = crate::store::DataDir::lock(&theirs.join("data")).unwrap_err();
        assert!(e.to_string().contains("is owned by uid 65534"), "{e}");
    }

    #[test]
    fn every_level_created_is_made_durable_in_the_directory_holding_it() {
        let t = tempfile::tempdir().unwrap();
        let top = std::path::absolute(t.path()).unwrap();
        let data = top.join("a/b/data");
        synced::take();
        create_private_dir(&data).unwrap();
        let got = synced::take();
        for parent in [top.clone(), top.join("a"), top.join("a/b")] {
            assert!(got.contains(&parent), "{} not fsynced: {got:?}", parent.display());
        }
        // Existing already (an earlier run may have crashed before its fsync): its entry is
        // made durable again.
        create_private_dir(&data).unwrap();
        assert_eq!(synced::take(), vec![top.join("a/b")]);
    }
}
