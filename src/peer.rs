//! Who is at the other end of a local (Unix-domain) socket, and who we are: the one place that
//! reads `SO_PEERCRED` and the effective uid, so that the daemon (which maps a connecting uid to
//! a principal) and the client (which refuses a daemon run by an untrusted uid) agree on what
//! the kernel says.

use std::os::fd::AsRawFd;

use crate::err;
use crate::error::Result;

/// The credentials of a connected peer, as the kernel recorded them: for a connecting client,
/// at `connect`; for a listening server, at `listen` (so a socket file cannot lie about who
/// serves it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Reads `SO_PEERCRED` of a connected Unix stream socket.
///
/// Errors: `KMSInternalException` naming the OS error when the kernel refuses.
#[allow(unsafe_code)]
pub(crate) fn credentials(socket: &impl AsRawFd) -> Result<Credentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live, writable `ucred` and `len` holds its exact size, so the kernel
    // writes at most `len` bytes into it; the fd is borrowed from an open socket for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(err!(
            KMSInternalException,
            "SO_PEERCRED failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(err!(
            KMSInternalException,
            "SO_PEERCRED returned {len} bytes, not a ucred"
        ));
    }
    Ok(Credentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The effective uid of this process: whose files it creates, whom it acts for.
#[allow(unsafe_code)]
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_socket_pair_reports_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = credentials(&a).unwrap();
        assert_eq!(peer.pid as u32, std::process::id());
        assert_eq!(peer.uid, effective_uid());
    }

    #[test]
    fn a_non_socket_is_a_typed_error() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let e = credentials(&f).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::KMSInternalException);
        assert!(e.message().contains("SO_PEERCRED"), "{e}");
    }
}
