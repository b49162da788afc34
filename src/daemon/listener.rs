//! The listening Unix socket: parent directory created (the per-user default one private, see
//! `crate::paths`), a stale socket file (nothing answers on it) replaced, a live daemon's socket
//! left alone (refusing to start; so is one whose listener takes no connection within
//! [`LIVE_PROBE`]), the file removed on shutdown.
//!
//! The socket appears at its path with its final mode and group from the start. It is bound in
//! a fresh staging directory of mode 0700 beside it (where nobody else can reach it), given its
//! mode and group there, then hard-linked into place (`link` fails rather than replace a file
//! that appeared meanwhile) and the staging name removed. Those steps go through a descriptor
//! of the staging directory, not its path, so that a parent another user may write cannot
//! have them act on a directory of theirs ([`Staging`]). Why not set the umask around `bind`:
//! the umask is per process, and the daemon is a library too (tests run daemons on threads of
//! one process); narrowing it for a moment would change the mode of whatever another thread
//! creates in that moment (a directory created then would lose its search bit). The staging
//! directory gives the same guarantee and touches no process-wide state.

use std::io::ErrorKind as IoKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::err;
use crate::error::Result;

/// How long the check for a live daemon on an existing socket file waits for it to take the
/// connection: a daemon that listens and accepts nothing (stopped, wedged) fills its listen
/// queue, and a `connect` would wait there for ever.
const LIVE_PROBE: std::time::Duration = std::time::Duration::from_secs(1);

/// The mode of a directory the daemon creates for its socket: private, plus search (`x`) for
/// each class `socket_mode` lets connect (connecting needs search permission on the directory).
fn dir_mode(socket_mode: u32) -> u32 {
    let mut mode = 0o700;
    if socket_mode & 0o060 != 0 {
        mode |= 0o010;
    }
    if socket_mode & 0o006 != 0 {
        mode |= 0o001;
    }
    mode
}

/// Creates the socket's directory: the per-user default one private (or refused when it is
/// not); another missing one (with its missing parents) with [`dir_mode`]; an existing one is
/// left as it is.
fn create_parent(path: &Path, mode: u32) -> Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if crate::paths::in_default_socket_dir(path) {
        if mode & 0o077 != 0 {
            tracing::warn!(
                socket = %path.display(),
                mode = format!("{mode:#o}"),
                "socket_mode lets group or others connect, but the socket is in the private \
                 per-user directory, which they cannot enter"
            );
        }
        return crate::paths::create_private_dir(parent);
    }
    if parent.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode(mode))
        .create(parent)
        .map_err(|e| {
            err!(
                KMSInternalException,
                "cannot create the socket's directory {}: {e}",
                parent.display()
            )
        })
}

/// Binds `path` with permission bits `mode` and group `gid` from the moment it exists (see the
/// module documentation).
fn bind_final(path: &Path, mode: u32, gid: Option<u32>) -> Result<mio::net::UnixListener> {
    static STAGINGS: AtomicU64 = AtomicU64::new(0);
    let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    let staging = parent.join(format!(
        ".kmscksd-{:x}-{:x}",
        std::process::id(),
        STAGINGS.fetch_add(1, Ordering::Relaxed)
    ));
    // `create` (not recursive) fails if anything, a symlink included, already has the name.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| {
            err!(
                KMSInternalException,
                "cannot create the staging directory {} for the socket: {e}",
                staging.display()
            )
        })?;
    // A staging directory that cannot be opened as ours is left where it is: it may be
    // another user's, put in its place.
    Staging::open(&staging).and_then(|dir| {
        let out = bind_staged(&dir, &staging, path, mode, gid);
        dir.remove_socket();
        dir.remove_if_at(&staging);
        out
    })
}

/// The staging directory, held open: the socket's mode, group and link into place are set
/// through this descriptor, not through the directory's path. Where another user may write the
/// socket's parent (a group directory shared for `socket_mode` 0o660, say), they may rename the
/// staging directory away and put one of theirs in its place, with `s` a symbolic link to one
/// of our files; a `chmod` by path would follow it and open that file to the group. Through
/// the descriptor every step acts in our directory, which only we can write (mode 0700): a
/// swap before the `bind` leaves no socket there, and the steps after it fail on that.
struct Staging {
    fd: std::os::fd::OwnedFd,
    /// The directory's device and inode, to know it again at its path.
    id: (u64, u64),
}

/// The socket's name inside the staging directory.
const STAGED: &std::ffi::CStr = c"s";

impl Staging {
    /// Opens the directory just made at `dir`, refusing anything but a directory of ours that
    /// nobody else may enter (it was swapped between its `mkdir` and this `open`).
    #[allow(unsafe_code)]
    fn open(dir: &Path) -> Result<Staging> {
        use std::os::fd::FromRawFd;
        let c = c_path(dir)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: `c` is a NUL-terminated path alive for the call; `open` reads nothing else.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 {
            return Err(staging_error("open", dir, std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by `open` and is owned by nothing else.
        let dir_fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let meta = std::fs::File::from(
            dir_fd
                .try_clone()
                .map_err(|e| staging_error("inspect", dir, e))?,
        )
        .metadata()
        .map_err(|e| staging_error("inspect", dir, e))?;
        let me = crate::peer::effective_uid();
        if meta.uid() != me || meta.mode() & 0o077 != 0 {
            return Err(err!(
                UntrustedSocketException,
                "the staging directory {} for the socket was replaced by one of uid {} with \
                 mode {:#o} before it could be opened: another user may write its parent \
                 directory",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ));
        }
        Ok(Staging {
            fd: dir_fd,
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Gives the staged socket group `gid` (`fchownat`, not following a link).
    #[allow(unsafe_code)]
    fn chown_group(&self, gid: u32) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: a descriptor we own and a NUL-terminated name; `-1` leaves the owner.
        let r = unsafe {
            libc::fchownat(
                self.fd.as_raw_fd(),
                STAGED.as_ptr(),
                u32::MAX,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        os_result(r)
    }

    /// Gives the staged socket permission bits `mode` (`fchmodat` inside our directory).
    #[allow(unsafe_code)]
    fn chmod(&self, mode: u32) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: a descriptor we own and a NUL-terminated name. The name is in our mode-0700
        // directory, where nobody else can have put a link.
        let r = unsafe { libc::fchmodat(self.fd.as_raw_fd(), STAGED.as_ptr(), mode, 0) };
        os_result(r)
    }

    /// Links the staged socket at `path` (`linkat`: fails if anything is there).
    #[allow(unsafe_code)]
    fn link_to(&self, path: &Path) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let c = c_path(path).map_err(|_| std::io::Error::from(IoKind::InvalidInput))?;
        // SAFETY: a descriptor we own and two NUL-terminated paths alive for the call.
        let r = unsafe {
            libc::linkat(
                self.fd.as_raw_fd(),
                STAGED.as_ptr(),
                libc::AT_FDCWD,
                c.as_ptr(),
                0,
            )
        };
        os_result(r)
    }

    /// Removes the staged name (the socket stays at its final path, or is gone with it).
    #[allow(unsafe_code)]
    fn remove_socket(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: a descriptor we own and a NUL-terminated name. A failure (no such name: the
        // bind failed) leaves nothing to clean up.
        let _ = unsafe { libc::unlinkat(self.fd.as_raw_fd(), STAGED.as_ptr(), 0) };
    }

    /// Removes the directory at `path` if it is still this one (and empty): after a swap the
    /// name is another user's directory, which is theirs to remove, and ours is wherever they
    /// moved it. The check and the `rmdir` are two steps; between them the name can change
    /// again, which costs at worst their empty directory, never a file.
    fn remove_if_at(&self, path: &Path) {
        let here = std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if here {
            let _ = std::fs::remove_dir(path);
        }
    }
}

fn os_result(r: libc::c_int) -> std::io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn c_path(path: &Path) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        err!(
            ValidationException,
            "the socket path {} holds a NUL byte",
            path.display()
        )
    })
}

fn staging_error(what: &str, dir: &Path, e: std::io::Error) -> crate::KmsError {
    err!(
        KMSInternalException,
        "cannot {what} the staging directory {} for the socket: {e}",
        dir.display()
    )
}

fn bind_staged(
    dir: &Staging,
    staging: &Path,
    path: &Path,
    mode: u32,
    gid: Option<u32>,
) -> Result<mio::net::UnixListener> {
    // `bind` takes a path; if the directory there is no longer ours, the socket lands
    // elsewhere and the steps below, in our directory, find no `s` and fail.
    let staged = staging.join("s");
    let inner = mio::net::UnixListener::bind(&staged).map_err(|e| {
        err!(
            KMSInternalException,
            "cannot listen on {} (staged as {}): {e}",
            path.display(),
            staged.display()
        )
    })?;
    if let Some(gid) = gid {
        dir.chown_group(gid).map_err(|e| {
            err!(
                KMSInternalException,
                "cannot give {} to group {gid}: {e}",
                path.display()
            )
        })?;
    }
    dir.chmod(mode).map_err(|e| {
        err!(
            KMSInternalException,
            "cannot set mode {mode:#o} on {}: {e}",
            path.display()
        )
    })?;
    dir.link_to(path).map_err(|e| {
        let kind = if e.kind() == IoKind::AlreadyExists {
            crate::error::ErrorKind::StoreInUseException
        } else {
            crate::error::ErrorKind::KMSInternalException
        };
        crate::KmsError::new(
            kind,
            format!("cannot put the socket in place at {}: {e}", path.display()),
        )
    })?;
    Ok(inner)
}

/// A bound listener and the socket file it owns (removed on drop).
pub(super) struct Listener {
    /// The mio listener.
    pub inner: mio::net::UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file we put at `path`.
    file_id: Option<(u64, u64)>,
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
    /// Errors: `StoreInUseException` when a live daemon answers on `path`, or a listener there
    /// takes no connection within [`LIVE_PROBE`] (or a file appears there while binding);
    /// `UntrustedSocketException` when `path` is in the per-user default directory and that
    /// directory is not private; `ValidationException` when `path` exists and is not a socket;
    /// `KMSInternalException` naming the path and OS error for any other failure.
    pub(super) fn bind(path: &Path, mode: u32, gid: Option<u32>) -> Result<Listener> {
        create_parent(path, mode)?;
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match crate::sockwait::connect(path, Some(LIVE_PROBE)) {
                    Ok(_) => {
                        return Err(err!(
                            StoreInUseException,
                            "a daemon is already listening on {}",
                            path.display()
                        ))
                    }
                    // Someone listens there and takes no connection: not a stale file.
                    Err(e) if e.kind() == IoKind::TimedOut => {
                        return Err(err!(
                            StoreInUseException,
                            "a process is listening on {} but takes no connection ({e}): a \
                             daemon stopped or wedged; end it, or choose another socket",
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
        let inner = bind_final(path, mode, gid)?;
        let file_id = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Ok(Listener {
            inner,
            path: path.to_path_buf(),
            file_id,
        })
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
            .map(|m| m.file_type().is_socket() && Some((m.dev(), m.ino())) == self.file_id)
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_socket_has_its_final_mode_in_an_open_directory_and_no_staging_is_left() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("k.sock");
        let l = Listener::bind(&path, 0o600, None).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.nlink(), 1, "the staging name is gone");
        assert_eq!(names(dir.path()), vec!["k.sock".to_string()]);
        // The listener answers at the final path.
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        drop(l);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_staging_directory_swapped_after_the_bind_changes_none_of_our_files() {
        let dir = tempfile::tempdir().unwrap();
        // One of our files that must stay private, and a socket path beside the staging.
        let victim = dir.path().join("bashrc");
        std::fs::write(&victim, b"ours").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let staging = dir.path().join(".kmscksd-test");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .unwrap();
        let held = Staging::open(&staging).unwrap();
        let _listener = mio::net::UnixListener::bind(staging.join("s")).unwrap();
        // Another user who may write the parent moves our staging directory away and puts
        // theirs in its place, its `s` a link to our file.
        let moved = dir.path().join("moved");
        std::fs::rename(&staging, &moved).unwrap();
        std::fs::create_dir(&staging).unwrap();
        std::os::unix::fs::symlink(&victim, staging.join("s")).unwrap();
        // The socket's mode and its link into place still act in our directory.
        held.chmod(0o666).unwrap();
        let path = dir.path().join("k.sock");
        held.link_to(&path).unwrap();
        let victim_mode = std::fs::metadata(&victim).unwrap().mode() & 0o777;
        assert_eq!(
            victim_mode, 0o600,
            "the link's target was opened to everyone"
        );
        let placed = std::fs::symlink_metadata(&path).unwrap();
        assert!(placed.file_type().is_socket(), "our socket, not their link");
        assert_eq!(placed.mode() & 0o777, 0o666);
        assert_eq!(
            placed.ino(),
            std::fs::symlink_metadata(moved.join("s")).unwrap().ino()
        );
        // Theirs, now at the staging name, is not removed as ours; ours, at its own name, is.
        std::fs::remove_file(staging.join("s")).unwrap();
        held.remove_if_at(&staging);
        assert!(staging.is_dir(), "their directory was removed as ours");
        held.remove_socket();
        held.remove_if_at(&moved);
        assert!(!moved.exists());
    }

    #[test]
    fn a_staging_directory_others_may_enter_is_refused_as_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join(".kmscksd-test");
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&staging)
            .unwrap();
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Staging::open(&staging).err().expect("refused");
        assert_eq!(e.kind(), crate::ErrorKind::UntrustedSocketException, "{e}");
        assert!(e.message().contains("mode 0o755"), "{e}");
        // A link where the directory was is not followed.
        std::fs::remove_dir(&staging).unwrap();
        std::os::unix::fs::symlink(dir.path(), &staging).unwrap();
        assert!(Staging::open(&staging).is_err());
    }

    #[test]
    fn a_socket_replaced_after_bind_is_not_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sock");
        let l = Listener::bind(&path, 0o600, None).unwrap();
        std::fs::remove_file(&path).unwrap();
        let theirs = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(l);
        assert!(path.exists(), "another listener's socket was removed");
        drop(theirs);
    }

    #[test]
    fn created_directories_are_private_unless_the_mode_lets_others_connect() {
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o660), 0o710);
        assert_eq!(dir_mode(0o666), 0o711);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/k.sock");
        let _l = Listener::bind(&path, 0o600, None).unwrap();
        let meta = std::fs::metadata(dir.path().join("new")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
    }

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

        // A listener that accepts nothing, its queue full: refused in bounded time, kept.
        let (stopped, _queued) = crate::sockwait::full_listener(&path);
        let e = Listener::bind(&path, 0o600, None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StoreInUseException);
        assert!(e.message().contains("takes no connection"), "{e}");
        assert!(path.exists(), "the stopped daemon's socket was removed");
        drop(stopped);

        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = Listener::bind(&file, 0o600, None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::ValidationException);
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}
