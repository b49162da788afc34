//! Who is calling: the peer's uid, gid and pid from `SO_PEERCRED`, and the principal that key
//! policies see for it.
//!
//! Principal ARN form: the daemon's own uid and uid 0 are the account root,
//! `arn:aws:iam::<account>:root`; any other uid N is `arn:aws:iam::<account>:user/uid-N`
//! (see [`crate::kms::policy::principal_for_uid`]). A key policy statement names that ARN to
//! grant the uid `kms:` actions.

use std::os::fd::AsRawFd;

use crate::err;
use crate::error::Result;
use crate::types::Scope;

/// The credentials of a connected peer, as the kernel recorded them at `connect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Peer {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Peer {
    /// The principal key policies are evaluated for.
    pub(super) fn principal(&self, scope: &Scope, daemon_uid: u32) -> String {
        crate::kms::policy::principal_for_uid(scope, self.uid, daemon_uid)
    }
}

/// Reads `SO_PEERCRED` of a connected Unix stream socket.
///
/// Errors: `KMSInternalException` naming the OS error when the kernel refuses.
#[allow(unsafe_code)]
pub(super) fn peer_credentials(socket: &impl AsRawFd) -> Result<Peer> {
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
    Ok(Peer {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The effective uid of this process (the daemon's uid).
#[allow(unsafe_code)]
pub(super) fn daemon_uid() -> u32 {
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
        let peer = peer_credentials(&a).unwrap();
        assert_eq!(peer.pid as u32, std::process::id());
        assert_eq!(peer.uid, daemon_uid());
        let scope = Scope::default();
        assert_eq!(peer.principal(&scope, peer.uid), scope.root_principal());
        let other = Peer { uid: 4242, ..peer };
        assert_eq!(
            other.principal(&scope, peer.uid),
            format!("arn:aws:iam::{}:user/uid-4242", scope.account_id)
        );
    }

    #[test]
    fn a_non_socket_is_a_typed_error() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let e = peer_credentials(&f).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::KMSInternalException);
        assert!(e.message().contains("SO_PEERCRED"), "{e}");
    }
}
