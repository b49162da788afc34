//! The narrow set of calls KMS makes into a cluster as `kmsuser`: reachability, connect (log in
//! and rotate the password), disconnect, generating and finding backing keys, and the
//! deletion's best-effort removal of one. `kmsuser` is the crypto user of that name (spec
//! §3.2): an admin called `kmsuser` is no kmsuser, and Connect fails with USER_NOT_FOUND.

use super::audit::{audit_all, opcode};
use super::password::{hash_password, ROTATED_PASSWORD_LEN};
use super::user::{login, LoginOutcome};
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::err;
use crate::error::Result;
use crate::hsm::model::*;
use crate::secret::{KeyMaterial, Password};
use crate::types::*;

/// The user KMS logs in as.
pub(super) const KMS_USER: &str = "kmsuser";
/// The role [`KMS_USER`] must have: an ordinary crypto user (spec §3.2); a user of that name
/// in any other role is no kmsuser, and Connect fails with USER_NOT_FOUND (§2.1).
const KMS_USER_ROLE: HsmUserRole = HsmUserRole::CryptoUser;

/// Whether KMS can talk to the cluster right now; the reason if not, as a connection error code.
pub fn reachability<'s>(
    state: &'s CloudHsmState,
    cluster_id: &ClusterId,
    region: &str,
) -> Result<&'s Cluster, ConnectionErrorCode> {
    let c = state
        .clusters
        .get(cluster_id)
        .filter(|c| {
            c.region == region
                && !matches!(
                    c.state,
                    ClusterState::Deleted | ClusterState::DeleteInProgress
                )
        })
        .ok_or(ConnectionErrorCode::ClusterNotFound)?;
    if c.faults.network_down {
        return Err(ConnectionErrorCode::NetworkErrors);
    }
    if c.faults.internal_error {
        return Err(ConnectionErrorCode::InternalError);
    }
    if c.subnets.values().any(|s| s.deleted) {
        return Err(ConnectionErrorCode::SubnetNotFound);
    }
    Ok(c)
}

/// ConnectCustomKeyStore's work inside the cluster: log in as kmsuser with the password KMS
/// knows, then rotate it to a fresh one only KMS knows, which is returned.
pub fn kms_connect(
    tx: &mut HsmTx<'_>,
    cluster_id: &ClusterId,
    store: &CustomKeyStoreId,
    password: &Password,
) -> Result<Password, ConnectionErrorCode> {
    let c = reachability(tx.state, cluster_id, &tx.scope.region.clone())?.clone();
    if c.subnets.values().any(|s| s.free_addresses == 0) {
        return Err(ConnectionErrorCode::InsufficientFreeAddressesInSubnet);
    }
    if c.active_hsms().next().is_none() {
        return Err(ConnectionErrorCode::InsufficientCloudhsmHsms);
    }
    if let Some(u) = tx.state.user(&c.id, KMS_USER) {
        // KMS logged in already for this very store (e.g. a reconnect after a crash).
        if u.role == KMS_USER_ROLE && u.session == Some(SessionHolder::Kms(store.to_string())) {
            return Ok(password.duplicate());
        }
    }
    let mut u = match login(
        tx,
        &c,
        KMS_USER,
        Some(KMS_USER_ROLE),
        password,
        SessionHolder::Kms(store.to_string()),
    ) {
        // Rotate on top of the logged-in user `login` pushed.
        LoginOutcome::Ok(u) => u,
        LoginOutcome::NoSuchUser => return Err(ConnectionErrorCode::UserNotFound),
        LoginOutcome::LockedOut => return Err(ConnectionErrorCode::UserLockedOut),
        LoginOutcome::AlreadyLoggedIn => return Err(ConnectionErrorCode::UserLoggedIn),
        LoginOutcome::WrongPassword => return Err(ConnectionErrorCode::InvalidCredentials),
        LoginOutcome::Unavailable(e) => {
            tracing::warn!(cluster = %c.id, error = %e, "kmsuser's password hash cannot be read");
            return Err(ConnectionErrorCode::InternalError);
        }
    };
    let rotated = Password::generate(ROTATED_PASSWORD_LEN);
    u.password = match hash_password(tx, &c, KMS_USER, &rotated) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(cluster = %c.id, error = %e, "kmsuser's new password cannot be hashed");
            return Err(ConnectionErrorCode::InternalError);
        }
    };
    audit_all(tx, &c, opcode::CHANGE_PSWD, "SUCCESS", Some(KMS_USER), None);
    tx.push(HsmChange::PutUser(c.id.clone(), u));
    Ok(rotated)
}

/// DisconnectCustomKeyStore's work inside the cluster: log kmsuser out, if KMS holds the
/// session. Nothing to do when the cluster is gone.
///
/// During a network cut KMS's logout never reaches the HSMs, but KMS drops its connection all
/// the same: the HSMs end the session when they lose the connection, and record that
/// (CN_APP_FINALIZE, which CloudHSM logs only when the user did not log out) instead of a
/// CN_LOGOUT. kmscks has no connection timeout: the HSMs lose the connection as KMS drops it.
pub fn kms_disconnect(tx: &mut HsmTx<'_>, cluster_id: &ClusterId, store: &CustomKeyStoreId) {
    let Some(c) = tx.state.clusters.get(cluster_id).cloned() else {
        return;
    };
    if let Some(u) = tx.state.user(&c.id, KMS_USER) {
        if u.session == Some(SessionHolder::Kms(store.to_string())) {
            let mut u = u.clone();
            u.session = None;
            let ended_by = if c.faults.network_down {
                opcode::APP_FINALIZE
            } else {
                opcode::LOGOUT
            };
            audit_all(tx, &c, ended_by, "SUCCESS", Some(KMS_USER), None);
            tx.push(HsmChange::PutUser(c.id.clone(), u));
        }
    }
}

/// Whether KMS holds kmsuser's session in this cluster on behalf of `store`.
pub fn kms_logged_in(
    state: &CloudHsmState,
    cluster_id: &ClusterId,
    store: &CustomKeyStoreId,
) -> bool {
    state
        .user(cluster_id, KMS_USER)
        .and_then(|u| u.session.as_ref())
        == Some(&SessionHolder::Kms(store.to_string()))
}

/// CreateKey's work inside the cluster: generate a persistent, non-extractable AES-256 key
/// owned by kmsuser, labelled `label`; returns its handle and material (for the data plane).
pub fn kms_generate_key(
    tx: &mut HsmTx<'_>,
    cluster_id: &ClusterId,
    label: &str,
) -> Result<(u64, KeyMaterial)> {
    let state = tx.state;
    let c = state
        .clusters
        .get(cluster_id)
        .ok_or_else(|| err!(KMSInternalException, "cluster {cluster_id} disappeared"))?;
    let max = c.limits().keys;
    if state.object_count(&c.id) >= max {
        return Err(err!(
            LimitExceededException,
            "Cluster {} holds {max} keys, the CloudHSM maximum for {} HSMs",
            c.id,
            c.hsm_type
        ));
    }
    let handle = c.next_handle;
    let material = KeyMaterial::generate();
    let wrapped = tx.keys.wrap_key(
        &c.wrapping_key,
        &KeyObject::wrap_aad(&c.wrapping_key, handle),
        &material,
    )?;
    let object = KeyObject {
        handle,
        label: label.to_owned(),
        owner: KMS_USER.to_owned(),
        wrapped,
        created: tx.now,
    };
    audit_all(
        tx,
        c,
        opcode::GENERATE_KEY,
        "SUCCESS",
        Some(KMS_USER),
        Some(handle),
    );
    tx.push(HsmChange::PutObject(c.id.clone(), object));
    // Only the object and the counter changed: the record does not carry the whole cluster.
    tx.push(HsmChange::SetNextHandle(c.id.clone(), handle + 1));
    Ok((handle, material))
}

/// The key object labelled `label` in the cluster (`findKey -l <key ARN>`).
pub fn find_key<'s>(
    state: &'s CloudHsmState,
    cluster_id: &ClusterId,
    label: &str,
) -> Option<&'s KeyObject> {
    state.object_by_label(cluster_id, label)
}

/// The deletion's best-effort removal of the backing key; true when it was deleted.
pub fn kms_delete_key(
    tx: &mut HsmTx<'_>,
    cluster_id: &ClusterId,
    store: &CustomKeyStoreId,
    label: &str,
) -> bool {
    if !kms_logged_in(tx.state, cluster_id, store) {
        return false;
    }
    let Ok(c) = reachability(tx.state, cluster_id, &tx.scope.region.clone()) else {
        return false;
    };
    let c = c.clone();
    if c.active_hsms().next().is_none() {
        return false;
    }
    let Some(o) = find_key(tx.state, &c.id, label) else {
        return false;
    };
    let handle = o.handle;
    audit_all(
        tx,
        &c,
        opcode::DESTROY_OBJECT,
        "SUCCESS",
        Some(KMS_USER),
        Some(handle),
    );
    tx.push(HsmChange::DeleteObject(c.id.clone(), handle));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::hsm::{CreateClusterRequest, HSM1_MEDIUM, HSM2M_MEDIUM};
    use crate::hsm::Wrapper;
    use crate::secret::SecretBytes;
    use crate::types::limits::HSM1_CLUSTER_LIMITS;

    /// Wrapping keys that seal to nothing: enough to make a key object, never to read one.
    struct Sealless;

    impl Wrapper for Sealless {
        fn wrap_key(&self, _: &str, _: &[u8], _: &KeyMaterial) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }
        fn unwrap_key(&self, name: &str, _: &[u8], _: &[u8]) -> Result<KeyMaterial> {
            panic!("unwrap_key({name}) while generating a key")
        }
        fn wrap_bytes(&self, _: &str, _: &[u8], _: &[u8]) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }
        fn unwrap_bytes(&self, name: &str, _: &[u8], _: &[u8]) -> Result<SecretBytes> {
            panic!("unwrap_bytes({name}) while generating a key")
        }
    }

    /// A new cluster of `hsm_type` HSMs in `state`, already holding `keys` key objects.
    fn cluster_holding(
        state: &mut CloudHsmState,
        scope: &Scope,
        hsm_type: &str,
        keys: usize,
    ) -> ClusterId {
        let mut tx = HsmTx::new(state, Timestamp(0), scope, &Sealless);
        let req = CreateClusterRequest {
            hsm_type: Some(hsm_type.to_owned()),
            ..CreateClusterRequest::default()
        };
        // Invariant: a default CreateCluster in an empty Region, quotas off, is accepted.
        let id = crate::hsm::create_cluster(&mut tx, &req).unwrap().cluster_id;
        for change in tx.finish().changes {
            state.apply(change);
        }
        let first = state.clusters[&id].next_handle;
        let next = first + keys as u64;
        for handle in first..next {
            state.apply(HsmChange::PutObject(
                id.clone(),
                KeyObject {
                    handle,
                    label: format!("key-{handle}"),
                    owner: KMS_USER.to_owned(),
                    wrapped: Vec::new(),
                    created: Timestamp(0),
                },
            ));
        }
        state.apply(HsmChange::SetNextHandle(id.clone(), next));
        id
    }

    /// Generates one key in `cluster` and applies it to `state`.
    fn generate(state: &mut CloudHsmState, scope: &Scope, cluster: &ClusterId) -> Result<()> {
        let mut tx = HsmTx::new(state, Timestamp(0), scope, &Sealless);
        kms_generate_key(&mut tx, cluster, "one more")?;
        for change in tx.finish().changes {
            state.apply(change);
        }
        Ok(())
    }

    #[test]
    fn an_hsm1_cluster_makes_its_3300th_key_and_refuses_the_next_which_an_hsm2m_cluster_makes() {
        let scope = Scope::default();
        let mut state = CloudHsmState::default();
        let max = HSM1_CLUSTER_LIMITS.keys;
        let hsm1 = cluster_holding(&mut state, &scope, HSM1_MEDIUM, max - 1);
        let hsm2m = cluster_holding(&mut state, &scope, HSM2M_MEDIUM, max);

        generate(&mut state, &scope, &hsm1).unwrap();
        assert_eq!(state.object_count(&hsm1), max);
        let e = generate(&mut state, &scope, &hsm1).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::LimitExceededException, "{e}");
        assert!(e.message().contains(&format!("{max} keys")), "{e}");
        assert!(e.message().contains(HSM1_MEDIUM), "{e}");
        assert_eq!(state.object_count(&hsm1), max, "a refused key leaves nothing");

        generate(&mut state, &scope, &hsm2m).unwrap();
        assert_eq!(state.object_count(&hsm2m), max + 1);
    }
}
