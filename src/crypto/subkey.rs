//! Per-key AES-256-GCM subkeys with counter nonces: nonce safety at any request rate.
//!
//! A KMS key's material never encrypts data directly. Each (shard, key) pair draws a random
//! 16-byte *epoch salt* and derives
//! `subkey = HKDF-SHA256(ikm = key material, salt = epoch salt, info = "kmscks v1 subkey" ‖ key id)`.
//! Within an epoch the nonce is a counter (4 zero bytes ‖ 64-bit big-endian counter), so no
//! nonce repeats under one subkey. After `max_uses` seals the epoch is retired and a new salt
//! drawn. Salt and nonce travel in the ciphertext blob; decryption re-derives the subkey from
//! the salt, and each shard keeps recently used decrypt subkeys in a bounded [`SubkeyCache`].
//! The bound this gives is written down in `docs/ciphertext.md`.

use std::collections::HashMap;

use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;

use crate::crypto::random::RandomPool;
use crate::err;
use crate::error::Result;
use crate::secret::KeyMaterial;
use crate::types::KeyId;

/// HKDF `info` prefix; the 16 key-id bytes follow it.
pub const SUBKEY_INFO_LABEL: &[u8] = b"kmscks v1 subkey";
/// Epoch salt length in bytes.
pub const SALT_LEN: usize = 16;
/// AES-GCM nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Default number of seals under one subkey before it is retired (2^31, half the 2^32 that a
/// 32-bit invocation field would allow; the nonce counter itself is 64 bits wide).
pub const DEFAULT_MAX_USES: u64 = 1 << 31;
/// Largest accepted `max_uses` (2^32; NIST SP 800-38D's limit for one GCM key).
pub const MAX_MAX_USES: u64 = 1 << 32;

/// Derives the AES-256-GCM subkey of `key_id` for one epoch `salt`.
pub fn derive_subkey(
    material: &KeyMaterial,
    key_id: &KeyId,
    salt: &[u8; SALT_LEN],
) -> Result<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(material.expose());
    let info: [&[u8]; 2] = [SUBKEY_INFO_LABEL, key_id.as_bytes()];
    let okm = prk.expand(&info, &AES_256_GCM).map_err(|_| {
        err!(
            KMSInternalException,
            "subkey derivation failed for key {key_id}"
        )
    })?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// The counter nonce for use number `n` of a subkey.
pub fn counter_nonce(n: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    nonce
}

struct Epoch {
    salt: [u8; SALT_LEN],
    key: LessSafeKey,
    used: u64,
}

/// One key's encryption schedule on one shard: its material (kept only here, zeroized on
/// drop), the current epoch and the retirement threshold.
pub struct SubkeySchedule {
    key_id: KeyId,
    material: KeyMaterial,
    max_uses: u64,
    epoch: Option<Epoch>,
    epochs: u64,
}

/// What a seal needs: the epoch salt, a never-used nonce, and the subkey.
pub struct SealParams<'a> {
    /// The epoch salt (goes into the blob).
    pub salt: &'a [u8; SALT_LEN],
    /// The nonce (goes into the blob).
    pub nonce: [u8; NONCE_LEN],
    /// The subkey to seal with.
    pub key: &'a LessSafeKey,
}

impl SubkeySchedule {
    /// A schedule for `key_id`; `max_uses` is clamped to `1..=MAX_MAX_USES`.
    pub fn new(key_id: KeyId, material: KeyMaterial, max_uses: u64) -> SubkeySchedule {
        SubkeySchedule {
            key_id,
            material,
            max_uses: max_uses.clamp(1, MAX_MAX_USES),
            epoch: None,
            epochs: 0,
        }
    }

    /// How many epochs (salts) this schedule has started.
    #[cfg(test)]
    pub fn epochs_started(&self) -> u64 {
        self.epochs
    }

    /// Salt, nonce and subkey for the next seal; starts a new epoch when the current one is
    /// used up (or none exists yet).
    pub fn next(&mut self, pool: &mut RandomPool) -> Result<SealParams<'_>> {
        let fresh = match &self.epoch {
            Some(e) => e.used >= self.max_uses,
            None => true,
        };
        if fresh {
            let salt: [u8; SALT_LEN] = pool.array()?;
            let key = derive_subkey(&self.material, &self.key_id, &salt)?;
            self.epoch = Some(Epoch { salt, key, used: 0 });
            self.epochs += 1;
        }
        // Invariant: the block above guarantees `self.epoch` is `Some` here.
        let e = self.epoch.as_mut().ok_or_else(|| {
            err!(
                KMSInternalException,
                "subkey epoch missing for key {}",
                self.key_id
            )
        })?;
        let nonce = counter_nonce(e.used);
        e.used += 1;
        Ok(SealParams {
            salt: &e.salt,
            nonce,
            key: &e.key,
        })
    }

    /// The current epoch's subkey if `salt` is its salt (the common decrypt case).
    pub fn current(&self, salt: &[u8; SALT_LEN]) -> Option<&LessSafeKey> {
        self.epoch
            .as_ref()
            .filter(|e| &e.salt == salt)
            .map(|e| &e.key)
    }

    /// Derives the subkey for any epoch salt of this key.
    pub fn derive(&self, salt: &[u8; SALT_LEN]) -> Result<LessSafeKey> {
        derive_subkey(&self.material, &self.key_id, salt)
    }
}

impl std::fmt::Debug for SubkeySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubkeySchedule")
            .field("key_id", &self.key_id)
            .field("max_uses", &self.max_uses)
            .field("epochs", &self.epochs)
            .finish_non_exhaustive()
    }
}

/// A bounded cache of decrypt subkeys keyed by (key id, epoch salt).
///
/// Two generations: lookups hit `current`, then `previous` (promoting the entry). When
/// `current` reaches `cap` entries it becomes `previous` and the old `previous` is dropped, so
/// at most `2 * cap` subkeys are held and recently used ones survive (LRU-ish).
pub struct SubkeyCache {
    cap: usize,
    current: HashMap<(KeyId, [u8; SALT_LEN]), LessSafeKey>,
    previous: HashMap<(KeyId, [u8; SALT_LEN]), LessSafeKey>,
}

impl SubkeyCache {
    /// A cache holding at most `2 * cap` subkeys (`cap` at least 1).
    pub fn new(cap: usize) -> SubkeyCache {
        SubkeyCache {
            cap: cap.max(1),
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    /// The cached subkey for (`key_id`, `salt`), promoting it to the current generation.
    pub fn get(&mut self, key_id: &KeyId, salt: &[u8; SALT_LEN]) -> Option<&LessSafeKey> {
        let k = (*key_id, *salt);
        if !self.current.contains_key(&k) {
            let v = self.previous.remove(&k)?;
            self.insert(*key_id, *salt, v);
        }
        self.current.get(&k)
    }

    /// Caches `key` for (`key_id`, `salt`).
    pub fn insert(&mut self, key_id: KeyId, salt: [u8; SALT_LEN], key: LessSafeKey) {
        if self.current.len() >= self.cap {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert((key_id, salt), key);
    }

    /// Forgets every subkey of `key_id` (its material was removed).
    pub fn remove_key(&mut self, key_id: &KeyId) {
        self.current.retain(|k, _| &k.0 != key_id);
        self.previous.retain(|k, _| &k.0 != key_id);
    }

    /// Number of cached subkeys.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether the cache is empty.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::aead::{Aad, Nonce};

    fn seal_open(seal: &LessSafeKey, open: &LessSafeKey) -> bool {
        let mut buf = b"hello".to_vec();
        let n = counter_nonce(7);
        seal.seal_in_place_append_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut buf)
            .unwrap();
        open.open_in_place(Nonce::assume_unique_for_key(n), Aad::empty(), &mut buf)
            .is_ok()
    }

    #[test]
    fn rollover_after_max_uses_with_unique_nonces() {
        let id = KeyId::generate();
        let mut s = SubkeySchedule::new(id, KeyMaterial::generate(), 4);
        let mut pool = RandomPool::new();
        let mut seen = std::collections::HashSet::new();
        let mut salts = std::collections::HashSet::new();
        for _ in 0..12 {
            let p = s.next(&mut pool).unwrap();
            assert!(seen.insert((*p.salt, p.nonce)), "(salt, nonce) repeated");
            salts.insert(*p.salt);
        }
        assert_eq!(s.epochs_started(), 3);
        assert_eq!(salts.len(), 3);
    }

    #[test]
    fn derivation_depends_on_salt_key_id_and_material() {
        let m = KeyMaterial::generate();
        let id = KeyId::generate();
        let salt = [1u8; 16];
        let a = derive_subkey(&m, &id, &salt).unwrap();
        assert!(seal_open(&a, &derive_subkey(&m, &id, &salt).unwrap()));
        assert!(!seal_open(&a, &derive_subkey(&m, &id, &[2u8; 16]).unwrap()));
        assert!(!seal_open(
            &a,
            &derive_subkey(&m, &KeyId::generate(), &salt).unwrap()
        ));
        assert!(!seal_open(
            &a,
            &derive_subkey(&KeyMaterial::generate(), &id, &salt).unwrap()
        ));
    }

    #[test]
    fn cache_is_bounded_and_keeps_recent_entries() {
        let m = KeyMaterial::generate();
        let id = KeyId::generate();
        let mut c = SubkeyCache::new(4);
        for i in 0..20u8 {
            assert!(c.get(&id, &[i; 16]).is_none(), "salt {i} was never cached");
            c.insert(id, [i; 16], derive_subkey(&m, &id, &[i; 16]).unwrap());
            assert!(c.len() <= 8);
        }
        // Recent salts are served from the cache; the oldest were evicted.
        assert!(c.get(&id, &[19; 16]).is_some());
        assert!(c.get(&id, &[0; 16]).is_none());
        c.remove_key(&id);
        assert!(c.is_empty());
    }
}
