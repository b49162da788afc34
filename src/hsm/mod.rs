//! The simulated CloudHSM service: clusters, their HSMs, users, key objects, backups and audit
//! streams — and the narrow set of calls KMS makes into a cluster as `kmsuser`.
//!
//! Layering: `hsm` sits above `types`/`secret`/`error`/`crypto` and below `kms`. It owns its
//! state ([`CloudHsmState`]) and its changes ([`HsmChange`]); an operation reads the state and
//! records changes through an [`HsmTx`], and reaches wrapping keys only through the
//! [`Wrapper`] trait. It names nothing above it (`kms`, the control plane, the store, the
//! service): the control plane journals and applies [`HsmChange`]s beside KMS's changes.
//!
//! The operations, one subject per module, are re-exported here so callers write
//! `hsm::create_cluster(..)`.

mod audit;
mod backup;
mod cluster;
mod devices;
mod fault;
mod key_object;
mod kms_session;
mod paging;
mod tags;
pub mod model;
mod password;
pub mod pki;
pub mod state;
pub mod tx;
mod user;

pub use audit::audit_log;
pub use tags::{list_tags, tag_resource, untag_resource};
pub use backup::{
    backup_schedule, backups_due, copy_backup_to_region, create_backup, delete_backup, describe_backups,
    modify_backup_attributes, restore_backup,
};
pub use cluster::{
    activate_cluster, create_cluster, delete_cluster, describe_clusters, initialize_cluster,
    initialize_cluster_with_new_ca, modify_cluster, passing_clusters, settle_cluster,
};
pub use devices::{create_hsm, delete_hsm};
pub use fault::{active_faults, heal_timed_cut, inject_fault, timed_cuts};
pub use key_object::{delete_key_object, list_key_objects};
pub use password::{MIN_PASSWORD_ITERATIONS, PASSWORD_ITERATIONS};
pub use kms_session::{
    find_key, kms_connect, kms_delete_key, kms_disconnect, kms_generate_key, kms_logged_in,
    reachability,
};
pub use state::{CloudHsmState, HsmChange};
pub use tx::{HsmOutcome, HsmSettings, HsmTx, Wrapper};
pub use user::{
    change_password, create_user, delete_user, list_users, login_external, logout_external,
};
