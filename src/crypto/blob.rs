//! The ciphertext blob (format version 1), documented in `docs/ciphertext.md`.
//!
//! ```text
//! offset  size  field
//! 0       1     version (0x01)
//! 1       16    key id (UUID bytes)
//! 17      16    epoch salt (selects the subkey, see `crypto::subkey`)
//! 33      12    nonce (counter within the subkey)
//! 45      n     AES-256-GCM ciphertext, n within PLAINTEXT_LEN
//! 45+n    16    GCM tag
//! ```
//! The AAD is the 45-byte header followed by the canonical encoding of the encryption context
//! ([`encode_context`]), so every header byte and every context entry is authenticated.
//! The payload bounds are Encrypt's plaintext limit, [`PLAINTEXT_LEN`].

use std::ops::Range;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};

use crate::crypto::subkey::{SealParams, NONCE_LEN, SALT_LEN};
use crate::err;
use crate::error::{KmsError, Result};
#[cfg(test)]
use crate::secret::SecretBytes;
use crate::types::limits::PLAINTEXT_LEN;
use crate::types::EncryptionContext;
use crate::types::KeyId;

/// The format version this module writes and accepts.
pub const VERSION: u8 = 1;
/// Header length: version, key id, salt, nonce.
pub const HEADER_LEN: usize = 1 + 16 + SALT_LEN + NONCE_LEN;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a blob adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Smallest and largest well-formed blob: the overhead plus a payload within
/// [`PLAINTEXT_LEN`].
pub const BLOB_LEN: (usize, usize) = (OVERHEAD + PLAINTEXT_LEN.0, OVERHEAD + PLAINTEXT_LEN.1);

/// Appends the canonical encoding of `ctx` to `out`: entry count (u32 LE), then for each entry
/// in key byte order the key length (u32 LE), key bytes, value length (u32 LE), value bytes.
/// Different contexts never encode to the same bytes, and insertion order never matters.
pub fn encode_context(ctx: &EncryptionContext, out: &mut Vec<u8>) -> Result<()> {
    let len32 = |n: usize| {
        u32::try_from(n).map_err(|_| err!(ValidationException, "encryption context too large"))
    };
    out.extend_from_slice(&len32(ctx.len())?.to_le_bytes());
    for (k, v) in ctx {
        out.extend_from_slice(&len32(k.len())?.to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&len32(v.len())?.to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    Ok(())
}

/// AADs up to this size are built on the stack (per thread, so two cores never share the
/// line); larger contexts use a heap buffer.
const STACK_AAD: usize = 512;

/// Writes `header` ‖ canonical `ctx` into `buf` (which is large enough) and calls `f`.
fn aad_in<const N: usize, R>(
    header: &[u8],
    ctx: &EncryptionContext,
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    let mut buf = [0u8; N];
    let mut at = 0;
    let mut put = |b: &[u8]| {
        buf[at..at + b.len()].copy_from_slice(b);
        at += b.len();
    };
    put(header);
    // Only called for contexts of at most N bytes: every length fits u32.
    put(&(ctx.len() as u32).to_le_bytes());
    for (k, v) in ctx {
        put(&(k.len() as u32).to_le_bytes());
        put(k.as_bytes());
        put(&(v.len() as u32).to_le_bytes());
        put(v.as_bytes());
    }
    f(&buf[..at])
}

/// Calls `f` with AAD = `header` ‖ canonical `ctx`.
fn with_aad<R>(header: &[u8], ctx: &EncryptionContext, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    if ctx.is_empty() && header.len() == HEADER_LEN {
        // The commonest case (no context at all): the header and a zero entry count.
        let mut aad = [0u8; HEADER_LEN + 4];
        aad[..HEADER_LEN].copy_from_slice(header);
        return Ok(f(&aad));
    }
    let len = header.len()
        + 4
        + ctx
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>();
    if len <= 64 {
        // The common case (no or a tiny context): no large buffer to clear.
        Ok(aad_in::<64, R>(header, ctx, f))
    } else if len <= STACK_AAD {
        Ok(aad_in::<STACK_AAD, R>(header, ctx, f))
    } else {
        let mut v = Vec::with_capacity(len);
        v.extend_from_slice(header);
        encode_context(ctx, &mut v)?;
        Ok(f(&v))
    }
}

fn invalid(why: &str) -> KmsError {
    err!(
        InvalidCiphertextException,
        "The ciphertext is invalid: {why}"
    )
}

/// Seals `plaintext` (within [`PLAINTEXT_LEN`]) under `params` into a new blob for `key_id`
/// (the engine seals into reused buffers, [`seal_into`]; the tests use this form).
#[cfg(test)]
pub fn seal(
    key_id: &KeyId,
    params: SealParams<'_>,
    plaintext: &[u8],
    ctx: &EncryptionContext,
) -> Result<Vec<u8>> {
    let mut blob = Vec::new();
    seal_into(key_id, params, plaintext, ctx, &mut blob)?;
    Ok(blob)
}

/// [`seal`], appending the blob to `out` (a buffer reused across requests); returns where it
/// is. On error nothing is appended. An empty `out` grows to exactly the blob's size.
pub fn seal_into(
    key_id: &KeyId,
    params: SealParams<'_>,
    plaintext: &[u8],
    ctx: &EncryptionContext,
    out: &mut Vec<u8>,
) -> Result<Range<usize>> {
    let (min, max) = PLAINTEXT_LEN;
    if !(min..=max).contains(&plaintext.len()) {
        return Err(err!(
            ValidationException,
            "payload of {} bytes is outside {min}..={max}",
            plaintext.len()
        ));
    }
    // Built on the stack first: written out in one copy, and read from here as the AAD,
    // followed by the entry count of an empty context (zero), the commonest AAD whole.
    let mut aad = [0u8; HEADER_LEN + 4];
    aad[0] = VERSION;
    aad[1..17].copy_from_slice(key_id.as_bytes());
    aad[17..17 + SALT_LEN].copy_from_slice(params.salt);
    aad[17 + SALT_LEN..HEADER_LEN].copy_from_slice(&params.nonce);
    let header = &aad[..HEADER_LEN];
    let start = out.len();
    if out.is_empty() {
        out.reserve_exact(OVERHEAD + plaintext.len());
    } else {
        out.reserve(OVERHEAD + plaintext.len());
    }
    // The header is written from its parts, not copied from `aad`: reading back at once what
    // was just stored there in pieces of other sizes makes each load wait for those stores to
    // reach the cache (a store-forwarding stall: in `perf`, most of this function's own time).
    out.push(VERSION);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(params.salt);
    out.extend_from_slice(&params.nonce);
    debug_assert_eq!(&out[start..], header);
    // Sealed out of place, from the caller's plaintext into the blob, so the plaintext is
    // never copied here (nor left here by a failed seal). The room is zeroed first, as a
    // `&mut [u8]` must not name uninitialised bytes. Faster than copying the plaintext in and
    // sealing in place (docs/performance-history.md, 2026-12-06).
    out.resize(start + HEADER_LEN + plaintext.len() + TAG_LEN, 0);
    let (body, tag) = out[start + HEADER_LEN..].split_at_mut(plaintext.len());
    let mut seal = |aad: &[u8]| {
        params.key.seal_out_of_place_scatter(
            Nonce::assume_unique_for_key(params.nonce),
            Aad::from(aad),
            plaintext,
            body,
            &[],
            tag,
        )
    };
    let sealed = if ctx.is_empty() {
        Ok(seal(&aad))
    } else {
        with_aad(header, ctx, seal)
    };
    match sealed {
        Ok(Ok(())) => Ok(start..out.len()),
        failed => {
            // Nothing of the plaintext was written here. The header is cut off, with what
            // the seal may have written (ciphertext, which needs no wipe).
            out.truncate(start);
            Err(match failed {
                Err(e) => e,
                Ok(_) => err!(KMSInternalException, "AES-GCM seal failed"),
            })
        }
    }
}

/// A parsed (not yet authenticated) blob.
#[derive(Debug)]
pub struct BlobView<'a> {
    /// The key the blob names.
    pub key_id: KeyId,
    /// The epoch salt.
    pub salt: [u8; SALT_LEN],
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
    header: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

/// Strict parse: any size or version problem is `InvalidCiphertextException`.
pub fn parse(blob: &[u8]) -> Result<BlobView<'_>> {
    if blob.len() < BLOB_LEN.0 {
        return Err(invalid(&format!(
            "{} bytes is shorter than the {}-byte minimum",
            blob.len(),
            BLOB_LEN.0
        )));
    }
    if blob.len() > BLOB_LEN.1 {
        return Err(invalid(&format!(
            "{} bytes is longer than the {}-byte maximum",
            blob.len(),
            BLOB_LEN.1
        )));
    }
    if blob[0] != VERSION {
        return Err(invalid(&format!(
            "unknown format version {} at offset 0",
            blob[0]
        )));
    }
    let (header, rest) = blob.split_at(HEADER_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut id = [0u8; 16];
    id.copy_from_slice(&header[1..17]);
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&header[17..17 + SALT_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&header[17 + SALT_LEN..HEADER_LEN]);
    Ok(BlobView {
        key_id: KeyId::from_bytes(id),
        salt,
        nonce,
        header,
        ciphertext,
        tag,
    })
}

impl BlobView<'_> {
    /// Authenticates and decrypts under `key` with `ctx`; a wrong key, a changed byte or a
    /// different context is `InvalidCiphertextException`. (The engine opens into reused
    /// buffers, [`BlobView::open_into`]; the tests use this form.)
    #[cfg(test)]
    pub fn open(&self, key: &LessSafeKey, ctx: &EncryptionContext) -> Result<SecretBytes> {
        let mut out = SecretBytes::default();
        self.open_into(key, ctx, out.expose_mut())?;
        Ok(out)
    }

    /// [`BlobView::open`], appending the plaintext to `out` (a buffer of secrets reused across
    /// requests, grown with [`crate::secret::reserve_wiping`]); returns where it is. On error
    /// nothing is appended. An empty `out` grows to exactly the plaintext's size.
    pub fn open_into(
        &self,
        key: &LessSafeKey,
        ctx: &EncryptionContext,
        out: &mut Vec<u8>,
    ) -> Result<Range<usize>> {
        let start = out.len();
        crate::secret::reserve_wiping(out, self.ciphertext.len());
        out.resize(start + self.ciphertext.len(), 0);
        let opened = with_aad(self.header, ctx, |aad| {
            key.open_separate_gather(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(aad),
                self.ciphertext,
                self.tag,
                &mut out[start..],
            )
        });
        match opened {
            Ok(Ok(())) => Ok(start..out.len()),
            failed => {
                crate::secret::wipe(&mut out[start..]);
                out.truncate(start);
                Err(match failed {
                    Err(e) => e,
                    Ok(_) => invalid(
                        "authentication failed (damaged blob, wrong key or encryption context \
                         mismatch)",
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random::RandomPool;
    use crate::crypto::subkey::SubkeySchedule;
    use crate::error::ErrorKind;
    use crate::secret::KeyMaterial;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn round_trip_and_every_byte_flip_is_invalid() {
        let id = KeyId::generate();
        let mut s = SubkeySchedule::new(KeyMaterial::generate());
        let mut pool = RandomPool::new();
        let c = ctx(&[("a", "1"), ("b", "2")]);
        let blob = seal(&id, s.next(&id, 1 << 20, &mut pool, || 0, true).unwrap().params, b"secret", &c).unwrap();
        assert_eq!(blob.len(), OVERHEAD + 6);
        let v = parse(&blob).unwrap();
        assert_eq!(v.key_id, id);
        let key = s.derive(&id, &v.salt).unwrap();
        assert_eq!(v.open(&key, &c).unwrap().expose(), b"secret");
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x01;
            let r = parse(&b).and_then(|v| {
                let key = s.derive(&id, &v.salt)?;
                v.open(&key, &c)
            });
            assert_eq!(
                r.unwrap_err().kind(),
                ErrorKind::InvalidCiphertextException,
                "flip at {i}"
            );
        }
        let e = v.open(&key, &ctx(&[("a", "1")])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidCiphertextException);
    }

    #[test]
    fn sealing_appends_after_what_the_buffer_holds_and_a_refused_payload_appends_nothing() {
        let id = KeyId::generate();
        let mut s = SubkeySchedule::new(KeyMaterial::generate());
        let mut pool = RandomPool::new();
        let c = ctx(&[("a", "1")]);
        let plaintext = vec![0x5a; PLAINTEXT_LEN.1];
        let mut out = vec![9u8; 7];
        let params = s.next(&id, 1 << 20, &mut pool, || 0, true).unwrap().params;
        let at = seal_into(&id, params, &plaintext, &c, &mut out).unwrap();
        assert_eq!(at, 7..7 + OVERHEAD + plaintext.len());
        assert_eq!(out.len(), at.end);
        assert_eq!(&out[..7], &[9u8; 7], "what the buffer held is kept");
        let v = parse(&out[at.clone()]).unwrap();
        let key = s.derive(&id, &v.salt).unwrap();
        assert_eq!(v.open(&key, &c).unwrap().expose(), &plaintext[..]);
        let params = s.next(&id, 1 << 20, &mut pool, || 0, true).unwrap().params;
        let too_long = vec![0x5a; PLAINTEXT_LEN.1 + 1];
        let e = seal_into(&id, params, &too_long, &c, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationException);
        assert_eq!(out.len(), at.end, "a refused payload appends nothing");
    }

    #[test]
    fn large_contexts_use_the_heap_path_and_still_bind() {
        let id = KeyId::generate();
        let mut s = SubkeySchedule::new(KeyMaterial::generate());
        let mut pool = RandomPool::new();
        let big: EncryptionContext = (0..40)
            .map(|i| (format!("key-{i:03}"), "v".repeat(20)))
            .collect();
        let blob = seal(&id, s.next(&id, 16, &mut pool, || 0, true).unwrap().params, b"x", &big).unwrap();
        let v = parse(&blob).unwrap();
        let key = s.derive(&id, &v.salt).unwrap();
        assert_eq!(v.open(&key, &big).unwrap().expose(), b"x");
        let mut other = big.clone();
        other.insert("key-000".into(), "w".repeat(20));
        assert!(v.open(&key, &other).is_err());
    }

    #[test]
    fn strict_sizes_and_version() {
        assert!(parse(&[1u8; BLOB_LEN.0 - 1]).is_err());
        assert!(parse(&[1u8; BLOB_LEN.1 + 1]).is_err());
        let e = parse(&[2u8; 100]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidCiphertextException);
        assert!(e.message().contains("version 2"), "{e}");
        assert!(parse(&[1u8; BLOB_LEN.0]).is_ok());
    }

    #[test]
    fn context_encoding_is_canonical_and_unambiguous() {
        let enc = |c: &EncryptionContext| {
            let mut v = Vec::new();
            encode_context(c, &mut v).unwrap();
            v
        };
        let mut a = EncryptionContext::new();
        a.insert("z".into(), "1".into());
        a.insert("a".into(), "2".into());
        let mut b = EncryptionContext::new();
        b.insert("a".into(), "2".into());
        b.insert("z".into(), "1".into());
        assert_eq!(enc(&a), enc(&b));
        // Moving bytes between key and value, or between entries, changes the encoding.
        assert_ne!(enc(&ctx(&[("ab", "c")])), enc(&ctx(&[("a", "bc")])));
        assert_ne!(
            enc(&ctx(&[("a", ""), ("b", "")])),
            enc(&ctx(&[("a", "\0\0\0\0b")]))
        );
        assert_eq!(enc(&EncryptionContext::new()), vec![0, 0, 0, 0]);
    }
}
