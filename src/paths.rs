//! Default locations, per user: where the daemon keeps its data and listens, and so where the
//! CLI looks for it. `KMSCKS_SOCKET` overrides the socket for every program.
//!
//! The default socket lives in a directory private to the user ([`default_socket_dir`]), never
//! directly in a shared directory such as `/tmp`: whoever can create a file at the socket path
//! first could otherwise pose as the daemon (and keep the real one from starting). Nor is that
//! directory's name in a shared directory unless nothing else is at hand: another user could
//! make a directory of that name first, and the daemon would refuse it for good. The daemon
//! creates that directory with mode 0700 ([`create_private_dir`]); the daemon and the client
//! both refuse it ([`check_private_dir`]) when it is not a real directory owned by their
//! effective uid with no group or other access. The client also checks who serves the socket
//! (`SO_PEERCRED`, see `client`); the directory check is the first line, the peer check the
//! one that cannot be fooled.

use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::err;
use crate::error::Result;
use crate::peer::effective_uid;

/// Environment variable naming the daemon's socket.
pub(crate) const SOCKET_ENV: &str = "KMSCKS_SOCKET";

/// The socket's file name inside [`default_socket_dir`].
const SOCKET_FILE: &str = "kmscks.sock";

/// The mode of [`default_socket_dir`]; and the bits it must not have: group and other.
const PRIVATE_DIR_MODE: u32 = 0o700;
const NOT_PRIVATE: u32 = 0o077;

/// The per-user directory of the default socket, the first of:
/// 1. `$XDG_RUNTIME_DIR/kmscks`;
/// 2. `/run/user/<euid>/kmscks` when `/run/user/<euid>` is a directory of ours: logind's
///    runtime directory, where a process without the variable (cron, `su`, ssh without
///    pam_systemd) finds the socket a login shell's daemon made;
/// 3. `$HOME/.local/state/kmscks`: never in a directory others may write, so that no other
///    user can take the name first (a `/tmp/kmscks-<euid>` made by someone else would keep
///    the daemon and its clients refusing it for good);
/// 4. `/tmp/kmscks-<euid>`, only without a `HOME` that is a directory of ours, or when the
///    socket's path under it would be longer than a Unix socket address holds.
pub(crate) fn default_socket_dir() -> PathBuf {
    let euid = effective_uid();
    let run_user = PathBuf::from(format!("/run/user/{euid}"));
    let ours = std::fs::symlink_metadata(&run_user)
        .is_ok_and(|m| m.file_type().is_dir() && m.uid() == euid);
    // A home that is no directory of ours (`/`, `/nonexistent` of a service account, a
    // container's user without one) could not hold the directory: `/tmp` then, as before.
    let home = std::env::var_os("HOME")
        .filter(|h| std::fs::metadata(h).is_ok_and(|m| m.is_dir() && m.uid() == euid));
    socket_dir_of(
        std::env::var_os("XDG_RUNTIME_DIR"),
        ours.then_some(run_user),
        home,
        euid,
    )
}

/// The longest path a Unix socket address holds (`sun_path`, less its NUL).
const SUN_PATH_MAX: usize = 107;

/// [`default_socket_dir`] from what it reads: the environment's `XDG_RUNTIME_DIR` and `HOME`,
/// and logind's runtime directory when it is ours.
fn socket_dir_of(
    runtime: Option<OsString>,
    run_user: Option<PathBuf>,
    home: Option<OsString>,
    euid: u32,
) -> PathBuf {
    if let Some(dir) = runtime.filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("kmscks");
    }
    if let Some(dir) = run_user {
        return dir.join("kmscks");
    }
    let in_home = home
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/kmscks"))
        .filter(|d| d.join(SOCKET_FILE).as_os_str().len() <= SUN_PATH_MAX);
    in_home.unwrap_or_else(|| PathBuf::from(format!("/tmp/kmscks-{euid}")))
}

/// `$KMSCKS_SOCKET`, else `kmscks.sock` in the private per-user socket directory:
/// `$XDG_RUNTIME_DIR/kmscks/`, else `/run/user/<euid>/kmscks/` when that directory is ours,
/// else `~/.local/state/kmscks/` (`/tmp/kmscks-<euid>/` only without a home directory of ours,
/// or one too deep for a socket's address).
pub fn default_socket() -> PathBuf {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    default_socket_dir().join(SOCKET_FILE)
}

/// Whether `socket` is a file of [`default_socket_dir`], whose privacy the daemon and the
/// client then enforce.
pub(crate) fn in_default_socket_dir(socket: &Path) -> bool {
    socket.parent() == Some(default_socket_dir().as_path())
}

/// Creates `dir` with mode 0700 if it is missing (and its missing parents, `~/.local/state`
/// say, with the same mode), then checks it as [`check_private_dir`] does. An existing
/// directory is never changed: one with another owner or wider permissions is refused, not
/// repaired.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(err!(
                KMSInternalException,
                "cannot create the socket directory {}: {e}",
                dir.display()
            ))
        }
    }
    check_private_dir(dir)
}

/// Checks that `dir` is a directory (not a symlink) owned by this process's effective uid with
/// no group or other permission bits.
///
/// Errors: `UntrustedSocketException` naming the path, its owner uid and mode, and what was
/// expected; `KMSInternalException` when it cannot be inspected (e.g. it does not exist).
pub(crate) fn check_private_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        err!(
            KMSInternalException,
            "cannot inspect the socket directory {}: {e}",
            dir.display()
        )
    })?;
    let (owner, mode, me) = (meta.uid(), meta.mode() & 0o7777, effective_uid());
    let problem = if !meta.file_type().is_dir() {
        Some("is not a directory (a symlink or a file)")
    } else if owner != me {
        Some("is owned by another user")
    } else if mode & NOT_PRIVATE != 0 {
        Some("gives access to group or others")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(err!(
            UntrustedSocketException,
            "refusing the socket directory {}: it {problem} (owner uid {owner}, mode {mode:#o}); \
             it must be a directory owned by uid {me} with mode {PRIVATE_DIR_MODE:#o} (remove \
             it, or choose another socket with --socket or {SOCKET_ENV})",
            dir.display()
        )),
    }
}

/// `$XDG_DATA_HOME/kmscks`, else `~/.local/share/kmscks`, else `./kmscks-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("kmscks");
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/kmscks"),
        None => PathBuf::from("kmscks-data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("kmscks");
        create_private_dir(&dir).unwrap();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), effective_uid());
        // A second call accepts what the first made.
        create_private_dir(&dir).unwrap();
    }

    #[test]
    fn a_group_writable_or_world_readable_directory_is_refused_not_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        for mode in [0o770, 0o720, 0o705, 0o1777] {
            let dir = tmp.path().join(format!("d{mode:o}"));
            std::fs::create_dir(&dir).unwrap();
            chmod(&dir, mode);
            for e in [
                create_private_dir(&dir).unwrap_err(),
                check_private_dir(&dir).unwrap_err(),
            ] {
                assert_eq!(e.kind(), ErrorKind::UntrustedSocketException, "{e}");
                let m = e.message();
                assert!(m.contains(dir.to_str().unwrap()), "{m}");
                assert!(m.contains("group or others"), "{m}");
                assert!(m.contains(&format!("mode {mode:#o}")), "{m}");
                assert!(m.contains(&format!("owner uid {}", effective_uid())), "{m}");
            }
            assert_eq!(
                std::fs::metadata(&dir).unwrap().mode() & 0o7777,
                mode,
                "the directory was changed"
            );
        }
    }

    #[test]
    fn the_default_socket_directory_is_never_named_in_a_shared_directory_while_home_is_set() {
        let os = |s: &str| Some(OsString::from(s));
        let run_user = Some(PathBuf::from("/run/user/1000"));
        // The variable first, then logind's directory, then the home directory.
        assert_eq!(
            socket_dir_of(os("/run/user/1000"), None, os("/home/me"), 1000),
            PathBuf::from("/run/user/1000/kmscks")
        );
        assert_eq!(
            socket_dir_of(None, run_user.clone(), os("/home/me"), 1000),
            PathBuf::from("/run/user/1000/kmscks")
        );
        assert_eq!(
            socket_dir_of(os(""), None, os("/home/me"), 1000),
            PathBuf::from("/home/me/.local/state/kmscks")
        );
        // `/tmp` only without a home, or one too deep for a socket's address.
        assert_eq!(
            socket_dir_of(None, None, None, 1000),
            PathBuf::from("/tmp/kmscks-1000")
        );
        assert_eq!(
            socket_dir_of(None, None, os(""), 1000),
            PathBuf::from("/tmp/kmscks-1000")
        );
        let deep = format!("/{}", "d".repeat(80));
        assert_eq!(
            socket_dir_of(None, None, os(&deep), 1000),
            PathBuf::from("/tmp/kmscks-1000")
        );
        let fits = format!(
            "/{}",
            "d".repeat(SUN_PATH_MAX - "/.local/state/kmscks/kmscks.sock".len() - 1)
        );
        let dir = socket_dir_of(None, None, os(&fits), 1000);
        assert_eq!(dir.join(SOCKET_FILE).as_os_str().len(), SUN_PATH_MAX);
        assert!(dir.starts_with(&fits));
    }

    #[test]
    fn missing_parents_of_the_socket_directory_are_created_private_too() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(".local/state/kmscks");
        create_private_dir(&dir).unwrap();
        for d in [
            tmp.path().join(".local"),
            tmp.path().join(".local/state"),
            dir,
        ] {
            assert_eq!(
                std::fs::metadata(&d).unwrap().mode() & 0o777,
                0o700,
                "{d:?}"
            );
        }
    }

    #[test]
    fn a_symlink_to_a_private_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        create_private_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = check_private_dir(&link).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UntrustedSocketException);
        assert!(e.message().contains("not a directory"), "{e}");
    }

    #[test]
    fn a_directory_owned_by_another_uid_is_refused() {
        // Giving a directory away needs root; as another user, root's /proc/1 (0555) stands in.
        let tmp = tempfile::tempdir().unwrap();
        let dir = if effective_uid() == 0 {
            let d = tmp.path().join("theirs");
            std::fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
            std::os::unix::fs::chown(&d, Some(65534), None).unwrap();
            d
        } else {
            PathBuf::from("/proc/1")
        };
        let owner = std::fs::symlink_metadata(&dir).unwrap().uid();
        assert_ne!(owner, effective_uid());
        let mut refusals = vec![check_private_dir(&dir).unwrap_err()];
        if effective_uid() == 0 {
            refusals.push(create_private_dir(&dir).unwrap_err());
        }
        for e in refusals {
            assert_eq!(e.kind(), ErrorKind::UntrustedSocketException);
            assert!(e.message().contains("owned by another user"), "{e}");
            assert!(e.message().contains(&format!("owner uid {owner}")), "{e}");
        }
    }
}
