//! Authentication of the journal and snapshots: an HMAC-SHA256 tag on every journal frame and
//! every snapshot, so that a file changed while kmscks was not running — a policy loosened, a
//! disabled key re-enabled, with the CRC32s recomputed to match — is reported at open like
//! damage, naming the file and the offset, instead of being replayed.
//!
//! The CRC32s stay: they tell a torn write (a crash) from a change, and they are checked
//! first. A frame whose checksums hold but whose tag does not was not torn: it is refused
//! wherever it is in the file, the last frame included.
//!
//! The key is derived (HKDF-SHA256, label [`LABEL`]) from key material the caller gives at
//! open — kmscks gives its master key, the one key file every data directory has — so the
//! store never sees or names the caller's keys, and the derived key is used for nothing else.
//! What this protects against is therefore bounded by who can read that key: with a
//! passphrase sealing the key files, anyone without the passphrase; without one, anyone who
//! can write the data files but not read `keys/`. It does not detect a rollback to an older
//! copy of the same directory, nor frames cut off the end of the newest journal (what a crash
//! can do too): a tag says "written by a holder of the key, at this offset of this
//! generation", not "the latest".
//!
//! What a tag covers: a domain string (journal frame or snapshot, and the format version), the
//! file's generation, and for a frame its offset in the file, its magic and length, and its
//! payload; for a snapshot its header fields and payload. So a frame cannot be moved to
//! another offset or file, nor a snapshot renamed to another generation.

use std::fmt;

use aws_lc_rs::{hkdf, hmac};

use crate::secret::KeyMaterial;

/// HKDF `info` of the store authentication key: distinct from every other use of the
/// material it is derived from.
pub const LABEL: &[u8] = b"kmscks store authentication v1";
/// Length of a tag (HMAC-SHA256).
pub const TAG_LEN: usize = 32;

const JOURNAL_DOMAIN: &[u8] = b"kmscks journal frame v5\0";
const SNAPSHOT_DOMAIN: &[u8] = b"kmscks snapshot v5\0";

/// The key that authenticates a data directory's journal frames and snapshots. Opaque: made
/// from key material the caller holds ([`StoreAuth::derive`]).
pub struct StoreAuth {
    /// aws-lc's HMAC context; its key bytes live inside aws-lc, which cleanses them on drop.
    key: hmac::Key,
}

impl fmt::Debug for StoreAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreAuth(<redacted>)")
    }
}

impl StoreAuth {
    /// The store key derived from `material` (HKDF-SHA256, empty salt, info [`LABEL`]). The
    /// derived bytes go straight from aws-lc's HKDF into its HMAC key, never through a buffer
    /// of ours.
    pub fn derive(material: &KeyMaterial) -> StoreAuth {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(material.expose());
        // Invariant: expand fails only for an output longer than 255 hash lengths; an
        // HMAC-SHA256 key is one.
        let okm = prk
            .expand(&[LABEL], hmac::HMAC_SHA256)
            .expect("HKDF-SHA256 expands to one HMAC-SHA256 key");
        StoreAuth {
            key: hmac::Key::from(okm),
        }
    }

    fn journal_context(&self, generation: u64, offset: u64, magic: u32, payload: &[u8]) -> hmac::Context {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(JOURNAL_DOMAIN);
        ctx.update(&generation.to_le_bytes());
        ctx.update(&offset.to_le_bytes());
        ctx.update(&magic.to_le_bytes());
        // Payload lengths are at most MAX_RECORD_LEN (< 4 GiB), checked by the callers.
        ctx.update(&(payload.len() as u64).to_le_bytes());
        ctx.update(payload);
        ctx
    }

    /// The tag of a journal frame with `magic` and `payload` at byte `offset` of journal
    /// `generation`.
    pub(crate) fn journal_tag(
        &self,
        generation: u64,
        offset: u64,
        magic: u32,
        payload: &[u8],
    ) -> [u8; TAG_LEN] {
        let tag = self.journal_context(generation, offset, magic, payload).sign();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `tag` is the tag of that frame (compared in constant time).
    pub(crate) fn journal_tag_matches(
        &self,
        generation: u64,
        offset: u64,
        magic: u32,
        payload: &[u8],
        tag: &[u8],
    ) -> bool {
        let mine = self.journal_tag(generation, offset, magic, payload);
        constant_time_eq(&mine, tag)
    }

    /// The tag of a snapshot whose header fields (everything the header says but its
    /// checksums and the tag) are `fields`, holding `payload`.
    pub(crate) fn snapshot_tag(&self, fields: &[u8], payload: &[u8]) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(SNAPSHOT_DOMAIN);
        ctx.update(fields);
        ctx.update(payload);
        let tag = ctx.sign();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `tag` is the tag of that snapshot (compared in constant time).
    pub(crate) fn snapshot_tag_matches(&self, fields: &[u8], payload: &[u8], tag: &[u8]) -> bool {
        constant_time_eq(&self.snapshot_tag(fields, payload), tag)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixed store key for the store's own tests.
    pub(crate) fn test_auth() -> StoreAuth {
        StoreAuth::derive(&KeyMaterial::from_slice(&[7u8; 32]).unwrap())
    }

    #[test]
    fn tags_bind_generation_offset_magic_and_payload() {
        let a = test_auth();
        let t = a.journal_tag(3, 20, 1, b"payload");
        assert!(a.journal_tag_matches(3, 20, 1, b"payload", &t));
        assert!(!a.journal_tag_matches(4, 20, 1, b"payload", &t));
        assert!(!a.journal_tag_matches(3, 21, 1, b"payload", &t));
        assert!(!a.journal_tag_matches(3, 20, 2, b"payload", &t));
        assert!(!a.journal_tag_matches(3, 20, 1, b"paylaod", &t));
        assert!(!a.journal_tag_matches(3, 20, 1, b"payload", &t[..31]));
        let other = StoreAuth::derive(&KeyMaterial::from_slice(&[8u8; 32]).unwrap());
        assert!(!other.journal_tag_matches(3, 20, 1, b"payload", &t));
        // The snapshot domain is distinct from the journal's.
        assert_ne!(a.snapshot_tag(b"", b"payload"), t);
    }
}
