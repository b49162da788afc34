//! `--bootstrap`: on an empty data directory, a ready system — an ACTIVE cluster with two HSMs
//! in two zones and the `kmsuser` crypto user, a CONNECTED custom key store, and a key in it
//! with alias `alias/demo` — so that a newcomer can encrypt at once. On a data directory that
//! holds anything it does nothing.

use std::fmt;
use std::path::Path;

use crate::error::Result;
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

/// Creates the ready system (see [`crate::bootstrap`]) on an empty instance, as the account
/// root; does nothing on a non-empty one. `socket` is only reported.
pub fn bootstrap(kms: &Kms, socket: &Path) -> Result<Bootstrap> {
    if !is_empty(kms) {
        return Ok(Bootstrap::AlreadyInitialized);
    }
    let kms = kms.acting_as(&kms.scope().root_principal());
    let made = crate::bootstrap::bootstrap(&kms, DEMO_ALIAS)?;
    Ok(Bootstrap::Created {
        cluster_id: made.cloud_hsm_cluster_id,
        custom_key_store_id: made.custom_key_store_id,
        key_arn: made.key_arn,
        alias: made.alias_name,
        socket: socket.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kms::{DecryptRequest, EncryptRequest, KeyIdRequest};
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
        assert_eq!(kms.state_snapshot().kms.keys.len(), 1);
    }
}
