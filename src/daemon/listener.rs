//! The listening Unix socket: parent directory created, a stale socket file (nothing answers on
//! it) replaced, a live daemon's socket left alone (refusing to start), permission bits and
//! group set, the file removed on shutdown.

use std::io::ErrorKind as IoKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::err;
use crate::error::Result;

/// A bound listener and the socket file it owns (removed on drop).
pub(super) struct Listener {
    /// The mio listener.
    pub inner: mio::net::UnixListener,
    path: PathBuf,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("path", &self.path)
            .finish()
    }
}

impl Listener {
    /// Binds `path`, handling a stale file, with permission bits `mode` and group `gid`.
    ///
    /// Errors: `StoreInUseException` when a live daemon answers on `path`;
    /// `ValidationException` when `path` exists and is not a socket; `KMSInternalException`
    /// naming the path and OS error for any other failure.
    pub(super) fn bind(path: &Path, mode: u32, gid: Option<u32>) -> Result<Listener> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| {
                        err!(
                            KMSInternalException,
                            "cannot create the socket's directory {}: {e}",
                            parent.display()
                        )
                    })?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(err!(
                            StoreInUseException,
                            "a daemon is already listening on {}",
                            path.display()
                        ))
                    }
                    Err(e) if e.kind() == IoKind::ConnectionRefused => {
                        tracing::info!(socket = %path.display(), "removing a stale socket file");
                        std::fs::remove_file(path).map_err(|e| {
                            err!(
                                KMSInternalException,
                                "cannot remove the stale socket {}: {e}",
                                path.display()
                            )
                        })?;
                    }
                    Err(e) => {
                        return Err(err!(
                            KMSInternalException,
                            "cannot tell whether {} is live: {e}",
                            path.display()
                        ))
                    }
                }
            }
            Ok(_) => {
                return Err(err!(
                    ValidationException,
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ))
            }
            Err(e) if e.kind() == IoKind::NotFound => {}
            Err(e) => {
                return Err(err!(
                    KMSInternalException,
                    "cannot inspect {}: {e}",
                    path.display()
                ))
            }
        }
        let inner = mio::net::UnixListener::bind(path).map_err(|e| {
            err!(
                KMSInternalException,
                "cannot listen on {}: {e}",
                path.display()
            )
        })?;
        let listener = Listener {
            inner,
            path: path.to_path_buf(),
        };
        if let Some(gid) = gid {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| {
                err!(
                    KMSInternalException,
                    "cannot give {} to group {gid}: {e}",
                    path.display()
                )
            })?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
            err!(
                KMSInternalException,
                "cannot set mode {mode:#o} on {}: {e}",
                path.display()
            )
        })?;
        Ok(listener)
    }

    /// The socket file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Remove our file only: if someone replaced it, leave theirs.
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn binds_with_mode_creates_parent_and_removes_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/k.sock");
        let l = Listener::bind(&path, 0o660, None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o660);
        drop(l);
        assert!(!path.exists());
    }

    #[test]
    fn stale_is_replaced_live_is_refused_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sock");
        // A stale socket: bound, then its listener closed without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = Listener::bind(&path, 0o600, None).unwrap();
        let e = Listener::bind(&path, 0o600, None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StoreInUseException);
        assert!(path.exists(), "the live daemon's socket was removed");
        drop(live);

        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = Listener::bind(&file, 0o600, None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::ValidationException);
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}
