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
use zeroize::Zeroizing;

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
    expand(&*derive_subkey_bytes(material, key_id, salt)?)
}

/// The bytes of the AES-256-GCM subkey of `key_id` for one epoch `salt`, zeroized on drop.
fn derive_subkey_bytes(
    material: &KeyMaterial,
    key_id: &KeyId,
    salt: &[u8; SALT_LEN],
) -> Result<Zeroizing<[u8; SUBKEY_LEN]>> {
    let failed = || {
        err!(
            KMSInternalException,
            "subkey derivation failed for key {key_id}"
        )
    };
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(material.expose());
    let info: [&[u8]; 2] = [SUBKEY_INFO_LABEL, key_id.as_bytes()];
    let okm = prk.expand(&info, &AES_256_GCM).map_err(|_| failed())?;
    let mut subkey = Zeroizing::new([0u8; SUBKEY_LEN]);
    okm.fill(subkey.as_mut()).map_err(|_| failed())?;
    Ok(subkey)
}

/// The counter nonce for use number `n` of a subkey of a key's first material (version 0).
pub fn counter_nonce(n: u64) -> [u8; NONCE_LEN] {
    versioned_nonce(0, n)
}

/// The nonce for use number `n` of a subkey derived from material version `version`.
pub fn versioned_nonce(version: u32, n: u64) -> [u8; NONCE_LEN] {
    // The version's 4 bytes, then the counter's 8, all big-endian: stored as an 8-byte and a
    // 4-byte piece, the sizes the seal reads the nonce back in at once (4 + 8 made each of
    // those loads span two stores and wait for them: a store-forwarding stall per seal).
    let head = ((u64::from(version) << 32) | (n >> 32)).to_be_bytes();
    let tail = (n as u32).to_be_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&head);
    nonce[8..].copy_from_slice(&tail);
    nonce
}

/// The material version a nonce names.
pub fn nonce_version(nonce: &[u8; NONCE_LEN]) -> u32 {
    u32::from_be_bytes([nonce[0], nonce[1], nonce[2], nonce[3]])
}

/// Length of a subkey in bytes (AES-256).
const SUBKEY_LEN: usize = 32;

/// One epoch of a schedule: its salt, its subkey and how many seals it has made. Its counter,
/// written on every seal, lives inline in its owner's schedule — in the engine, inside the
/// shard's own key map, an allocation no other shard writes.
///
/// The subkey is kept in two forms ([`EpochKeys`]): its 32 bytes, always, and the aws-lc
/// context expanded from them (round keys and GHASH tables, several hundred bytes in an
/// allocation of aws-lc's), only while the owner keeps it ([`SubkeySchedule::next`]'s `keep`). A key used now and then seals
/// by expanding its bytes for that one call: on this machine that costs less than fetching a
/// context that has left the caches, and a shard of 100,000 keys keeps contexts only for the
/// keys it uses most.
struct Epoch {
    salt: [u8; SALT_LEN],
    keys: Box<EpochKeys>,
    used: u64,
    /// Set by every seal under the kept context after the first, cleared by the shard's
    /// eviction sweep (see [`SubkeySchedule::age`]).
    referenced: bool,
    /// The material version (in every nonce of the epoch). Kept here, in what would be the
    /// epoch's padding, so that the version costs a schedule no memory.
    version: u32,
}

/// An epoch's subkey in its two forms. Boxed, so that a schedule — one per key a shard can
/// serve, most of them never used between two restarts — stays small (the box exists only once
/// the key seals).
struct EpochKeys {
    subkey: Zeroizing<[u8; SUBKEY_LEN]>,
    expanded: Option<LessSafeKey>,
}

/// One key's encryption schedule on one shard: its material (kept only here, zeroized on
/// drop) and, once the key has sealed, the current epoch.
///
/// Compact on purpose: a shard holds one per key it can serve (100,000 at AWS's quota), so the
/// key id and the retirement threshold are the caller's (the shard's map key and its config),
/// the epoch exists only once the key seals, and its expanded context only while the shard
/// keeps it ([`SubkeySchedule::evict`] drops the context, not the epoch: the next seal goes on
/// with the same salt and counter).
pub struct SubkeySchedule {
    material: KeyMaterial,
    epoch: Option<Epoch>,
}

/// The subkey a seal or an open uses: the context the schedule keeps, or one expanded for this
/// call alone (freed, by aws-lc, when it is dropped).
pub enum Subkey<'a> {
    /// The schedule's kept context.
    Kept(&'a LessSafeKey),
    /// Expanded for this call.
    Once(LessSafeKey),
}

impl std::ops::Deref for Subkey<'_> {
    type Target = LessSafeKey;

    fn deref(&self) -> &LessSafeKey {
        match self {
            Subkey::Kept(k) => k,
            Subkey::Once(k) => k,
        }
    }
}

/// What a seal needs: the epoch salt, a never-used nonce, and the subkey.
pub struct SealParams<'a> {
    /// The epoch salt (goes into the blob).
    pub salt: &'a [u8; SALT_LEN],
    /// The nonce (goes into the blob).
    pub nonce: [u8; NONCE_LEN],
    /// The subkey to seal with.
    pub key: Subkey<'a>,
}

/// What [`SubkeySchedule::next`] did besides handing out seal parameters.
pub struct Sealed<'a> {
    /// The parameters of this seal.
    pub params: SealParams<'a>,
    /// Whether this seal made the schedule keep an expanded context it did not keep before
    /// (the shard then counts it among its kept ones; a retired epoch's context replaced in
    /// place does not count).
    pub became_live: bool,
}

/// Expands a subkey's bytes into an aws-lc AES-256-GCM context.
fn expand(subkey: &[u8; SUBKEY_LEN]) -> Result<LessSafeKey> {
    let key = UnboundKey::new(&AES_256_GCM, subkey)
        .map_err(|_| err!(KMSInternalException, "AES-256-GCM key setup failed"))?;
    Ok(LessSafeKey::new(key))
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
    /// once an epoch, not once a seal. When no context is kept, `keep` says whether to keep
    /// the one this seal expands (else it serves this seal alone).
    ///
    /// Inlined into the seals (the new epoch's work is not): returned through memory, the
    /// answer's fields were read back at once in pieces of other sizes than they were stored
    /// in, a store-forwarding stall on every seal.
    #[inline(always)]
    pub fn next(
        &mut self,
        key_id: &KeyId,
        max_uses: u64,
        pool: &mut RandomPool,
        version: impl FnOnce() -> u32,
        keep: bool,
    ) -> Result<Sealed<'_>> {
        let max_uses = max_uses.clamp(1, MAX_MAX_USES);
        if self.epoch.as_ref().is_none_or(|e| e.used >= max_uses) {
            self.start_epoch(key_id, pool, version())?;
        }
        // Invariant: the block above guarantees `self.epoch` is `Some` here.
        let e = self
            .epoch
            .as_mut()
            .ok_or_else(|| err!(KMSInternalException, "subkey epoch missing for key {key_id}"))?;
        let became_live = keep && e.keys.expanded.is_none();
        if became_live {
            e.keys.expanded = Some(expand(&e.keys.subkey)?);
        } else {
            // A first seal under a kept context is not a second use: a key sealed once and
            // never again is the first the sweep drops.
            e.referenced |= e.keys.expanded.is_some();
        }
        let nonce = versioned_nonce(e.version, e.used);
        e.used += 1;
        let key = match &e.keys.expanded {
            Some(k) => Subkey::Kept(k),
            None => Subkey::Once(expand(&e.keys.subkey)?),
        };
        Ok(Sealed {
            params: SealParams {
                salt: &e.salt,
                nonce,
                key,
            },
            became_live,
        })
    }

    /// Begins a new epoch (a fresh salt, its subkey derived) for material `version`.
    #[cold]
    #[inline(never)]
    fn start_epoch(&mut self, key_id: &KeyId, pool: &mut RandomPool, version: u32) -> Result<()> {
        let salt: [u8; SALT_LEN] = pool.array()?;
        let subkey = derive_subkey_bytes(&self.material, key_id, &salt)?;
        // A retired epoch's kept context is replaced by the new one's, in place.
        let expanded = match self.keeps_context() {
            true => Some(expand(&subkey)?),
            false => None,
        };
        self.epoch = Some(Epoch {
            salt,
            keys: Box::new(EpochKeys { subkey, expanded }),
            used: 0,
            referenced: false,
            version,
        });
        Ok(())
    }

    /// The current epoch's subkey if `salt` is its salt and `version` its material version
    /// (the common decrypt case): its kept context, or one expanded from its bytes.
    pub fn current(&self, salt: &[u8; SALT_LEN], version: u32) -> Option<Result<Subkey<'_>>> {
        let e = self
            .epoch
            .as_ref()
            .filter(|e| &e.salt == salt && e.version == version)?;
        Some(match &e.keys.expanded {
            Some(k) => Ok(Subkey::Kept(k)),
            None => expand(&e.keys.subkey).map(Subkey::Once),
        })
    }

    /// Derives the subkey of `key_id` for any epoch salt of this schedule's material.
    pub fn derive(&self, key_id: &KeyId, salt: &[u8; SALT_LEN]) -> Result<LessSafeKey> {
        derive_subkey(&self.material, key_id, salt)
    }

    /// One step of the shard's clock sweep: `true` if the kept context was used since the
    /// last step (it is kept, and its mark cleared), `false` if it was not (or there is none).
    pub fn age(&mut self) -> bool {
        match &mut self.epoch {
            Some(e) if e.referenced => {
                e.referenced = false;
                true
            }
            _ => false,
        }
    }

    /// Drops the kept context (aws-lc frees it; the epoch, its salt and its counter stay, so
    /// the next seal goes on from them). Returns whether there was one.
    pub fn evict(&mut self) -> bool {
        match &mut self.epoch {
            Some(e) => {
                e.referenced = false;
                e.keys.expanded.take().is_some()
            }
            None => false,
        }
    }

    /// Whether an epoch exists.
    #[cfg(test)]
    pub fn has_epoch(&self) -> bool {
        self.epoch.is_some()
    }

    /// Whether an expanded context is kept.
    pub fn keeps_context(&self) -> bool {
        self.epoch.as_ref().is_some_and(|e| e.keys.expanded.is_some())
    }
}

impl std::fmt::Debug for SubkeySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubkeySchedule")
            .field("epoch", &self.epoch.as_ref().map(|e| e.used))
            .field("keeps_context", &self.keeps_context())
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

    #[test]
    fn a_nonce_is_the_version_then_the_counter_both_big_endian() {
        for (version, n) in [(0, 0), (7, 1), (u32::MAX, u64::MAX), (0x0102_0304, 0x1122_3344_5566_7788)] {
            let mut expected = version.to_be_bytes().to_vec();
            expected.extend_from_slice(&n.to_be_bytes());
            assert_eq!(versioned_nonce(version, n).to_vec(), expected);
            assert_eq!(nonce_version(&versioned_nonce(version, n)), version);
        }
    }

    /// "hello" sealed with `p` (no additional data): the nonce and the sealed bytes.
    fn sealed_with(p: SealParams<'_>) -> ([u8; NONCE_LEN], Vec<u8>) {
        let mut buf = b"hello".to_vec();
        p.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(p.nonce), Aad::empty(), &mut buf)
            .unwrap();
        (p.nonce, buf)
    }

    /// Whether `key` opens what [`sealed_with`] sealed, back to "hello".
    fn opens(key: &LessSafeKey, (nonce, mut buf): ([u8; NONCE_LEN], Vec<u8>)) -> bool {
        key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .is_ok_and(|p| p == b"hello")
    }

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
            let sealed = s.next(&id, 4, &mut pool, || 0, true).unwrap();
            became_live += usize::from(sealed.became_live);
            let p = sealed.params;
            assert!(matches!(p.key, Subkey::Kept(_)));
            assert!(seen.insert((*p.salt, p.nonce)), "(salt, nonce) repeated");
            salts.insert(*p.salt);
        }
        assert_eq!(salts.len(), 3, "a new epoch every 4 seals");
        assert_eq!(became_live, 1, "retired epochs' contexts are replaced in place");
        assert!(s.keeps_context());
    }

    #[test]
    fn an_evicted_context_goes_but_its_epoch_seals_on_with_the_same_salt_and_counter() {
        let id = KeyId::generate();
        let mut s = SubkeySchedule::new(KeyMaterial::generate());
        let mut pool = RandomPool::new();
        let first = s.next(&id, 1 << 20, &mut pool, || 0, true).unwrap();
        assert!(first.became_live);
        let (salt, blob) = (*first.params.salt, sealed_with(first.params));
        assert!(!s.age(), "a first seal does not count as a use");
        let again = s.next(&id, 1 << 20, &mut pool, || 0, true).unwrap();
        assert!(!again.became_live);
        assert_eq!((*again.params.salt, again.params.nonce), (salt, counter_nonce(1)));
        assert!(s.age(), "a second seal marks the context used");
        assert!(!s.age(), "the mark is cleared by the sweep");
        assert!(s.evict() && !s.keeps_context() && s.has_epoch());
        assert!(!s.evict(), "nothing left to evict");
        let after = s.next(&id, 1 << 20, &mut pool, || 0, true).unwrap();
        assert!(after.became_live, "kept again");
        assert_eq!((*after.params.salt, after.params.nonce), (salt, counter_nonce(2)));
        // What the evicted context sealed still opens, under the subkey derived from its salt.
        assert!(opens(&s.derive(&id, &salt).unwrap(), blob));
    }

    #[test]
    fn a_seal_that_may_not_keep_a_context_expands_one_for_itself_under_the_same_epoch() {
        let id = KeyId::generate();
        let mut s = SubkeySchedule::new(KeyMaterial::generate());
        let mut pool = RandomPool::new();
        let mut nonces = std::collections::HashSet::new();
        let mut salt = None;
        for _ in 0..3 {
            let sealed = s.next(&id, 1 << 20, &mut pool, || 0, false).unwrap();
            assert!(!sealed.became_live);
            assert!(matches!(sealed.params.key, Subkey::Once(_)));
            assert!(nonces.insert(sealed.params.nonce), "nonce repeated");
            assert_eq!(*salt.get_or_insert(*sealed.params.salt), *sealed.params.salt);
            let blob = sealed_with(sealed.params);
            let salt = salt.unwrap();
            // The epoch's own subkey opens it, expanded (decrypt's common case) or derived.
            let current = s.current(&salt, 0).unwrap().unwrap();
            assert!(matches!(current, Subkey::Once(_)));
            assert!(opens(&current, blob.clone()));
            assert!(opens(&s.derive(&id, &salt).unwrap(), blob));
        }
        assert!(!s.keeps_context() && !s.age(), "nothing kept, nothing to age");
        assert!(s.current(&[0; SALT_LEN], 0).is_none(), "another salt is not current");
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
        let sealed = s.next(&id, 1 << 20, &mut pool, || 7, true).unwrap();
        assert_eq!(sealed.params.nonce, versioned_nonce(7, 0));
        assert_eq!(nonce_version(&sealed.params.nonce), 7);
        let salt = *sealed.params.salt;
        // Asked once an epoch: the next seal keeps the epoch's version.
        let sealed = s.next(&id, 1 << 20, &mut pool, || unreachable!(), true).unwrap();
        assert_eq!(sealed.params.nonce, versioned_nonce(7, 1));
        assert!(s.current(&salt, 7).is_some() && s.current(&salt, 0).is_none());
        assert_eq!(counter_nonce(3), versioned_nonce(0, 3));
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_schedule_costs_two_pointers_a_salt_and_a_counter() {
        // A shard holds one schedule per key: the material's box, the salt, the counter and
        // the box of the subkey's two forms; the version and the mark live in what would be
        // the epoch's padding.
        assert_eq!(std::mem::size_of::<SubkeySchedule>(), 48);
    }
}
