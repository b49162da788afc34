//! `--bootstrap`: on an empty data directory, a ready system — an ACTIVE cluster with two HSMs
//! in two zones and the `kmsuser` crypto user, a CONNECTED custom key store, and a key in it
//! with alias `alias/demo` — so that a newcomer can encrypt at once. On a data directory that
//! holds anything it does nothing. [`build_ready_system`] builds that system on any instance (the
//! load generator of `kmscks bench` starts from it).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::api::hsm::{ClusterIdRequest, CreateClusterRequest, CreateHsmRequest, UserRequest};
use crate::api::kms::{
    AliasRequest, CreateCustomKeyStoreRequest, CreateKeyRequest, CustomKeyStoreIdRequest,
};
use crate::err;
use crate::error::Result;
use crate::secret::Password;
use crate::types::{ConnectionState, HsmUserRole, Origin};
use crate::Kms;

/// The alias bootstrap gives its key.
pub const DEMO_ALIAS: &str = "alias/demo";

/// What bootstrap did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// The data directory already held something; nothing was created.
    AlreadyInitialized,
    /// A ready system was created.
    Created {
        /// Cluster id.
        cluster_id: String,
        /// Custom key store id.
        custom_key_store_id: String,
        /// The key's ARN.
        key_arn: String,
        /// The key's alias ([`DEMO_ALIAS`]).
        alias: String,
        /// The socket the daemon listens on.
        socket: String,
    },
}

impl fmt::Display for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bootstrap::AlreadyInitialized => write!(
                f,
                "bootstrap: the data directory already holds a system; nothing created"
            ),
            Bootstrap::Created {
                cluster_id,
                custom_key_store_id,
                key_arn,
                alias,
                socket,
            } => {
                writeln!(f, "bootstrap: created a ready system")?;
                writeln!(f, "  cluster (ACTIVE, 2 HSMs, kmsuser): {cluster_id}")?;
                writeln!(
                    f,
                    "  custom key store (CONNECTED):      {custom_key_store_id}"
                )?;
                writeln!(f, "  key:                               {key_arn}")?;
                writeln!(f, "  alias:                             {alias}")?;
                writeln!(f, "  socket:                            {socket}")?;
                writeln!(f, "try:")?;
                write!(
                    f,
                    "  KMSCKS_SOCKET={socket} kmscks kms encrypt --key-id {alias} \
                     --plaintext fileb://<(echo hello)"
                )
            }
        }
    }
}

/// True when the instance holds no cluster, store, key, alias or backup.
pub fn is_empty(kms: &Kms) -> bool {
    let s = kms.state_snapshot();
    s.hsm.clusters.is_empty()
        && s.kms.stores.is_empty()
        && s.kms.keys.is_empty()
        && s.kms.aliases.is_empty()
        && s.hsm.backups.is_empty()
}

/// Creates the ready system ([`build_ready_system`]) on an empty instance, as the account
/// root; does nothing on a non-empty one. `socket` is only reported.
pub fn bootstrap(kms: &Kms, socket: &Path) -> Result<Bootstrap> {
    if !is_empty(kms) {
        return Ok(Bootstrap::AlreadyInitialized);
    }
    let kms = kms.acting_as(&kms.scope().root_principal());
    let made = build_ready_system(&kms, DEMO_ALIAS)?;
    Ok(Bootstrap::Created {
        cluster_id: made.cloud_hsm_cluster_id,
        custom_key_store_id: made.custom_key_store_id,
        key_arn: made.key_arn,
        alias: made.alias_name,
        socket: socket.display().to_string(),
    })
}

/// The store name bootstrap uses (and recognises on a second run).
pub const STORE_NAME: &str = "DemoKeyStore";

/// What bootstrap made.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReadySystem {
    /// The cluster.
    pub cloud_hsm_cluster_id: String,
    /// The connected store.
    pub custom_key_store_id: String,
    /// The key's ARN.
    pub key_arn: String,
    /// The key's alias.
    pub alias_name: String,
}

/// A connected custom key store on an active cluster, with no key in it yet.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectedStore {
    /// The cluster.
    pub cloud_hsm_cluster_id: String,
    /// The connected store.
    pub custom_key_store_id: String,
}

/// Builds the cluster (two HSMs in two zones, a kmsuser) and a connected custom key store on
/// it, and waits until the store is CONNECTED: [`build_ready_system`] without the key and its
/// alias (what the scale report creates its keys in). The kmsuser password is random and
/// never shown: KMS rotates it on connect anyway.
pub fn connected_store(kms: &Kms) -> Result<ConnectedStore> {
    let cluster = kms
        .create_cluster(&CreateClusterRequest::default())?
        .cluster;
    let cluster_id = cluster.cluster_id.to_string();
    // CREATE_IN_PROGRESS lasts the configured cluster transition.
    kms.wait_for_cluster(&cluster_id, Duration::from_secs(30))?;
    for zone in cluster.subnet_mapping.keys() {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: cluster_id.clone(),
            availability_zone: zone.clone(),
            region: None,
        })?;
    }
    let trust_anchor = kms
        .initialize_cluster_with_new_ca(&ClusterIdRequest {
            cluster_id: cluster_id.clone(),
            region: None,
        })?
        .trust_anchor
        .ok_or_else(|| {
            err!(
                KMSInternalException,
                "InitializeCluster returned no trust anchor"
            )
        })?;
    let password = Password::generate(24);
    kms.create_hsm_user(&UserRequest {
        cluster_id: cluster_id.clone(),
        username: "kmsuser".into(),
        role: Some(HsmUserRole::CryptoUser),
        password: password.duplicate(),
    })?;
    let store_id = kms
        .create_custom_key_store(&CreateCustomKeyStoreRequest {
            custom_key_store_name: STORE_NAME.into(),
            cloud_hsm_cluster_id: Some(cluster_id.clone()),
            trust_anchor_certificate: Some(trust_anchor),
            key_store_password: Some(password),
            custom_key_store_type: None,
        })?
        .custom_key_store_id;
    kms.connect_custom_key_store(&CustomKeyStoreIdRequest {
        custom_key_store_id: store_id.clone(),
    })?;
    let entry = kms.wait_for_connection(&store_id, Duration::from_secs(30))?;
    if entry.connection_state != ConnectionState::Connected {
        return Err(err!(
            KMSInternalException,
            "bootstrap store {store_id} ended {} ({:?})",
            entry.connection_state,
            entry.connection_error_code
        ));
    }
    Ok(ConnectedStore {
        cloud_hsm_cluster_id: cluster_id,
        custom_key_store_id: store_id,
    })
}

/// Builds the ready system with a key aliased `alias`, on any instance, as the caller of
/// `kms` (what the load generator starts from; [`bootstrap`] is the daemon's guarded use).
pub fn build_ready_system(kms: &Kms, alias: &str) -> Result<ReadySystem> {
    let ConnectedStore {
        cloud_hsm_cluster_id: cluster_id,
        custom_key_store_id: store_id,
    } = connected_store(kms)?;
    let key = kms.create_key(&CreateKeyRequest {
        custom_key_store_id: Some(store_id.clone()),
        origin: Some(Origin::AwsCloudhsm),
        description: Some("created by kmscks bootstrap".into()),
        ..Default::default()
    })?;
    kms.create_alias(&AliasRequest {
        alias_name: alias.into(),
        target_key_id: key.key_metadata.key_id.clone(),
    })?;
    Ok(ReadySystem {
        cloud_hsm_cluster_id: cluster_id,
        custom_key_store_id: store_id,
        key_arn: key.key_metadata.arn,
        alias_name: alias.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kms::{DecryptRequest, EncryptRequest, KeyIdRequest};
    use crate::secret::SecretBytes;
    use crate::types::KeyState;

    #[test]
    fn creates_a_usable_system_once() {
        let kms = Kms::in_memory();
        let made = bootstrap(&kms, Path::new("/tmp/s.sock")).unwrap();
        let Bootstrap::Created { key_arn, .. } = &made else {
            panic!("nothing created: {made}")
        };
        let text = made.to_string();
        assert!(
            text.contains("alias/demo") && text.contains("/tmp/s.sock"),
            "{text}"
        );
        let described = kms
            .describe_key(&KeyIdRequest {
                key_id: DEMO_ALIAS.into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(&described.key_metadata.arn, key_arn);
        let ct = kms
            .encrypt(&EncryptRequest {
                key_id: DEMO_ALIAS.into(),
                plaintext: SecretBytes::new(b"hello".to_vec()),
                ..Default::default()
            })
            .unwrap();
        let pt = kms
            .decrypt(&DecryptRequest {
                ciphertext_blob: ct.ciphertext_blob,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(pt.plaintext.expose(), b"hello");
        assert_eq!(
            bootstrap(&kms, Path::new("/tmp/s.sock")).unwrap(),
            Bootstrap::AlreadyInitialized
        );
        assert_eq!(kms.state_snapshot().kms.keys.len(), 1);
    }

    #[test]
    fn build_ready_system_gives_a_usable_store_key() {
        let kms = Kms::in_memory();
        let b = build_ready_system(&kms, "alias/demo").unwrap();
        let d = kms
            .describe_key(&KeyIdRequest {
                key_id: "alias/demo".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(d.key_metadata.arn, b.key_arn);
        assert_eq!(d.key_metadata.key_state, KeyState::Enabled);
        assert_eq!(
            d.key_metadata.custom_key_store_id.as_deref(),
            Some(b.custom_key_store_id.as_str())
        );
        let enc = kms
            .encrypt(&EncryptRequest {
                key_id: "alias/demo".into(),
                plaintext: SecretBytes::from_slice(b"hi"),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(*enc.key_id, *b.key_arn);
    }
}
