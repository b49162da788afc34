//! The simulated CloudHSM operations of [`Kms`] (clusters, HSMs, backups, users, key objects,
//! audit logs, faults), all for the account root only.

use super::worker::Task;
use super::Kms;

use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::AuditEvent;
use crate::hsm::{self, HsmTx};
use crate::kms::tx::Tx;
use crate::ops::Op;
use crate::secret::Password;
use crate::types::*;

impl Kms {
    // ---- Simulated CloudHSM ---------------------------------------------------------------

    /// Runs a CloudHSM operation for the account root.
    fn cluster_admin<R>(&self, op: Op, f: impl FnOnce(&mut HsmTx<'_>) -> Result<R>) -> Result<R> {
        self.write(|tx| {
            require_cluster_admin(tx, op.action())?;
            tx.in_hsm(f)
        })
    }

    /// CreateCluster: the answer is CREATE_IN_PROGRESS; the cluster is UNINITIALIZED (ACTIVE
    /// when restored from a backup) after [`crate::KmsConfig::cluster_transition`].
    pub fn create_cluster(&self, req: &CreateClusterRequest) -> Result<ClusterResponse> {
        let cluster = self.cluster_admin(Op::CreateCluster, |tx| hsm::create_cluster(tx, req))?;
        self.settle_later(&cluster.cluster_id);
        Ok(ClusterResponse { cluster })
    }

    /// Waits until the cluster is past its passing state (CREATE_IN_PROGRESS,
    /// INITIALIZE_IN_PROGRESS, DELETE_IN_PROGRESS), or `timeout` passes (`Duration::MAX`: as
    /// long as it takes), and returns its description (`None`: the cluster is gone, e.g.
    /// deleted). What a program written for AWS does by polling DescribeClusters.
    pub fn wait_for_cluster(
        &self,
        cluster_id: &str,
        timeout: std::time::Duration,
    ) -> Result<Option<ClusterDescription>> {
        let mut req = DescribeClustersRequest::default();
        req.filters
            .insert("clusterIds".into(), vec![cluster_id.to_owned()]);
        let deadline = super::deadline_after(timeout);
        loop {
            let found = self.describe_clusters(&req)?.clusters.pop();
            let passing = found.as_ref().is_some_and(|c| {
                matches!(
                    c.state,
                    ClusterState::CreateInProgress
                        | ClusterState::InitializeInProgress
                        | ClusterState::DeleteInProgress
                )
            });
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if !passing || left.is_some_and(|l| l.is_zero()) {
                return Ok(found);
            }
            let core = self.shared.core()?;
            // Woken by every commit (the worker's settling among them); the timeout bounds a
            // wake-up missed between the describe above and this wait.
            let most = std::time::Duration::from_millis(50);
            let _ = self
                .shared
                .changed
                .wait_timeout(core, left.map_or(most, |l| l.min(most)));
        }
    }

    /// DescribeClusters.
    pub fn describe_clusters(
        &self,
        req: &DescribeClustersRequest,
    ) -> Result<DescribeClustersResponse> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::DescribeClusters.action())?;
            hsm::describe_clusters(tx.cloudhsm, tx.scope, req)
        })
    }

    /// DeleteCluster: the answer is DELETE_IN_PROGRESS; the cluster is gone after
    /// [`crate::KmsConfig::cluster_transition`].
    pub fn delete_cluster(&self, req: &ClusterIdRequest) -> Result<ClusterResponse> {
        let cluster = self.cluster_admin(Op::DeleteCluster, |tx| hsm::delete_cluster(tx, req))?;
        self.settle_later(&cluster.cluster_id);
        Ok(ClusterResponse { cluster })
    }

    /// CreateHsm.
    pub fn create_hsm(&self, req: &CreateHsmRequest) -> Result<HsmResponse> {
        self.cluster_admin(Op::CreateHsm, |tx| hsm::create_hsm(tx, req))
            .map(|hsm| HsmResponse { hsm })
    }

    /// DeleteHsm.
    pub fn delete_hsm(&self, req: &DeleteHsmRequest) -> Result<DeleteHsmResponse> {
        self.cluster_admin(Op::DeleteHsm, |tx| hsm::delete_hsm(tx, req))
    }

    /// InitializeCluster with the user's signed certificate and trust anchor: the answer is
    /// INITIALIZE_IN_PROGRESS; the cluster is INITIALIZED after
    /// [`crate::KmsConfig::cluster_transition`], and ACTIVE once
    /// [`Kms::activate_cluster`] has set the admin password.
    pub fn initialize_cluster(
        &self,
        req: &InitializeClusterRequest,
    ) -> Result<InitializeClusterResponse> {
        let resp =
            self.cluster_admin(Op::InitializeCluster, |tx| hsm::initialize_cluster(tx, req))?;
        if let Some(id) = ClusterId::parse_lenient(&req.cluster_id) {
            self.settle_later(&id);
        }
        Ok(resp)
    }

    /// InitializeCluster with a CA kmscks makes: signs the CSR itself and returns the CA
    /// certificate as `TrustAnchor` (what tests and bootstrap use).
    pub fn initialize_cluster_with_new_ca(
        &self,
        req: &ClusterIdRequest,
    ) -> Result<InitializeClusterResponse> {
        self.cluster_admin(Op::InitializeClusterWithNewCa, |tx| {
            hsm::initialize_cluster_with_new_ca(tx, req)
        })
    }

    /// `cluster activate` (CloudHSM CLI): sets the admin password; INITIALIZED → ACTIVE.
    pub fn activate_cluster(&self, req: &ActivateClusterRequest) -> Result<ClusterResponse> {
        self.cluster_admin(Op::ActivateCluster, |tx| hsm::activate_cluster(tx, req))
            .map(|cluster| ClusterResponse { cluster })
    }

    /// ModifyCluster: the backup retention policy.
    pub fn modify_cluster(&self, req: &ModifyClusterRequest) -> Result<ClusterResponse> {
        self.cluster_admin(Op::ModifyCluster, |tx| hsm::modify_cluster(tx, req))
            .map(|cluster| ClusterResponse { cluster })
    }

    /// ModifyBackupAttributes: whether the backup never expires.
    pub fn modify_backup_attributes(
        &self,
        req: &ModifyBackupAttributesRequest,
    ) -> Result<BackupResponse> {
        self.cluster_admin(Op::ModifyBackupAttributes, |tx| {
            hsm::modify_backup_attributes(tx, req)
        })
    }

    /// TagResource on a cluster or a backup.
    pub fn tag_hsm_resource(&self, req: &TagHsmResourceRequest) -> Result<()> {
        self.cluster_admin(Op::TagHsmResource, |tx| hsm::tag_resource(tx, req))
    }

    /// UntagResource on a cluster or a backup.
    pub fn untag_hsm_resource(&self, req: &UntagHsmResourceRequest) -> Result<()> {
        self.cluster_admin(Op::UntagHsmResource, |tx| hsm::untag_resource(tx, req))
    }

    /// ListTags of a cluster or a backup.
    pub fn list_hsm_tags(&self, req: &ListHsmTagsRequest) -> Result<ListHsmTagsResponse> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::ListHsmTags.action())?;
            hsm::list_tags(tx.cloudhsm, tx.now, tx.scope, req)
        })
    }

    /// Takes a backup of a cluster now.
    pub fn create_backup(&self, cluster_id: &str) -> Result<BackupDescription> {
        self.cluster_admin(Op::CreateBackup, |tx| hsm::create_backup(tx, cluster_id))
    }

    /// DescribeBackups: one Region's backups (the request's, else the configured one).
    pub fn describe_backups(
        &self,
        req: &DescribeBackupsRequest,
    ) -> Result<DescribeBackupsResponse> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::DescribeBackups.action())?;
            hsm::describe_backups(tx.cloudhsm, tx.now, tx.scope, req)
        })
    }

    /// CopyBackupToRegion.
    pub fn copy_backup_to_region(
        &self,
        req: &CopyBackupToRegionRequest,
    ) -> Result<CopyBackupToRegionResponse> {
        self.cluster_admin(Op::CopyBackupToRegion, |tx| {
            hsm::copy_backup_to_region(tx, req)
        })
    }

    /// DeleteBackup: PENDING_DELETION, restorable for seven days.
    pub fn delete_backup(&self, req: &BackupIdRequest) -> Result<BackupResponse> {
        self.cluster_admin(Op::DeleteBackup, |tx| hsm::delete_backup(tx, req))
    }

    /// RestoreBackup: a PENDING_DELETION backup back to READY.
    pub fn restore_backup(&self, req: &BackupIdRequest) -> Result<BackupResponse> {
        self.cluster_admin(Op::RestoreBackup, |tx| hsm::restore_backup(tx, req))
    }

    /// `user create` (CloudHSM CLI).
    pub fn create_hsm_user(&self, req: &UserRequest) -> Result<UserDescription> {
        self.cluster_admin(Op::CreateUser, |tx| hsm::create_user(tx, req))
    }

    /// `user delete`.
    pub fn delete_hsm_user(&self, cluster_id: &str, username: &str) -> Result<()> {
        self.cluster_admin(Op::DeleteUser, |tx| {
            hsm::delete_user(tx, cluster_id, username)
        })
    }

    /// `user change-password` (also unlocks the user).
    pub fn change_hsm_user_password(&self, req: &UserRequest) -> Result<()> {
        self.cluster_admin(Op::ChangePassword, |tx| hsm::change_password(tx, req))
    }

    /// `user list`.
    pub fn list_hsm_users(&self, cluster_id: &str) -> Result<Vec<UserDescription>> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::ListUsers.action())?;
            hsm::list_users(tx.cloudhsm, cluster_id)
        })
    }

    /// `login` from the CloudHSM CLI; a wrong password counts towards the lockout.
    pub fn login_hsm_user(
        &self,
        cluster_id: &str,
        username: &str,
        password: &Password,
    ) -> Result<()> {
        self.write_always(|tx| {
            require_cluster_admin(tx, Op::Login.action())?;
            tx.in_hsm(|h| hsm::login_external(h, cluster_id, username, password))
        })
    }

    /// `logout` of a CloudHSM CLI session.
    pub fn logout_hsm_user(&self, cluster_id: &str, username: &str) -> Result<()> {
        self.cluster_admin(Op::Logout, |tx| {
            hsm::logout_external(tx, cluster_id, username)
        })
    }

    /// `key list`: metadata of the cluster's key objects, never their bytes.
    pub fn list_key_objects(&self, cluster_id: &str) -> Result<Vec<KeyObjectDescription>> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::ListKeyObjects.action())?;
            hsm::list_key_objects(tx.cloudhsm, cluster_id)
        })
    }

    /// `key delete` as the key's owner (removing an orphaned key by hand): a CLI session that
    /// logs in as the owner, so a wrong password counts towards the lockout, as with `login`.
    pub fn delete_key_object(
        &self,
        cluster_id: &str,
        handle: u64,
        username: &str,
        password: &Password,
    ) -> Result<()> {
        self.write_always(|tx| {
            require_cluster_admin(tx, Op::DeleteKeyObject.action())?;
            tx.in_hsm(|h| hsm::delete_key_object(h, cluster_id, handle, username, password))
        })
    }

    /// The cluster's audit log: each HSM's stream, independent of the KMS event log.
    pub fn hsm_audit_log(
        &self,
        cluster_id: &str,
        hsm_id: Option<&str>,
    ) -> Result<Vec<(HsmId, Vec<AuditEvent>)>> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::AuditLog.action())?;
            hsm::audit_log(tx.cloudhsm, cluster_id, hsm_id)
        })
    }

    /// The faults in force in a cluster (see [`ListFaultsResponse`]).
    pub fn list_faults(&self, cluster_id: &str) -> Result<Vec<Fault>> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::ListFaults.action())?;
            hsm::active_faults(tx.cloudhsm, cluster_id, tx.now)
        })
    }

    /// Injects a fault into a cluster.
    /// A timed network cut (`NetworkDownFor`) is healed by the background worker when the
    /// instance's clock reaches its end.
    pub fn inject_fault(&self, cluster_id: &str, fault: &Fault) -> Result<()> {
        let heals_at = self.cluster_admin(Op::InjectFault, |tx| {
            hsm::inject_fault(tx, cluster_id, fault)?;
            Ok(tx.now)
        })?;
        if let Fault::NetworkDownFor { duration_ms } = fault {
            let due = heals_at.plus(std::time::Duration::from_millis(*duration_ms));
            self.shared
                .schedule_at(Task::HealNetwork(cluster_id.to_owned(), due), due);
        }
        Ok(())
    }
}

/// Cluster administration and fault injection are for the account root (the daemon's uid).
pub(super) fn require_cluster_admin(tx: &Tx<'_>, action: PolicyAction) -> Result<()> {
    if crate::kms::keys::is_root(tx) {
        Ok(())
    } else {
        Err(err!(
            AccessDeniedException,
            "User: {} is not authorized to perform: {action}",
            tx.principal
        ))
    }
}
