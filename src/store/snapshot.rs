//! Snapshots: `snapshot-<gen>.bin`, the caller's whole state as of a compaction.
//!
//! Layout (little-endian): a 64-byte header — magic "KCKS" | version u32 | generation u64 |
//! payload length u64 | crc32(payload) u32 | crc32(the 28 header bytes before) u32 | tag (32
//! bytes: HMAC-SHA256 of the first 28 header bytes and the payload, see `auth`) — then the
//! payload. A snapshot is written once (as `.tmp`, fsynced, renamed) and never modified; it is
//! read back through a read-only memory map. The checks run in that order (a file of another
//! format version is reported as such before its tag is looked at).

use std::fmt;
use std::os::unix::fs::OpenOptionsExt;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

use super::auth::{StoreAuth, TAG_LEN};
use super::journal::FORMAT_VERSION;
use crate::err;
use crate::Result;

/// Magic at the start of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"KCKS";
/// Length of the snapshot file header.
pub const SNAPSHOT_HEADER_LEN: usize = 32 + TAG_LEN;
/// Where the tag starts in the header.
const TAG_AT: usize = 32;

/// The bytes of a verified snapshot, memory-mapped read-only. Derefs to the payload.
pub struct SnapshotBytes {
    map: Mmap,
}

impl Deref for SnapshotBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map[SNAPSHOT_HEADER_LEN..]
    }
}

impl AsRef<[u8]> for SnapshotBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for SnapshotBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotBytes({} bytes)", self.len())
    }
}

/// The header for a snapshot of `payload` at `generation`, tagged with `auth`.
pub(crate) fn encode_header(
    generation: u64,
    payload: &[u8],
    auth: &StoreAuth,
) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut h = [0u8; SNAPSHOT_HEADER_LEN];
    h[0..4].copy_from_slice(&SNAPSHOT_MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&generation.to_le_bytes());
    h[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    let tag = auth.snapshot_tag(&h[0..28], payload);
    h[TAG_AT..SNAPSHOT_HEADER_LEN].copy_from_slice(&tag);
    h
}

fn damaged(path: &Path, offset: u64, what: impl fmt::Display) -> crate::KmsError {
    err!(
        StorageException,
        "snapshot {} damaged at offset {offset}: {what}",
        path.display()
    )
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

/// Checks a whole snapshot file image (header and payload) of `generation` against `auth`.
pub(crate) fn verify(path: &Path, data: &[u8], generation: u64, auth: &StoreAuth) -> Result<()> {
    if data.len() < SNAPSHOT_HEADER_LEN {
        return Err(damaged(
            path,
            0,
            format_args!(
                "header truncated ({} of {SNAPSHOT_HEADER_LEN} bytes)",
                data.len()
            ),
        ));
    }
    if data[0..4] != SNAPSHOT_MAGIC {
        return Err(damaged(path, 0, "bad magic (not a kmscks snapshot)"));
    }
    if crc32fast::hash(&data[0..28]) != le_u32(&data[28..32]) {
        return Err(damaged(path, 28, "header checksum mismatch"));
    }
    let version = le_u32(&data[4..8]);
    if version != FORMAT_VERSION {
        return Err(super::journal::other_format("snapshot", path, version));
    }
    let found = le_u64(&data[8..16]);
    if found != generation {
        return Err(damaged(
            path,
            8,
            format_args!("header says generation {found}, file name says {generation}"),
        ));
    }
    let declared = le_u64(&data[16..24]);
    let present = (data.len() - SNAPSHOT_HEADER_LEN) as u64;
    if declared != present {
        return Err(damaged(
            path,
            data.len() as u64,
            format_args!(
                "payload length mismatch: header says {declared} bytes, file has {present}"
            ),
        ));
    }
    if crc32fast::hash(&data[SNAPSHOT_HEADER_LEN..]) != le_u32(&data[24..28]) {
        return Err(damaged(
            path,
            SNAPSHOT_HEADER_LEN as u64,
            format_args!(
                "payload checksum mismatch over bytes {SNAPSHOT_HEADER_LEN}..{}",
                data.len()
            ),
        ));
    }
    if !auth.snapshot_tag_matches(
        &data[0..28],
        &data[SNAPSHOT_HEADER_LEN..],
        &data[TAG_AT..SNAPSHOT_HEADER_LEN],
    ) {
        return Err(damaged(
            path,
            TAG_AT as u64,
            format_args!(
                "authentication tag mismatch over the header and bytes \
                 {SNAPSHOT_HEADER_LEN}..{}: the checksums hold but the HMAC-SHA256 tag does \
                 not, so the snapshot was changed after it was written (or written under \
                 another master key)",
                data.len()
            ),
        ));
    }
    Ok(())
}

/// Maps and verifies snapshot `path` of `generation` against `auth`.
pub(crate) fn load(path: &Path, generation: u64, auth: &StoreAuth) -> Result<SnapshotBytes> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(super::NOFOLLOW)
        .open(path)
        .map_err(|e| super::io_error("open snapshot", path, e))?;
    super::trust::check_owned_file(&file, path, "snapshot")?;
    let len = file
        .metadata()
        .map_err(|e| super::io_error("stat snapshot", path, e))?
        .len();
    if len < SNAPSHOT_HEADER_LEN as u64 {
        // Checked before mapping: mapping an empty file is an error on some platforms.
        return Err(damaged(
            path,
            0,
            format_args!("header truncated ({len} of {SNAPSHOT_HEADER_LEN} bytes)"),
        ));
    }
    let map =
        super::mmap::map_snapshot(&file).map_err(|e| super::io_error("map snapshot", path, e))?;
    verify(path, &map, generation, auth)?;
    Ok(SnapshotBytes { map })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::auth::tests::test_auth;

    fn image(generation: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = encode_header(generation, payload, &test_auth()).to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn verify(path: &Path, data: &[u8], generation: u64) -> Result<()> {
        super::verify(path, data, generation, &test_auth())
    }

    #[test]
    fn verifies_good_image() {
        verify(Path::new("s"), &image(2, b"state"), 2).unwrap();
        verify(Path::new("s"), &image(2, b""), 2).unwrap();
    }

    #[test]
    fn every_flipped_byte_is_caught_with_offset() {
        let p = Path::new("/d/snapshot-2.bin");
        let good = image(2, b"some snapshot payload");
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            let e = verify(p, &bad, 2).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::StorageException);
            assert!(
                e.message()
                    .starts_with("snapshot /d/snapshot-2.bin damaged at offset "),
                "{e}"
            );
        }
        let mut bad = good.clone();
        bad[SNAPSHOT_HEADER_LEN + 8] ^= 1;
        assert!(verify(p, &bad, 2)
            .unwrap_err()
            .message()
            .contains("offset 64: payload checksum mismatch"));
    }

    #[test]
    fn an_edited_snapshot_with_its_checksums_recomputed_is_damage_naming_file_and_offset() {
        let p = Path::new("/d/snapshot-2.bin");
        let mut bad = image(2, b"policy: deny everything");
        bad[SNAPSHOT_HEADER_LEN + 8] ^= 0x20;
        let crc = crc32fast::hash(&bad[SNAPSHOT_HEADER_LEN..]);
        bad[24..28].copy_from_slice(&crc.to_le_bytes());
        let crc = crc32fast::hash(&bad[0..28]);
        bad[28..32].copy_from_slice(&crc.to_le_bytes());
        let e = verify(p, &bad, 2).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(
            e.message().starts_with(
                "snapshot /d/snapshot-2.bin damaged at offset 32: authentication tag mismatch"
            ),
            "{e}"
        );
        // Another key does not verify a good image either.
        let good = image(2, b"x");
        let other = StoreAuth::derive(&crate::secret::KeyMaterial::generate());
        assert!(super::verify(p, &good, 2, &other).is_err());
    }

    #[test]
    fn truncation_and_wrong_generation() {
        let p = Path::new("s");
        let good = image(5, b"abcdef");
        let e = verify(p, &good[..good.len() - 2], 5).unwrap_err();
        assert!(
            e.message().contains("header says 6 bytes, file has 4"),
            "{e}"
        );
        let e = verify(p, &good[..10], 5).unwrap_err();
        assert!(
            e.message().contains("header truncated (10 of 64 bytes)"),
            "{e}"
        );
        let e = verify(p, &good, 6).unwrap_err();
        assert!(
            e.message().contains("offset 8: header says generation 5"),
            "{e}"
        );
    }
}
