//! Types that hold secrets: key material, plaintexts, data keys and passwords.
//!
//! All of them zeroize their bytes when dropped, print as `<redacted>` under `Debug`, and
//! implement no `Clone`: copying a secret must be an explicit, visible call (`duplicate`,
//! `expose`). Only `Password` serialises, because requests carry it to the daemon.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// Overwrites `buf` with zeros. A vectorised `memset` (the `zeroize` crate writes byte by byte
/// with volatile stores, which costs a microsecond per 4 KiB on the hot path); `black_box`
/// makes the compiler treat the zeros as read, so it cannot drop them as dead stores.
pub fn wipe(buf: &mut [u8]) {
    // Nothing to wipe is common (a sink whose answers were handed over): no `memset` call.
    if buf.is_empty() {
        return;
    }
    buf.fill(0);
    std::hint::black_box(buf);
}

/// Cuts `v` to `len` bytes, wiping the bytes it drops: a buffer whose every cut goes through
/// here (and whose growth through [`reserve_wiping`]) never holds a secret in its spare
/// capacity, so emptying it wipes only its length, not its whole allocation.
pub fn truncate_wiping(v: &mut Vec<u8>, len: usize) {
    if let Some(dropped) = v.get_mut(len..) {
        wipe(dropped);
        v.truncate(len);
    }
}

/// Drops the first `n` bytes of `v` (those written out), moving the rest to the front and
/// wiping the bytes this leaves behind, as [`truncate_wiping`] does.
pub fn drop_front_wiping(v: &mut Vec<u8>, n: usize) {
    let len = v.len();
    v.copy_within(n.min(len).., 0);
    truncate_wiping(v, len - n.min(len));
}

/// Wipes a vector's bytes and its spare capacity, then empties it (keeping the allocation).
pub fn wipe_vec(v: &mut Vec<u8>) {
    if v.capacity() == 0 {
        return; // no allocation, nothing to wipe
    }
    wipe(v);
    v.clear();
    let spare = v.spare_capacity_mut();
    spare.fill(std::mem::MaybeUninit::new(0));
    std::hint::black_box(spare);
}

/// Makes room for `additional` more bytes in `v`. When the vector has to move to a larger
/// allocation, the old one is wiped before it is freed: a buffer that held plaintexts or data
/// keys (a socket's read buffer, an encoded frame) must not leave a copy behind in freed memory
/// each time it grows. Costs one comparison when there is room.
#[inline]
pub fn reserve_wiping(v: &mut Vec<u8>, additional: usize) {
    // Inlined: the daemon calls it for every reply it encodes, almost always with room.
    if v.capacity() - v.len() >= additional {
        return;
    }
    drop(grow_wiping(v, additional));
}

/// As [`reserve_wiping`], but a growth makes room for exactly `additional` more bytes, not
/// twice the old capacity: for a buffer whose final length is known (a request read whole),
/// so that it holds no more memory than it is charged for.
pub fn reserve_exact_wiping(v: &mut Vec<u8>, additional: usize) {
    if v.capacity() - v.len() >= additional {
        return;
    }
    drop(move_wiping(v, v.len().saturating_add(additional)));
}

/// Moves `v` into an allocation of its length (none if it is empty), the bytes it held wiped
/// in the old one before it is freed: for a buffer that grew for a large request and holds
/// little now. Only its length is wiped, not its spare capacity: this is for a buffer whose
/// cuts all went through [`truncate_wiping`] (or [`drop_front_wiping`]), which holds nothing
/// there, and touching a megabyte never written would fault in every page of it.
pub fn shrink_wiping(v: &mut Vec<u8>) {
    if v.capacity() > v.len() {
        let mut old = std::mem::replace(v, Vec::with_capacity(v.len()));
        v.extend_from_slice(&old);
        wipe(&mut old);
    }
}

/// Appends `bytes` to `v` through [`reserve_wiping`].
pub fn extend_wiping(v: &mut Vec<u8>, bytes: &[u8]) {
    reserve_wiping(v, bytes.len());
    v.extend_from_slice(bytes);
}

/// Moves `v` into an allocation with room for `additional` more bytes (at least twice the old
/// capacity, so appends stay amortized O(1)); returns the old vector, wiped and empty.
#[cold]
fn grow_wiping(v: &mut Vec<u8>, additional: usize) -> Vec<u8> {
    let capacity = v.len().saturating_add(additional).max(v.capacity() * 2);
    move_wiping(v, capacity)
}

/// Moves `v` into an allocation of `capacity` bytes; returns the old vector, wiped and empty.
#[cold]
fn move_wiping(v: &mut Vec<u8>, capacity: usize) -> Vec<u8> {
    let mut grown = Vec::with_capacity(capacity);
    grown.extend_from_slice(v);
    let mut old = std::mem::replace(v, grown);
    wipe_vec(&mut old);
    old
}

/// 256-bit AES key material (an HSM key object, a default-store backing key, a wrapping key).
pub struct KeyMaterial(Box<[u8; 32]>);

impl KeyMaterial {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// Fresh random key material from aws-lc-rs.
    pub fn generate() -> KeyMaterial {
        let mut k = KeyMaterial(Box::new([0u8; 32]));
        aws_lc_rs::rand::fill(&mut k.0[..]).expect("system randomness unavailable");
        k
    }

    /// Takes ownership of `bytes`, zeroizing the source array.
    pub fn from_bytes(bytes: &mut [u8; 32]) -> KeyMaterial {
        let k = KeyMaterial(Box::new(*bytes));
        bytes.zeroize();
        k
    }

    /// Copies from a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<KeyMaterial> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        let mut arr = Zeroizing::new(arr);
        Some(KeyMaterial::from_bytes(&mut arr))
    }

    /// The raw bytes. Named to make every use stand out in review.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// An explicit copy, for handing the same key to a second owner (e.g. another HSM worker).
    pub fn duplicate(&self) -> KeyMaterial {
        KeyMaterial(Box::new(*self.0))
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// Secret bytes of variable length: plaintexts, data keys, random output, passwords.
#[derive(Default, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes` (which will be zeroized when this value drops).
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// Copies `bytes`.
    pub fn from_slice(bytes: &[u8]) -> SecretBytes {
        SecretBytes(bytes.to_vec())
    }

    /// `len` zero bytes, to be filled in place.
    pub fn zeroed(len: usize) -> SecretBytes {
        SecretBytes(vec![0; len])
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, mutably (to fill in place).
    pub fn expose_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// Shortens to `len` bytes, wiping the bytes let go first (a `Vec`'s own `truncate`
    /// would leave them in its spare capacity).
    pub fn truncate(&mut self, len: usize) {
        if len < self.0.len() {
            self.0[len..].zeroize();
            self.0.truncate(len);
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An explicit copy.
    pub fn duplicate(&self) -> SecretBytes {
        SecretBytes(self.0.clone())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe_vec(&mut self.0);
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

/// A password (kmsuser's, a CloudHSM user's, a key store's). Zeroized, redacted.
#[derive(PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Takes ownership of `text`.
    pub fn new(text: impl Into<String>) -> Password {
        Password(text.into())
    }

    /// A fresh random alphanumeric password of `len` characters (what KMS sets on rotation).
    pub fn generate(len: usize) -> Password {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut raw = Zeroizing::new(vec![0u8; len * 2]);
        aws_lc_rs::rand::fill(&mut raw).expect("system randomness unavailable");
        // Rejection sampling keeps the characters uniform: 62 * 4 = 248 < 256.
        let mut out = String::with_capacity(len);
        while out.len() < len {
            for &b in raw.iter() {
                if b < 248 && out.len() < len {
                    out.push(ALNUM[usize::from(b % 62)] as char);
                }
            }
            aws_lc_rs::rand::fill(&mut raw).expect("system randomness unavailable");
        }
        Password(out)
    }

    /// The password text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// An explicit copy.
    pub fn duplicate(&self) -> Password {
        Password(self.0.clone())
    }

    /// Length in characters.
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Passwords travel inside requests (client to daemon), so they serialise; they never appear in
/// responses, logs or `Debug` output.
impl serde::Serialize for Password {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Password, D::Error> {
        String::deserialize(d).map(Password)
    }
}

/// Reads a bincode length prefix for secret bytes and claims it against the decoder's limit, so
/// that a hostile length fails before anything is allocated.
fn decode_secret_len<D: bincode::de::Decoder>(
    decoder: &mut D,
) -> Result<usize, bincode::error::DecodeError> {
    let len: u64 = bincode::Decode::decode(decoder)?;
    let len =
        usize::try_from(len).map_err(|_| bincode::error::DecodeError::OutsideUsizeRange(len))?;
    decoder.claim_container_read::<u8>(len)?;
    Ok(len)
}

/// The most bytes of a secret made room for before that many have been read: its length
/// prefix is only the sender's claim (up to the decoder's limit, 32 MiB), and a body that ends
/// sooner must not have the daemon allocate, and then wipe, all it claimed for a frame of a few
/// bytes. Past this the room doubles with what was read, so a secret that is there costs
/// O(len) and one that is not at most twice what was sent.
const SECRET_CHUNK: usize = 64 * 1024;

/// Reads the `len` bytes of a secret straight into a zeroizing container.
fn read_secret<D: bincode::de::Decoder>(
    decoder: &mut D,
    len: usize,
) -> Result<SecretBytes, bincode::error::DecodeError> {
    let mut out = SecretBytes::zeroed(len.min(SECRET_CHUNK));
    let mut filled = 0;
    loop {
        let end = out.0.len();
        bincode::de::read::Reader::read(decoder.reader(), &mut out.0[filled..end])?;
        filled = end;
        if filled == len {
            return Ok(out);
        }
        let more = (len - filled).min(filled);
        reserve_exact_wiping(&mut out.0, more);
        out.0.resize(filled + more, 0);
    }
}

/// On the socket protocol: a bincode byte string (varint length, then the bytes).
impl bincode::Encode for SecretBytes {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        bincode::Encode::encode(&(self.0.len() as u64), encoder)?;
        bincode::enc::write::Writer::write(encoder.writer(), &self.0)
    }
}

/// Decodes straight into the zeroizing container: no intermediate copy of the bytes is left
/// behind, also when decoding fails halfway.
impl<Context> bincode::Decode<Context> for SecretBytes {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<SecretBytes, bincode::error::DecodeError> {
        let len = decode_secret_len(decoder)?;
        read_secret(decoder, len)
    }
}
bincode::impl_borrow_decode!(SecretBytes);

/// On the socket protocol: a bincode string (varint length, then UTF-8 bytes).
impl bincode::Encode for Password {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        bincode::Encode::encode(&(self.0.len() as u64), encoder)?;
        bincode::enc::write::Writer::write(encoder.writer(), self.0.as_bytes())
    }
}

/// Decodes straight into a zeroizing buffer that becomes the password's own storage; invalid
/// UTF-8 is wiped before the error is returned.
impl<Context> bincode::Decode<Context> for Password {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Password, bincode::error::DecodeError> {
        let len = decode_secret_len(decoder)?;
        let mut buf = read_secret(decoder, len)?;
        let bytes = std::mem::take(&mut buf.0);
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Password(text)),
            Err(e) => {
                let valid_up_to = e.utf8_error().valid_up_to();
                // Back into a zeroizing container, wiped when it drops.
                drop(SecretBytes(e.into_bytes()));
                Err(bincode::error::DecodeError::OtherString(format!(
                    "password is not valid UTF-8 (invalid byte at offset {valid_up_to})"
                )))
            }
        }
    }
}
bincode::impl_borrow_decode!(Password);

#[cfg(test)]
mod tests {
    #[test]
    fn a_growing_buffer_keeps_its_bytes_and_wipes_the_allocation_it_leaves() {
        let mut v = Vec::with_capacity(4);
        v.extend_from_slice(b"key!");
        let mut old = super::grow_wiping(&mut v, 100);
        assert_eq!(v, b"key!");
        assert!(v.capacity() >= 104);
        assert!(old.is_empty(), "the old vector is emptied");
        let cap = old.capacity();
        // Its whole allocation was wiped: reading it back (as zeros written by `resize` would
        // be indistinguishable, check through the spare capacity instead).
        let spare = old.spare_capacity_mut();
        assert_eq!(spare.len(), cap);
        // SAFETY: `wipe_vec` initialised every spare byte to 0.
        #[allow(unsafe_code)]
        let bytes: Vec<u8> = spare.iter().map(|b| unsafe { b.assume_init() }).collect();
        assert!(bytes.iter().all(|&b| b == 0), "{bytes:?}");

        let mut w = Vec::new();
        for i in 0..1000u32 {
            super::extend_wiping(&mut w, &i.to_le_bytes());
        }
        assert_eq!(w.len(), 4000);
        assert_eq!(&w[..8], &[0, 0, 0, 0, 1, 0, 0, 0]);
    }

    use super::*;

    #[test]
    fn debug_never_shows_secret_bytes() {
        let k = KeyMaterial::from_slice(&[0xAB; 32]).unwrap();
        let dbg = format!("{k:?}");
        assert!(
            !dbg.contains("171") && !dbg.to_lowercase().contains("ab"),
            "{dbg}"
        );
        let p = Password::new("hunter2hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
        let s = SecretBytes::from_slice(b"plaintext");
        assert!(!format!("{s:?}").contains("plaintext"));
    }

    #[test]
    fn secrets_round_trip_through_bincode_and_hostile_lengths_fail_early() {
        let config = bincode::config::standard().with_limit::<4096>();
        let bytes =
            bincode::encode_to_vec(SecretBytes::from_slice(b"\x00\x01data"), config).unwrap();
        assert_eq!(bytes[0], 6, "varint length prefix");
        let (back, n): (SecretBytes, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
        assert_eq!((back.expose(), n), (&b"\x00\x01data"[..], 7));

        let bytes = bincode::encode_to_vec(Password::new("hunter22"), config).unwrap();
        let (back, _): (Password, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back.expose(), "hunter22");

        // A length of 2^40 is refused by the limit, before any allocation.
        let hostile = [0xfd, 0, 0, 0, 0, 1, 0, 0, 0];
        let e = bincode::decode_from_slice::<SecretBytes, _>(&hostile, config).unwrap_err();
        assert!(
            matches!(e, bincode::error::DecodeError::LimitExceeded),
            "{e:?}"
        );
        // Truncated bytes and invalid UTF-8 are errors.
        assert!(bincode::decode_from_slice::<SecretBytes, _>(&[5, 1, 2], config).is_err());
        let e = bincode::decode_from_slice::<Password, _>(&[2, 0xff, 0xfe], config).unwrap_err();
        assert!(format!("{e}").contains("UTF-8"), "{e}");
    }

    /// A slice reader that records the widest buffer it was asked to fill: the room a decoder
    /// made for bytes before it had read them.
    struct Widest<'a> {
        inner: bincode::de::read::SliceReader<'a>,
        widest: &'a std::cell::Cell<usize>,
    }

    impl bincode::de::read::Reader for Widest<'_> {
        fn read(&mut self, bytes: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
            self.widest.set(self.widest.get().max(bytes.len()));
            self.inner.read(bytes)
        }
    }

    /// Decodes a `T` from `bytes` under a 32 MiB limit (the daemon's); returns the widest
    /// buffer the decoder filled.
    fn decode_widest<T: bincode::Decode<()>>(
        bytes: &[u8],
    ) -> (Result<T, bincode::error::DecodeError>, usize) {
        let widest = std::cell::Cell::new(0);
        let reader = Widest {
            inner: bincode::de::read::SliceReader::new(bytes),
            widest: &widest,
        };
        let config = bincode::config::standard().with_limit::<{ 32 << 20 }>();
        let out = bincode::decode_from_reader(reader, config);
        (out, widest.get())
    }

    #[test]
    fn a_secrets_claimed_length_gets_room_only_as_its_bytes_arrive() {
        // 32 MiB claimed (within the limit), 10 bytes sent: refused, after room for one chunk.
        let mut frame = vec![0xfc];
        frame.extend_from_slice(&(32u32 << 20).to_le_bytes());
        frame.extend_from_slice(&[7; 10]);
        let (out, widest) = decode_widest::<SecretBytes>(&frame);
        assert!(out.is_err());
        assert!(
            widest <= SECRET_CHUNK,
            "room for {widest} bytes before reading them"
        );
        let (out, widest) = decode_widest::<Password>(&frame);
        assert!(out.is_err());
        assert!(
            widest <= SECRET_CHUNK,
            "room for {widest} bytes before reading them"
        );
        // A secret of several chunks that is all there comes back whole.
        let big: Vec<u8> = (0..5 * SECRET_CHUNK + 3).map(|i| i as u8).collect();
        let config = bincode::config::standard();
        let bytes = bincode::encode_to_vec(SecretBytes::from_slice(&big), config).unwrap();
        let (out, widest) = decode_widest::<SecretBytes>(&bytes);
        assert_eq!(out.unwrap().expose(), &big[..]);
        assert!(widest <= big.len() / 2 + 1, "{widest}");
        let text = "p".repeat(3 * SECRET_CHUNK);
        let bytes = bincode::encode_to_vec(Password::new(text.clone()), config).unwrap();
        assert_eq!(decode_widest::<Password>(&bytes).0.unwrap().expose(), text);
    }

    /// The bytes of `v`'s whole allocation, its spare capacity included.
    fn allocation(v: &mut Vec<u8>) -> Vec<u8> {
        let mut bytes = v.clone();
        // SAFETY: only called on buffers whose every spare byte was written before (by the
        // test's own appends, then wiped): the bytes are initialised.
        #[allow(unsafe_code)]
        bytes.extend(
            v.spare_capacity_mut()
                .iter()
                .map(|b| unsafe { b.assume_init() }),
        );
        bytes
    }

    #[test]
    fn a_cut_wipes_the_bytes_it_drops_and_leaves_the_rest() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"header:secret!!!");
        // Every byte of the allocation written, so that `allocation` may read it back.
        assert_eq!(v.len(), v.capacity());
        super::truncate_wiping(&mut v, 7);
        assert_eq!(v, b"header:");
        assert_eq!(allocation(&mut v), b"header:\0\0\0\0\0\0\0\0\0");
        super::truncate_wiping(&mut v, 7); // nothing past the length: nothing to do
        super::truncate_wiping(&mut v, 100); // a cut past the length changes nothing
        assert_eq!(v, b"header:");
        super::truncate_wiping(&mut v, 0);
        assert!(v.is_empty());
        assert!(allocation(&mut v).iter().all(|&b| b == 0));
    }

    #[test]
    fn wipe_zeroes_and_wipe_vec_keeps_the_allocation() {
        let mut buf = [0xAAu8; 4096];
        wipe(&mut buf[..]);
        assert!(buf.iter().all(|&b| b == 0));
        let mut v = vec![0xAAu8; 48];
        let cap = v.capacity();
        wipe_vec(&mut v);
        assert!(v.is_empty());
        assert_eq!(v.capacity(), cap, "the allocation is kept for reuse");
    }

    #[test]
    fn generated_passwords_are_alphanumeric_and_distinct() {
        let a = Password::generate(32);
        let b = Password::generate(32);
        assert_eq!(a.char_len(), 32);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn key_material_generation_is_random() {
        assert_ne!(
            KeyMaterial::generate().expose(),
            KeyMaterial::generate().expose()
        );
        assert!(KeyMaterial::from_slice(&[0; 31]).is_none());
    }
}
