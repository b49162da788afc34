//! Per-key AES-256-GCM subkeys with counter nonces: nonce safety at any request rate.
//!
//! A KMS key's material never encrypts data directly. Each (shard, key) pair draws a random
//! 16-byte *epoch salt* and derives
//! `subkey = HKDF-SHA256(ikm = key material, salt = epoch salt, info = "kmscks v1 subkey" ‖ key id)`.
//! Within an epoch the nonce is the material version (32-bit big-endian: 0 for a key's first
//! material, n after its n-th rotation) then a 64-bit big-endian counter, so no nonce repeats
//! under one subkey; the version tells Decrypt which material version derives the subkey. After `max_uses` seals the epoch is retired and a new salt
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

/// The counter nonce for use number `n` of a subkey of a key's first material (version 0).
pub fn counter_nonce(n: u64) -> [u8; NONCE_LEN] {
    versioned_nonce(0, n)
}

/// The nonce for use number `n` of a subkey derived from material version `version`.
pub fn versioned_nonce(version: u32, n: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&version.to_be_bytes());
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    nonce
}

/// The material version a nonce names.
pub fn nonce_version(nonce: &[u8; NONCE_LEN]) -> u32 {
    u32::from_be_bytes([nonce[0], nonce[1], nonce[2], nonce[3]])
}

/// One epoch of a schedule: its salt, its subkey (a handle to the expanded context) and how
/// many seals it has made. Written on every seal, it lives inline in its owner's schedule — in
/// the engine, inside the shard's own key map, an allocation no other shard writes — so a seal
/// reaches it without another pointer to chase.
struct Epoch {
    salt: [u8; SALT_LEN],
    key: LessSafeKey,
    used: u64,
    /// Set by every seal after the first, cleared by the shard's eviction sweep (see
    /// [`SubkeySchedule::age`]).
    referenced: bool,
    /// The material version (in every nonce of the epoch). Kept here, in what would be the
    /// epoch's padding, so that a schedule costs what it cost before keys rotated.
    version: u32,
}

/// One key's encryption schedule on one shard: its material (kept only here, zeroized on
/// drop) and, while the key is in use, the current epoch.
///
/// Compact on purpose: a shard holds one per key it can serve (100,000 at AWS's quota), so the
/// key id and the retirement threshold are the caller's (the shard's map key and its config),
/// and the epoch — an expanded AES-GCM context of several hundred bytes — exists only once the
/// key seals, and goes again when the shard evicts it ([`SubkeySchedule::evict`]); the next
/// seal then starts a new epoch with a fresh salt.
pub struct SubkeySchedule {
    material: KeyMaterial,
    epoch: Option<Epoch>,
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

/// What [`SubkeySchedule::next`] did besides handing out seal parameters.
pub struct Sealed<'a> {
    /// The parameters of this seal.
    pub params: SealParams<'a>,
    /// Whether this seal gave a schedule with no epoch one (the shard then counts it among
    /// its live ones; a retired epoch replaced in place does not count).
    pub became_live: bool,
}

impl SubkeySchedule {
    /// A schedule with no epoch yet, over a key's newest material.
    pub fn new(material: KeyMaterial) -> SubkeySchedule {
        SubkeySchedule {
            material,
            epoch: None,
        }
    }

    /// Salt, nonce and subkey for the next seal of `key_id`; starts a new epoch when the
    /// current one has made `max_uses` seals (clamped to `1..=MAX_MAX_USES`) or none exists,
    /// asking `version` then which version the material is (0 for a key that never rotated):
    /// once an epoch, not once a seal.
    pub fn next(
        &mut self,
        key_id: &KeyId,
        max_uses: u64,
        pool: &mut RandomPool,
        version: impl FnOnce() -> u32,
    ) -> Result<Sealed<'_>> {
        let max_uses = max_uses.clamp(1, MAX_MAX_USES);
        let became_live = self.epoch.is_none();
        if self.epoch.as_ref().is_none_or(|e| e.used >= max_uses) {
            let salt: [u8; SALT_LEN] = pool.array()?;
            let key = derive_subkey(&self.material, key_id, &salt)?;
            self.epoch = Some(Epoch {
                salt,
                key,
                used: 0,
                // A first seal is not a second use: a key sealed once and never again is the
                // first the sweep drops.
                referenced: !became_live,
                version: version(),
            });
        }
        // Invariant: the block above guarantees `self.epoch` is `Some` here.
        let e = self
            .epoch
            .as_mut()
            .ok_or_else(|| err!(KMSInternalException, "subkey epoch missing for key {key_id}"))?;
        let nonce = versioned_nonce(e.version, e.used);
        e.used += 1;
        e.referenced |= !became_live;
        Ok(Sealed {
            params: SealParams {
                salt: &e.salt,
                nonce,
                key: &e.key,
            },
            became_live,
        })
    }

    /// The current epoch's subkey if `salt` is its salt and `version` its material version
    /// (the common decrypt case).
    pub fn current(&self, salt: &[u8; SALT_LEN], version: u32) -> Option<&LessSafeKey> {
        self.epoch
            .as_ref()
            .filter(|e| &e.salt == salt && e.version == version)
            .map(|e| &e.key)
    }

    /// Derives the subkey of `key_id` for any epoch salt of this schedule's material.
    pub fn derive(&self, key_id: &KeyId, salt: &[u8; SALT_LEN]) -> Result<LessSafeKey> {
        derive_subkey(&self.material, key_id, salt)
    }

    /// One step of the shard's clock sweep: `true` if the epoch was used since the last step
    /// (it is kept, and its mark cleared), `false` if it was not (or there is none).
    pub fn age(&mut self) -> bool {
        match &mut self.epoch {
            Some(e) if e.referenced => {
                e.referenced = false;
                true
            }
            _ => false,
        }
    }

    /// Drops the current epoch (its subkey is freed; the next seal starts a new epoch).
    /// Returns whether there was one.
    pub fn evict(&mut self) -> bool {
        self.epoch.take().is_some()
    }

    /// Whether an epoch is live.
    #[cfg(test)]
    pub fn has_epoch(&self) -> bool {
        self.epoch.is_some()
    }
}

impl std::fmt::Debug for SubkeySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubkeySchedule")
            .field("epoch", &self.epoch.as_ref().map(|e| e.used))
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

    /// The `cap` it was made with.
    pub fn capacity(&self) -> usize {
        self.cap
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
        let mut s = SubkeySchedule::new(KeyMaterial::generate());
        let mut pool = RandomPool::new();
        let mut seen = std::collections::HashSet::new();
        let mut salts = std::collections::HashSet::new();
        let mut became_live = 0;
        for _ in 0..12 {
            let sealed = s.next(&id, 4, &mut pool, || 0).unwrap();
            became_live += usize::from(sealed.became_live);
            let p = sealed.params;
            assert!(seen.insert((*p.salt, p.nonce)), "(salt, nonce) repeated");
            salts.insert(*p.salt);
        }
        assert_eq!(salts.len(), 3, "a new epoch every 4 seals");
        assert_eq!(became_live, 1, "retired epochs are replaced in place");
    }

    #[test]
    fn an_evicted_epoch_is_replaced_by_a_fresh_salt_and_old_blobs_still_derive() {
        let id = KeyId::generate();
        let mut s = SubkeySchedule::new(KeyMaterial::generate());
        let mut pool = RandomPool::new();
        let first = *s.next(&id, 1 << 20, &mut pool, || 0).unwrap().params.salt;
        assert!(!s.age(), "a first seal does not count as a use");
        assert_eq!(*s.next(&id, 1 << 20, &mut pool, || 0).unwrap().params.salt, first);
        assert!(s.age(), "a second seal marks the epoch used");
        assert!(!s.age(), "the mark is cleared by the sweep");
        assert!(s.evict() && !s.has_epoch());
        let sealed = s.next(&id, 1 << 20, &mut pool, || 0).unwrap();
        assert!(sealed.became_live);
        let second = *sealed.params.salt;
        assert_ne!(first, second);
        assert_eq!(sealed.params.nonce, counter_nonce(0));
        // The evicted epoch's subkey is still derivable from its salt (for decryption).
        let old = s.derive(&id, &first).unwrap();
        assert!(seal_open(&old, &s.derive(&id, &first).unwrap()));
        assert!(s.current(&first, 0).is_none() && s.current(&second, 0).is_some());
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

    #[test]
    fn an_epochs_nonces_carry_the_material_version_it_was_started_with() {
        let id = KeyId::generate();
        let mut pool = RandomPool::new();
        let mut s = SubkeySchedule::new(KeyMaterial::generate());
        let sealed = s.next(&id, 1 << 20, &mut pool, || 7).unwrap();
        assert_eq!(sealed.params.nonce, versioned_nonce(7, 0));
        assert_eq!(nonce_version(&sealed.params.nonce), 7);
        let salt = *sealed.params.salt;
        // Asked once an epoch: the next seal keeps the epoch's version.
        let sealed = s.next(&id, 1 << 20, &mut pool, || unreachable!()).unwrap();
        assert_eq!(sealed.params.nonce, versioned_nonce(7, 1));
        assert!(s.current(&salt, 7).is_some() && s.current(&salt, 0).is_none());
        assert_eq!(counter_nonce(3), versioned_nonce(0, 3));
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_material_version_costs_a_schedule_no_memory() {
        // The version lives in the epoch's padding: a shard holds one schedule per key.
        assert_eq!(std::mem::size_of::<SubkeySchedule>(), 64);
    }
}
