//! Wrapping keys, loaded once and held in memory: the KMS master key (default-store key
//! material, key store passwords) and one key per cluster lineage (HSM key objects).
//!
//! On disk each key is a 0600 file under `<data dir>/keys/` (see `store::keyfile`), optionally
//! sealed with a passphrase. In memory mode keys are generated and never written anywhere.

use std::collections::HashMap;

use crate::crypto::wrap;
use crate::error::Result;
use crate::secret::{KeyMaterial, SecretBytes};
use crate::store::keyfile::{self, KeyFileOptions};
use crate::store::DataDir;
use crate::{err, ErrorKind, KmsError};

/// Name of the KMS master key file.
pub const MASTER_KEY: &str = "kms-master";

/// Wrapping keys by name.
#[derive(Default)]
pub struct Keyring {
    keys: HashMap<String, KeyMaterial>,
    options: Option<KeyFileOptions>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// A keyring together with the directory its files live in (none in memory mode).
pub struct KeyAccess<'a> {
    /// The keys.
    pub keyring: &'a mut Keyring,
    /// The data directory, in durable mode.
    pub dir: Option<&'a DataDir>,
}

impl Keyring {
    /// An empty keyring using these key-file options.
    pub fn new(options: KeyFileOptions) -> Keyring {
        Keyring {
            keys: HashMap::new(),
            options: Some(options),
        }
    }
}

impl KeyAccess<'_> {
    /// The key called `name`, loading it from disk (or creating it) the first time.
    pub fn key(&mut self, name: &str, create: bool) -> Result<&KeyMaterial> {
        if !self.keyring.keys.contains_key(name) {
            let key = match self.dir {
                None if create => KeyMaterial::generate(),
                None => {
                    return Err(err!(
                        KMSInternalException,
                        "wrapping key {name} is not loaded"
                    ))
                }
                Some(dir) => {
                    if self.keyring.options.is_none() {
                        self.keyring.options = Some(KeyFileOptions::from_env()?);
                    }
                    let options = self.keyring.options.as_ref().expect("set just above");
                    if create {
                        keyfile::load_or_create_key(dir, name, options)?
                    } else {
                        keyfile::load_key(dir, name, options)?
                    }
                }
            };
            self.keyring.keys.insert(name.to_owned(), key);
        }
        // Inserted just above when missing.
        Ok(&self.keyring.keys[name])
    }

    /// Wraps `material` under key `name`, binding it to `aad`.
    pub fn wrap_key(&mut self, name: &str, aad: &[u8], material: &KeyMaterial) -> Result<Vec<u8>> {
        Ok(wrap::wrap_key(self.key(name, true)?, aad, material))
    }

    /// Unwraps key material wrapped by [`KeyAccess::wrap_key`].
    pub fn unwrap_key(&mut self, name: &str, aad: &[u8], wrapped: &[u8]) -> Result<KeyMaterial> {
        wrap::unwrap_key(self.key(name, false)?, aad, wrapped).map_err(|e| unwrap_error(name, e))
    }

    /// Wraps arbitrary secret bytes (passwords, PKCS#8 keys).
    pub fn wrap_bytes(&mut self, name: &str, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>> {
        Ok(wrap::wrap(self.key(name, true)?, aad, secret))
    }

    /// Unwraps bytes wrapped by [`KeyAccess::wrap_bytes`].
    pub fn unwrap_bytes(&mut self, name: &str, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes> {
        wrap::unwrap(self.key(name, false)?, aad, wrapped).map_err(|e| unwrap_error(name, e))
    }
}

fn unwrap_error(name: &str, e: wrap::WrapError) -> KmsError {
    KmsError::new(
        ErrorKind::KMSInternalException,
        format!("cannot unwrap an object under wrapping key {name}: {e}"),
    )
}
