//! Wrapping keys, loaded once and held in memory: the KMS master key (default-store key
//! material, key store passwords) and one key per cluster lineage (HSM key objects).
//!
//! On disk each key is a 0600 file under `<data dir>/keys/` (see `store::keyfile`), optionally
//! sealed with a passphrase. In memory mode keys are generated and never written anywhere.
//!
//! The master key also authenticates the store: [`Keyring::open_data_dir`] reads it after
//! locking the data directory and before the journal and snapshots are read, and gives the
//! store the key derived from it ([`Keyring::store_auth`]).
//!
//! Key files are read and created here only, outside any transaction: the key-file options
//! (the passphrase) are given once, when the keyring is opened; every key the state names is
//! loaded then; a key a transaction asks for ([`crate::hsm::HsmTx::create_key`]) is created by
//! the commit path before the transaction's record is written. Transactions see the keyring
//! only as a [`Wrapper`] over the keys already loaded.

use std::collections::HashMap;

use crate::crypto::wrap;
use crate::error::Result;
use crate::hsm::Wrapper;
use crate::secret::{KeyMaterial, SecretBytes};
use std::path::Path;

use crate::store::keyfile::{self, KeyFileOptions};
use crate::store::{DataDir, LockedDir, Recovered, StoreAuth};
use crate::{err, ErrorKind, KmsError};

pub use crate::kms::MASTER_KEY;

/// Wrapping keys by name.
#[derive(Default)]
pub struct Keyring {
    keys: HashMap<String, KeyMaterial>,
    /// Why a key the state names could not be loaded at open (reported when it is used).
    unavailable: HashMap<String, KmsError>,
    options: KeyFileOptions,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Keyring {
    /// The keyring of the durable instance in `dir`, whose key files `options` protect: loads
    /// the master key now, so that a sealed key file with a missing or wrong passphrase stops
    /// the open rather than a later operation. It is created only in a directory holding no
    /// snapshot or journal yet: one that does was written under a master key, and a new key
    /// could authenticate none of it (the snapshot would then be refused as if tampered with),
    /// so a missing key file is a `StorageException` naming it, and nothing is written. Then
    /// removes the temporary key files a killed process left ([`keyfile::remove_stale_temps`];
    /// a failure there is logged, not fatal).
    pub fn open(dir: &LockedDir, options: KeyFileOptions) -> Result<Keyring> {
        let mut keyring = Keyring {
            options,
            ..Keyring::default()
        };
        match dir.store_file_written()? {
            None => keyring.create(Some(dir), MASTER_KEY)?,
            Some(written) => {
                let Some(key) = keyfile::load_key_if_present(dir, MASTER_KEY, &keyring.options)?
                else {
                    let path = keyfile::key_path(dir, MASTER_KEY)?;
                    return Err(err!(
                        StorageException,
                        "the master key {} is missing, but the data directory holds {}, \
                         written under it: refusing to create a new master key, which could \
                         read none of it (restore {} from a backup of this directory)",
                        path.display(),
                        written.display(),
                        path.display()
                    ));
                };
                keyring.keys.insert(MASTER_KEY.to_owned(), key);
            }
        }
        // The directory is locked and nothing else of this process writes in it yet: every
        // temporary key file there is a killed process's.
        if let Err(e) = keyfile::remove_stale_temps(dir) {
            tracing::warn!(
                error = %e,
                "temporary key files a killed process left could not be removed; the next \
                 open tries again"
            );
        }
        Ok(keyring)
    }

    /// Opens the data directory `path` of a durable instance: locks it, opens the keyring
    /// (the master key is read, or created in a directory holding no snapshot or journal yet,
    /// before anything else), then
    /// recovers the journal and snapshots, authenticated with [`Keyring::store_auth`]. So a
    /// journal or snapshot changed offline is refused before any of it is replayed.
    pub fn open_data_dir(
        path: &Path,
        options: KeyFileOptions,
    ) -> Result<(Keyring, DataDir, Recovered)> {
        let locked = DataDir::lock(path)?;
        let keyring = Keyring::open(&locked, options)?;
        let auth = keyring.store_auth()?;
        let (disk, recovered) = locked.recover(auth)?;
        Ok((keyring, disk, recovered))
    }

    /// The key that authenticates the journal and snapshots: derived from the master key
    /// (`StoreAuth::derive`: HKDF-SHA256 with the store's own label), so it needs no key file
    /// of its own and is as well protected as the master key.
    pub fn store_auth(&self) -> Result<StoreAuth> {
        Ok(StoreAuth::derive(self.key(MASTER_KEY)?))
    }

    /// The keyring of an in-memory instance: a fresh master key, nothing on disk.
    pub fn in_memory() -> Keyring {
        let mut keyring = Keyring::default();
        keyring
            .keys
            .insert(MASTER_KEY.to_owned(), KeyMaterial::generate());
        keyring
    }

    /// Loads the existing keys `names` from `dir` (nothing to do in memory mode). A key that
    /// cannot be loaded is remembered with its error, which every use of it then reports.
    pub fn load<'n>(&mut self, dir: Option<&DataDir>, names: impl IntoIterator<Item = &'n str>) {
        let Some(dir) = dir else { return };
        for name in names {
            if self.keys.contains_key(name) {
                continue;
            }
            match keyfile::load_key(dir, name, &self.options) {
                Ok(key) => {
                    self.keys.insert(name.to_owned(), key);
                }
                Err(e) => {
                    self.unavailable.insert(name.to_owned(), e);
                }
            }
        }
    }

    /// Makes sure key `name` exists: loads it, or creates it (a key file in `dir`, or only in
    /// memory when there is no directory).
    pub fn create(&mut self, dir: Option<&LockedDir>, name: &str) -> Result<()> {
        if self.keys.contains_key(name) {
            return Ok(());
        }
        let key = match dir {
            None => KeyMaterial::generate(),
            Some(dir) => keyfile::load_or_create_key(dir, name, &self.options)?,
        };
        self.unavailable.remove(name);
        self.keys.insert(name.to_owned(), key);
        Ok(())
    }

    fn key(&self, name: &str) -> Result<&KeyMaterial> {
        match self.keys.get(name) {
            Some(key) => Ok(key),
            None => Err(self.unavailable.get(name).cloned().unwrap_or_else(|| {
                err!(KMSInternalException, "wrapping key {name} is not loaded")
            })),
        }
    }
}

impl Wrapper for Keyring {
    fn wrap_key(&self, name: &str, aad: &[u8], material: &KeyMaterial) -> Result<Vec<u8>> {
        Ok(wrap::wrap_key(self.key(name)?, aad, material))
    }

    fn unwrap_key(&self, name: &str, aad: &[u8], wrapped: &[u8]) -> Result<KeyMaterial> {
        wrap::unwrap_key(self.key(name)?, aad, wrapped).map_err(|e| unwrap_error(name, e))
    }

    fn wrap_bytes(&self, name: &str, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>> {
        Ok(wrap::wrap(self.key(name)?, aad, secret))
    }

    fn unwrap_bytes(&self, name: &str, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes> {
        wrap::unwrap(self.key(name)?, aad, wrapped).map_err(|e| unwrap_error(name, e))
    }
}

fn unwrap_error(name: &str, e: wrap::WrapError) -> KmsError {
    KmsError::new(
        ErrorKind::KMSInternalException,
        format!("cannot unwrap an object under wrapping key {name}: {e}"),
    )
}
