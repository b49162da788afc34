//! `--bootstrap`: on an empty data directory, a ready system — an ACTIVE cluster with two HSMs
//! in two zones and the `kmsuser` crypto user, a CONNECTED custom key store, and a key in it
//! with alias `alias/demo` — so that a newcomer can encrypt at once. On a data directory that
//! holds anything it does nothing.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::err;
use crate::error::Result;
use crate::hsm::api::{CreateClusterRequest, CreateHsmRequest, UserRequest};
use crate::kms::api::{
    AliasRequest, CreateCustomKeyStoreRequest, CreateKeyRequest, CustomKeyStoreIdRequest,
};
use crate::secret::Password;
use crate::types::{HsmUserRole, Origin};
use crate::Kms;

/// The alias bootstrap gives its key.
pub const DEMO_ALIAS: &str = "alias/demo";
/// The name of the custom key store bootstrap creates.
pub const DEMO_STORE_NAME: &str = "DemoKeyStore";

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
    s.clusters.is_empty()
        && s.stores.is_empty()
        && s.keys.is_empty()
        && s.aliases.is_empty()
        && s.backups.is_empty()
}

/// Creates the ready system on an empty instance (as the account root); does nothing on
/// a non-empty one. `socket` is only reported.
pub fn bootstrap(kms: &Kms, socket: &Path) -> Result<Bootstrap> {
    if !is_empty(kms) {
        return Ok(Bootstrap::AlreadyInitialized);
    }
    let kms = kms.acting_as(&kms.scope().root_principal());
    let cluster = kms
        .create_cluster(&CreateClusterRequest::default())?
        .cluster;
    let cluster_id = cluster.cluster_id.to_string();
    let zones: Vec<String> = cluster.subnet_mapping.keys().take(2).cloned().collect();
    if zones.len() < 2 {
        return Err(err!(
            KMSInternalException,
            "bootstrap: the new cluster {cluster_id} has {} zones, not 2",
            zones.len()
        ));
    }
    for zone in zones {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: cluster_id.clone(),
            availability_zone: zone,
        })?;
    }
    let trust_anchor = kms
        .initialize_cluster_with_new_ca(&cluster_id)?
        .trust_anchor
        .ok_or_else(|| err!(KMSInternalException, "bootstrap: no trust anchor returned"))?;
    // kmsuser's password is random and kept only inside the store's (wrapped) record: nobody
    // needs it to use the demo key.
    let password = Password::generate(24);
    kms.create_hsm_user(&UserRequest {
        cluster_id: cluster_id.clone(),
        username: "kmsuser".into(),
        role: Some(HsmUserRole::CryptoUser),
        password: password.duplicate(),
    })?;
    let store_id = kms
        .create_custom_key_store(&CreateCustomKeyStoreRequest {
            custom_key_store_name: DEMO_STORE_NAME.into(),
            cloud_hsm_cluster_id: Some(cluster_id.clone()),
            trust_anchor_certificate: Some(trust_anchor),
            key_store_password: Some(password),
            custom_key_store_type: None,
        })?
        .custom_key_store_id;
    kms.connect_custom_key_store(&CustomKeyStoreIdRequest {
        custom_key_store_id: store_id.clone(),
    })?;
    kms.wait_for_connection(&store_id, Duration::from_secs(30))?;
    let key = kms
        .create_key(&CreateKeyRequest {
            custom_key_store_id: Some(store_id.clone()),
            origin: Some(Origin::AwsCloudhsm),
            description: Some("kmscksd --bootstrap demo key".into()),
            ..Default::default()
        })?
        .key_metadata;
    kms.create_alias(&AliasRequest {
        alias_name: DEMO_ALIAS.into(),
        target_key_id: key.key_id.clone(),
    })?;
    Ok(Bootstrap::Created {
        cluster_id,
        custom_key_store_id: store_id,
        key_arn: key.arn,
        alias: DEMO_ALIAS.into(),
        socket: socket.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::api::{DecryptRequest, EncryptRequest, KeyIdRequest};
    use crate::secret::SecretBytes;

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
        assert_eq!(kms.state_snapshot().keys.len(), 1);
    }
}
