//! A ready-to-use system in one call: an active cluster with two HSMs in two zones and a
//! kmsuser, a connected custom key store on it, and a key in the store with an alias. What
//! `kmscksd --bootstrap`, the load generator and the scale report start from.

use std::time::Duration;

use serde::Serialize;

use crate::err;
use crate::error::Result;
use crate::hsm::api::{CreateClusterRequest, CreateHsmRequest, UserRequest};
use crate::kms::api::*;
use crate::secret::Password;
use crate::types::{ConnectionState, HsmUserRole, Origin};
use crate::Kms;

/// The store name bootstrap uses (and recognises on a second run).
pub const STORE_NAME: &str = "DemoKeyStore";

/// What bootstrap made.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Bootstrapped {
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
/// it, and waits until the store is CONNECTED: [`bootstrap`] without the key and alias (what
/// the scale report creates its keys in).
pub fn connected_store(kms: &Kms) -> Result<ConnectedStore> {
    let cluster = kms
        .create_cluster(&CreateClusterRequest::default())?
        .cluster;
    let cluster_id = cluster.cluster_id.to_string();
    for zone in cluster.subnet_mapping.keys() {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: cluster_id.clone(),
            availability_zone: zone.clone(),
        })?;
    }
    let trust_anchor = kms
        .initialize_cluster_with_new_ca(&cluster_id)?
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

/// Builds the system with a key aliased `alias`. The kmsuser password is random and never
/// shown: KMS rotates it on connect anyway.
pub fn bootstrap(kms: &Kms, alias: &str) -> Result<Bootstrapped> {
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
    Ok(Bootstrapped {
        cloud_hsm_cluster_id: cluster_id,
        custom_key_store_id: store_id,
        key_arn: key.key_metadata.arn,
        alias_name: alias.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::KeyState;

    #[test]
    fn bootstrap_gives_a_usable_store_key() {
        let kms = Kms::in_memory();
        let b = bootstrap(&kms, "alias/demo").unwrap();
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
                plaintext: crate::secret::SecretBytes::from_slice(b"hi"),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(*enc.key_id, *b.key_arn);
    }
}
