//! Default locations, per user: where the daemon keeps its data and listens, and so where the
//! CLI looks for it. `KMSCKS_SOCKET` overrides the socket for every program.
//!
//! The default socket lives in a directory private to the user ([`default_socket_dir`]), never
//! directly in a shared directory such as `/tmp`: whoever can create a file at the socket path
//! first could otherwise pose as the daemon (and keep the real one from starting). The daemon
//! creates that directory with mode 0700 ([`create_private_dir`]); the daemon and the client
//! both refuse it ([`check_private_dir`]) when it is not a real directory owned by their
//! effective uid with no group or other access. The client also checks who serves the socket
//! (`SO_PEERCRED`, see `client`); the directory check is the first line, the peer check the
//! one that cannot be fooled.

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

/// The per-user directory of the default socket: `$XDG_RUNTIME_DIR/kmscks`, else
/// `/tmp/kmscks-<euid>`.
pub(crate) fn default_socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("kmscks"),
        None => PathBuf::from(format!("/tmp/kmscks-{}", effective_uid())),
    }
}

/// `$KMSCKS_SOCKET`, else `kmscks.sock` in the private per-user socket directory
/// (`$XDG_RUNTIME_DIR/kmscks/kmscks.sock`, else `/tmp/kmscks-<euid>/kmscks.sock`).
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

/// Creates `dir` with mode 0700 if it is missing (its parent must exist), then checks it as
/// [`check_private_dir`] does. An existing directory is never changed: one with another owner
/// or wider permissions is refused, not repaired.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
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
