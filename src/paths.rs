//! Default locations, per user: where the daemon keeps its data and listens, and so where the
//! CLI looks for it. `KMSCKS_SOCKET` overrides the socket for every program.
//!
//! The default socket lives in a directory private to the user ([`socket_dirs`]), never
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
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::err;
use crate::error::Result;
use crate::peer::effective_uid;

/// Environment variable naming the daemon's socket.
pub(crate) const SOCKET_ENV: &str = "KMSCKS_SOCKET";

/// The socket's file name inside each of [`socket_dirs`].
const SOCKET_FILE: &str = "kmscks.sock";

/// The mode of [`socket_dirs`]; and the bits it must not have: group and other.
const PRIVATE_DIR_MODE: u32 = 0o700;
const NOT_PRIVATE: u32 = 0o077;

/// The per-user directories a default socket may be in, most preferred first:
/// 1. `$XDG_RUNTIME_DIR/kmscks`;
/// 2. `/run/user/<euid>/kmscks` when `/run/user/<euid>` is a directory of ours: logind's
///    runtime directory, where a process without the variable (cron, `su`, ssh without
///    pam_systemd) finds the socket a login shell's daemon made;
/// 3. `$HOME/.local/state/kmscks`: never in a directory others may write, so that no other
///    user can take the name first (a `/tmp/kmscks-<euid>` made by someone else would keep
///    the daemon and its clients refusing it for good);
/// 4. `/tmp/kmscks-<euid>`, the daemon's only without a `HOME` that is a directory of ours,
///    or when the socket's path under it would be longer than a Unix socket address holds.
///
/// A daemon listens in the first ([`listen_socket`]). Which is first depends on when it is
/// asked (logind makes `/run/user/<euid>` at the user's first login, and a process may or may
/// not have the variable), so a client looks in each in turn ([`default_socket`]).
fn socket_dirs() -> Vec<PathBuf> {
    let euid = effective_uid();
    let run_user = PathBuf::from(format!("/run/user/{euid}"));
    let ours = std::fs::symlink_metadata(&run_user)
        .is_ok_and(|m| m.file_type().is_dir() && m.uid() == euid);
    // A home that is no directory of ours (`/`, `/nonexistent` of a service account, a
    // container's user without one) could not hold the directory: `/tmp` then, as before.
    let home = std::env::var_os("HOME")
        .filter(|h| std::fs::metadata(h).is_ok_and(|m| m.is_dir() && m.uid() == euid));
    socket_dirs_of(
        std::env::var_os("XDG_RUNTIME_DIR"),
        ours.then_some(run_user),
        home,
        euid,
    )
}

/// The longest path a Unix socket address holds (`sun_path`, less its NUL).
const SUN_PATH_MAX: usize = 107;

/// [`socket_dirs`] from what it reads: the environment's `XDG_RUNTIME_DIR` and `HOME`, and
/// logind's runtime directory when it is ours. Never empty: `/tmp/kmscks-<euid>` is always
/// last; no directory is named twice.
fn socket_dirs_of(
    runtime: Option<OsString>,
    run_user: Option<PathBuf>,
    home: Option<OsString>,
    euid: u32,
) -> Vec<PathBuf> {
    let runtime = runtime
        .filter(|p| !p.is_empty())
        .map(|dir| PathBuf::from(dir).join("kmscks"));
    let in_home = home
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/kmscks"))
        .filter(|d| d.join(SOCKET_FILE).as_os_str().len() <= SUN_PATH_MAX);
    let tmp = PathBuf::from(format!("/tmp/kmscks-{euid}"));
    let mut dirs: Vec<PathBuf> = Vec::with_capacity(4);
    for dir in [
        runtime,
        run_user.map(|d| d.join("kmscks")),
        in_home,
        Some(tmp),
    ]
    .into_iter()
    .flatten()
    {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// `$KMSCKS_SOCKET`, else `kmscks.sock` in the first of the per-user socket directories
/// ([`socket_dirs`]): where a daemon started now listens unless told otherwise.
pub(crate) fn listen_socket() -> PathBuf {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    first_dir(socket_dirs()).join(SOCKET_FILE)
}

/// The first of `dirs`, which [`socket_dirs_of`] never leaves empty.
fn first_dir(dirs: Vec<PathBuf>) -> PathBuf {
    dirs.into_iter()
        .next()
        .expect("the socket directories always end with /tmp's")
}

/// `$KMSCKS_SOCKET`, else `kmscks.sock` in the first per-user socket directory that holds a
/// socket by that name, in the order `$XDG_RUNTIME_DIR/kmscks/`, `/run/user/<euid>/kmscks/`
/// (when that directory is ours), `~/.local/state/kmscks/`, `/tmp/kmscks-<euid>/`; with none,
/// where a daemon started now would listen. So a client finds a daemon started before the
/// user's first login, or with another environment, as long as it listens at a default path.
/// Whichever it is, the client checks the directory's privacy and who serves the socket.
pub fn default_socket() -> PathBuf {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    first_holding_socket(socket_dirs())
}

/// `kmscks.sock` in the first of `dirs` that holds a socket by that name, else in the first.
fn first_holding_socket(dirs: Vec<PathBuf>) -> PathBuf {
    let found = dirs
        .iter()
        .map(|d| d.join(SOCKET_FILE))
        .find(|s| std::fs::symlink_metadata(s).is_ok_and(|m| m.file_type().is_socket()));
    found.unwrap_or_else(|| first_dir(dirs).join(SOCKET_FILE))
}

/// Whether `socket` is a file of one of the per-user socket directories ([`socket_dirs`]),
/// whose privacy the daemon and the client then enforce.
pub(crate) fn in_default_socket_dir(socket: &Path) -> bool {
    socket
        .parent()
        .is_some_and(|parent| socket_dirs().iter().any(|d| d == parent))
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

    /// The daemon's directory: the first of [`socket_dirs_of`].
    fn first_of(
        runtime: Option<OsString>,
        run_user: Option<PathBuf>,
        home: Option<OsString>,
    ) -> PathBuf {
        first_dir(socket_dirs_of(runtime, run_user, home, 1000))
    }

    #[test]
    fn the_default_socket_directory_is_never_named_in_a_shared_directory_while_home_is_set() {
        let os = |s: &str| Some(OsString::from(s));
        let run_user = Some(PathBuf::from("/run/user/1000"));
        // The variable first, then logind's directory, then the home directory.
        assert_eq!(
            first_of(os("/run/user/1000"), None, os("/home/me")),
            PathBuf::from("/run/user/1000/kmscks")
        );
        assert_eq!(
            first_of(None, run_user.clone(), os("/home/me")),
            PathBuf::from("/run/user/1000/kmscks")
        );
        assert_eq!(
            first_of(os(""), None, os("/home/me")),
            PathBuf::from("/home/me/.local/state/kmscks")
        );
        // `/tmp` only without a home, or one too deep for a socket's address.
        assert_eq!(
            first_of(None, None, None),
            PathBuf::from("/tmp/kmscks-1000")
        );
        assert_eq!(
            first_of(None, None, os("")),
            PathBuf::from("/tmp/kmscks-1000")
        );
        let deep = format!("/{}", "d".repeat(80));
        assert_eq!(
            first_of(None, None, os(&deep)),
            PathBuf::from("/tmp/kmscks-1000")
        );
        let fits = format!(
            "/{}",
            "d".repeat(SUN_PATH_MAX - "/.local/state/kmscks/kmscks.sock".len() - 1)
        );
        let dir = first_of(None, None, os(&fits));
        assert_eq!(dir.join(SOCKET_FILE).as_os_str().len(), SUN_PATH_MAX);
        assert!(dir.starts_with(&fits));
    }

    #[test]
    fn every_default_socket_directory_is_listed_once_in_order_of_preference() {
        let os = |s: &str| Some(OsString::from(s));
        let all = socket_dirs_of(
            os("/xdg"),
            Some(PathBuf::from("/run/user/1000")),
            os("/home/me"),
            1000,
        );
        let expected = [
            "/xdg/kmscks",
            "/run/user/1000/kmscks",
            "/home/me/.local/state/kmscks",
            "/tmp/kmscks-1000",
        ];
        assert_eq!(all, expected.map(PathBuf::from));
        // A variable naming logind's directory names it once.
        let same = socket_dirs_of(
            os("/run/user/1000"),
            Some(PathBuf::from("/run/user/1000")),
            None,
            1000,
        );
        assert_eq!(
            same,
            ["/run/user/1000/kmscks", "/tmp/kmscks-1000"].map(PathBuf::from)
        );
    }

    #[test]
    fn a_client_finds_the_socket_in_a_later_directory_when_the_first_holds_none() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["session", "home", "tmp"]
            .iter()
            .map(|d| tmp.path().join(d))
            .collect();
        for d in &dirs {
            create_private_dir(d).unwrap();
        }
        // Nothing listens anywhere: the first directory, where a daemon would listen.
        assert_eq!(
            first_holding_socket(dirs.clone()),
            dirs[0].join(SOCKET_FILE)
        );
        // A plain file by that name is no socket.
        std::fs::write(dirs[0].join(SOCKET_FILE), b"").unwrap();
        let _home = std::os::unix::net::UnixListener::bind(dirs[1].join(SOCKET_FILE)).unwrap();
        let _tmp = std::os::unix::net::UnixListener::bind(dirs[2].join(SOCKET_FILE)).unwrap();
        assert_eq!(
            first_holding_socket(dirs.clone()),
            dirs[1].join(SOCKET_FILE)
        );
        // With one in the first, the first.
        std::fs::remove_file(dirs[0].join(SOCKET_FILE)).unwrap();
        let _session = std::os::unix::net::UnixListener::bind(dirs[0].join(SOCKET_FILE)).unwrap();
        assert_eq!(
            first_holding_socket(dirs.clone()),
            dirs[0].join(SOCKET_FILE)
        );
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
