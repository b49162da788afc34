//! Who is calling: the peer's uid, gid and pid from `SO_PEERCRED`, and the principal that key
//! policies see for it.
//!
//! Principal ARN form: the daemon's own uid and uid 0 are the account root,
//! `arn:aws:iam::<account>:root`; any other uid N is `arn:aws:iam::<account>:user/uid-N`
//! (see [`crate::kms::policy::principal_for_uid`]). A key policy statement names that ARN to
//! grant the uid `kms:` actions.

use crate::types::Scope;

/// The credentials of a connected peer, as the kernel recorded them at `connect`
/// ([`crate::peer`] reads them).
pub(super) type Peer = crate::peer::Credentials;

impl Peer {
    /// The principal key policies are evaluated for: the peer's uid mapped by
    /// [`crate::kms::policy::principal_for_uid`].
    pub(super) fn principal(&self, scope: &Scope, daemon_uid: u32) -> String {
        crate::kms::policy::principal_for_uid(scope, self.uid, daemon_uid)
    }
}

/// Reads `SO_PEERCRED` of a connected client socket (see [`crate::peer::credentials`]).
pub(super) use crate::peer::credentials as peer_credentials;

/// The effective uid of this process (the daemon's uid).
pub(super) use crate::peer::effective_uid as daemon_uid;

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
}
