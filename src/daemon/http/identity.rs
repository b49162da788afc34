//! Who an HTTP request acts as.
//!
//! First, who connected: the endpoint listens on loopback only, and the kernel says which uid
//! owns the client's end (`peer::loopback_tcp_peer_uid`). A connection from another uid than
//! the daemon's (or root) acts as that uid, exactly as on the Unix socket
//! (`arn:aws:iam::<account>:user/uid-<N>`), whatever it signs: signatures are not checked, so
//! a claimed access key proves nothing. A connection whose owner cannot be told is closed.
//!
//! Then, for the daemon's own uid, as local AWS emulators do: the account root when the
//! request is unsigned or signed with one of the configured root access key ids
//! (`http_root_access_keys`), else the principal its SigV4 access key id names
//! (`arn:aws:iam::<account>:user/<access key id>`), held to key policies as any other.

use crate::types::Scope;

/// The principal of a request with this `Authorization` header (or none) on a connection
/// owned by `uid`; `root_keys`: the access key ids that act as the account root.
pub(super) fn principal(
    scope: &Scope,
    root_keys: &[String],
    uid: u32,
    daemon_uid: u32,
    authorization: Option<&str>,
) -> String {
    if uid != 0 && uid != daemon_uid {
        return crate::kms::policy::principal_for_uid(scope, uid, daemon_uid);
    }
    match authorization.and_then(access_key_id) {
        Some(key) if !root_keys.iter().any(|k| k == key) => {
            format!("arn:aws:iam::{}:user/{key}", scope.account_id)
        }
        _ => scope.root_principal(),
    }
}

/// `http_root_access_keys` as a list (empty items dropped).
pub(super) fn root_keys(option: &str) -> Vec<String> {
    option
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The access key id of a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, …`), if it
/// has a plausible one (ASCII letters and digits, 1 to 128 of them).
pub(super) fn access_key_id(authorization: &str) -> Option<&str> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    let key = credential.split('/').next()?;
    let plausible =
        (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric());
    plausible.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_uid_acts_as_its_access_key_or_the_root_and_another_uid_as_itself() {
        let scope = Scope::default();
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261203/us-east-1/kms/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=abc";
        let roots = root_keys(" test , ,ROOTKEY");
        assert_eq!(roots, ["test", "ROOTKEY"]);
        let mine = |a: Option<&str>| principal(&scope, &roots, 1000, 1000, a);
        assert_eq!(
            mine(Some(auth)),
            format!("arn:aws:iam::{}:user/AKIDEXAMPLE", scope.account_id)
        );
        assert_eq!(mine(None), scope.root_principal());
        let as_root = auth.replace("AKIDEXAMPLE", "ROOTKEY");
        assert_eq!(mine(Some(&as_root)), scope.root_principal());
        assert_eq!(
            principal(&scope, &roots, 0, 1000, None),
            scope.root_principal()
        );
        // Another uid is itself, signed as the root or not.
        let theirs = format!("arn:aws:iam::{}:user/uid-4242", scope.account_id);
        for a in [None, Some(auth), Some(as_root.as_str())] {
            assert_eq!(principal(&scope, &roots, 4242, 1000, a), theirs);
        }
        // A header that names no plausible key acts as nobody in particular: the root, as an
        // unsigned request does (signatures are not checked either way).
        for odd in [
            "Basic abc",
            "AWS4-HMAC-SHA256 Credential=",
            "AWS4-HMAC-SHA256 Credential=a:b/x",
        ] {
            assert_eq!(mine(Some(odd)), scope.root_principal(), "{odd}");
        }
    }
}
