//! The socket's hot frames without owned types: Encrypt, Decrypt and GenerateDataKey
//! (WithoutPlaintext) requests decoded in place from the read buffer, and their replies
//! encoded straight from the engine's answers.
//!
//! Why: decoding into the owned request types copied every key id into a `String` and every
//! plaintext into a buffer of its own, and each reply was an owned response built only to be
//! encoded — allocations per request that the daemon's hot path does not need. The bytes are
//! exactly those of the owned types' codec (the tests hold them together). Their common forms
//! are read and written by hand ([`super::wire`]: bincode's generic codec cost more than the
//! rest of the framing), anything else is left to bincode. Only the common
//! shape is decoded here: a request with an encryption context, grant tokens or an asymmetric
//! algorithm, or one that does not decode, gets `None` and goes through
//! [`super::decode_request`] as before, which also produces the errors.
//!
//! The client's side has one such path too: the replies of those operations decoded by hand
//! ([`decode_response_sharing`]), the key ARN of consecutive replies naming one key shared
//! rather than allocated twice over (bincode decodes an `Arc<str>` through a `String`) and
//! checked as UTF-8 for each.

use std::collections::BTreeMap;
use std::sync::Arc;

use bincode::de::BorrowDecoder;
use bincode::error::DecodeError;
use bincode::BorrowDecode;

use super::codec::{check_body_len, BINCODE_CONFIG};
use super::frame::{Header, ProtocolError, HEADER_LEN, STATUS_OK};
use super::wire::{self, Reader};
use crate::api::kms::{
    DecryptRequestRef, DecryptResponse, EncryptRequestRef, EncryptResponse,
    GenerateDataKeyRequestRef, GenerateDataKeyResponse,
};
use crate::error::KmsError;
use crate::ops::{Op, Response};
use crate::secret::SecretBytes;
use crate::types::{DataKeySpec, EncryptionAlgorithm, EncryptionContext};

/// The context of every request decoded here (one with a context is not).
static NO_CONTEXT: EncryptionContext = BTreeMap::new();

/// A hot request, borrowed from its frame's body.
#[derive(Debug)]
pub(crate) enum HotRequest<'a> {
    /// Encrypt.
    Encrypt(EncryptRequestRef<'a>),
    /// Decrypt.
    Decrypt(DecryptRequestRef<'a>),
    /// GenerateDataKey.
    DataKey(GenerateDataKeyRequestRef<'a>),
    /// GenerateDataKeyWithoutPlaintext.
    DataKeyWithoutPlaintext(GenerateDataKeyRequestRef<'a>),
}

/// A sequence of `PER`-string entries (a map of strings, a list of strings), decoded only to
/// be counted: its strings are borrowed and dropped.
struct Entries<const PER: usize>(u64);

impl<'de, C, const PER: usize> BorrowDecode<'de, C> for Entries<PER> {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        let n = u64::borrow_decode(d)?;
        for _ in 0..n {
            for _ in 0..PER {
                <&str>::borrow_decode(d)?;
            }
        }
        Ok(Entries(n))
    }
}

// The members of `EncryptRequest`, `DecryptRequest` and `GenerateDataKeyRequest`, in their
// order and encodings (`&str` as `String`, `&[u8]` as the blob's and `SecretBytes`' varint
// length and bytes).

#[derive(BorrowDecode)]
struct EncryptBody<'a> {
    key_id: &'a str,
    plaintext: &'a [u8],
    encryption_context: Entries<2>,
    grant_tokens: Entries<1>,
    encryption_algorithm: Option<EncryptionAlgorithm>,
    dry_run: bool,
}

#[derive(BorrowDecode)]
struct DecryptBody<'a> {
    ciphertext_blob: &'a [u8],
    encryption_context: Entries<2>,
    grant_tokens: Entries<1>,
    key_id: Option<&'a str>,
    encryption_algorithm: Option<EncryptionAlgorithm>,
    dry_run: bool,
}

#[derive(BorrowDecode)]
struct DataKeyBody<'a> {
    key_id: &'a str,
    key_spec: Option<DataKeySpec>,
    number_of_bytes: Option<u32>,
    encryption_context: Entries<2>,
    grant_tokens: Entries<1>,
    dry_run: bool,
}

/// The whole of `body` as a `T`, or None.
fn whole<'a, T: BorrowDecode<'a, ()>>(body: &'a [u8]) -> Option<T> {
    match bincode::borrow_decode_from_slice(body, BINCODE_CONFIG) {
        Ok((t, used)) if used == body.len() => Some(t),
        _ => None,
    }
}

/// The hot request a complete request frame carries, borrowed from `body`; None for any
/// other frame, and for one that [`super::decode_request`] must decode (see the module doc).
/// `last_key`: the key id of the last request decoded here (pipelined requests usually name
/// one key), which a request naming the same bytes borrows instead of checking them again.
/// Inlined, with [`read_hot`], into the daemon's loop that pushes what it answers: the
/// request's fields then go from registers into the batch, not through a copy on the stack
/// (a store-forwarding stall, as `crate::vecs` says), and the header's op is read where the
/// loop holds it rather than reloaded from the header it stored in pieces.
#[inline(always)]
pub(crate) fn decode_hot_request<'a>(
    h: &Header,
    body: &'a [u8],
    last_key: &mut Option<&'a str>,
) -> Option<HotRequest<'a>> {
    if h.status != STATUS_OK || check_body_len(h, body).is_err() {
        return None;
    }
    let op = Op::from_code(h.op)?;
    // The common forms read by hand (`wire`); anything else, as bincode reads it.
    read_hot(op, body, last_key).or_else(|| decode_hot_body(op, body))
}

/// Whether a request decoded here may take the hot path: no context, no grant tokens, a
/// symmetric algorithm. An asymmetric algorithm (RSA encryption) leaves the hot path:
/// `decode_request` decodes it and the service answers it alone.
fn plain(context: u64, tokens: u64, alg: Option<EncryptionAlgorithm>) -> bool {
    context == 0 && tokens == 0 && EncryptionAlgorithm::is_symmetric(alg)
}

/// [`decode_hot_request`]'s common case, read by hand: a hot request of the common shape
/// (see [`plain`]) whose members are in the forms [`Reader`] reads. None for anything else,
/// which bincode then decodes ([`decode_hot_body`]). Inlined into its one caller,
/// [`decode_hot_request`], and with it into the daemon's loop (see there).
#[inline(always)]
fn read_hot<'a>(op: Op, body: &'a [u8], last_key: &mut Option<&'a str>) -> Option<HotRequest<'a>> {
    let mut r = Reader::new(body);
    let hot = match op {
        Op::Encrypt => {
            let key_id = r.str_as(last_key)?;
            let plaintext = r.bytes()?;
            let (context, tokens) = (r.varint()?, r.varint()?);
            let alg = r.option(|r| r.variant(EncryptionAlgorithm::ALL))?;
            let dry_run = r.flag()?;
            plain(context.into(), tokens.into(), alg).then_some(HotRequest::Encrypt(
                EncryptRequestRef {
                    key_id,
                    plaintext,
                    encryption_context: &NO_CONTEXT,
                    grant_tokens: &[],
                    encryption_algorithm: alg,
                    dry_run,
                },
            ))?
        }
        Op::Decrypt => {
            let ciphertext_blob = r.bytes()?;
            let (context, tokens) = (r.varint()?, r.varint()?);
            let key_id = r.option(|r| r.str_as(last_key))?;
            let alg = r.option(|r| r.variant(EncryptionAlgorithm::ALL))?;
            let dry_run = r.flag()?;
            plain(context.into(), tokens.into(), alg).then_some(HotRequest::Decrypt(
                DecryptRequestRef {
                    ciphertext_blob,
                    encryption_context: &NO_CONTEXT,
                    grant_tokens: &[],
                    key_id,
                    encryption_algorithm: alg,
                    dry_run,
                },
            ))?
        }
        op @ (Op::GenerateDataKey | Op::GenerateDataKeyWithoutPlaintext) => {
            let key_id = r.str_as(last_key)?;
            let key_spec = r.option(|r| r.variant(DataKeySpec::ALL))?;
            let number_of_bytes = r.option(Reader::varint)?;
            let (context, tokens) = (r.varint()?, r.varint()?);
            let dry_run = r.flag()?;
            let req = GenerateDataKeyRequestRef {
                key_id,
                key_spec,
                number_of_bytes,
                encryption_context: &NO_CONTEXT,
                grant_tokens: &[],
                dry_run,
            };
            plain(context.into(), tokens.into(), None).then_some(if op == Op::GenerateDataKey {
                HotRequest::DataKey(req)
            } else {
                HotRequest::DataKeyWithoutPlaintext(req)
            })?
        }
        _ => return None,
    };
    // Trailing bytes: bincode refuses them.
    r.is_empty().then_some(hot)
}

/// [`decode_hot_request`] through bincode: what [`read_hot`] does not read.
fn decode_hot_body(op: Op, body: &[u8]) -> Option<HotRequest<'_>> {
    let plain = |context: &Entries<2>, tokens: &Entries<1>, alg| plain(context.0, tokens.0, alg);
    match op {
        Op::Encrypt => {
            let b: EncryptBody<'_> = whole(body)?;
            let alg = b.encryption_algorithm;
            plain(&b.encryption_context, &b.grant_tokens, alg).then_some(HotRequest::Encrypt(
                EncryptRequestRef {
                    key_id: b.key_id,
                    plaintext: b.plaintext,
                    encryption_context: &NO_CONTEXT,
                    grant_tokens: &[],
                    encryption_algorithm: b.encryption_algorithm,
                    dry_run: b.dry_run,
                },
            ))
        }
        Op::Decrypt => {
            let b: DecryptBody<'_> = whole(body)?;
            let alg = b.encryption_algorithm;
            plain(&b.encryption_context, &b.grant_tokens, alg).then_some(HotRequest::Decrypt(
                DecryptRequestRef {
                    ciphertext_blob: b.ciphertext_blob,
                    encryption_context: &NO_CONTEXT,
                    grant_tokens: &[],
                    key_id: b.key_id,
                    encryption_algorithm: b.encryption_algorithm,
                    dry_run: b.dry_run,
                },
            ))
        }
        op @ (Op::GenerateDataKey | Op::GenerateDataKeyWithoutPlaintext) => {
            let b: DataKeyBody<'_> = whole(body)?;
            let r = GenerateDataKeyRequestRef {
                key_id: b.key_id,
                key_spec: b.key_spec,
                number_of_bytes: b.number_of_bytes,
                encryption_context: &NO_CONTEXT,
                grant_tokens: &[],
                dry_run: b.dry_run,
            };
            plain(&b.encryption_context, &b.grant_tokens, None).then_some(
                if op == Op::GenerateDataKey {
                    HotRequest::DataKey(r)
                } else {
                    HotRequest::DataKeyWithoutPlaintext(r)
                },
            )
        }
        _ => None,
    }
}

// The replies are the bytes of `EncryptResponse`, `DecryptResponse` and
// `GenerateDataKeyResponse` (members in their order, `&str` as `Arc<str>`, `&[u8]` as the
// blob's and `SecretBytes`' varint length and bytes), written by hand (`wire`): the body's
// length is known before a byte is written, so the write buffer is made room for once.

/// Makes room for a reply frame with a body of `body_len` bytes and appends its header.
fn begin_reply(out: &mut Vec<u8>, request_id: u64, op: Op, body_len: usize) {
    // Bodies carry plaintexts and data keys: a growing buffer wipes what it leaves.
    crate::secret::reserve_wiping(out, HEADER_LEN + body_len);
    // A reply is small (a blob of at most 4 KiB and an ARN), well within the frame limit.
    let len = u32::try_from(body_len).unwrap_or(u32::MAX);
    out.extend_from_slice(&Header::new(op.code(), request_id, STATUS_OK, len).to_bytes());
}

/// Appends the symmetric algorithm, the last member of the Encrypt and Decrypt replies.
fn put_symmetric(out: &mut Vec<u8>) {
    wire::put_varint(out, SYMMETRIC_INDEX as usize);
}

/// The symmetric algorithm's variant index, as bincode's derive numbers it (declaration order).
const SYMMETRIC_INDEX: u32 = EncryptionAlgorithm::SymmetricDefault as u32;

/// The bytes [`put_symmetric`] writes.
const SYMMETRIC_LEN: usize = 1;

/// Appends the reply frame of an Encrypt answer: `ciphertext_blob` under the key `key_arn`.
pub(crate) fn encode_encrypt_reply(
    out: &mut Vec<u8>,
    request_id: u64,
    ciphertext_blob: &[u8],
    key_arn: &str,
) {
    let (blob, arn) = (ciphertext_blob, key_arn.as_bytes());
    let body_len = wire::bytes_len(blob) + wire::bytes_len(arn) + SYMMETRIC_LEN;
    begin_reply(out, request_id, Op::Encrypt, body_len);
    wire::put_bytes(out, blob);
    wire::put_bytes(out, arn);
    put_symmetric(out);
}

/// Appends the reply frame of a Decrypt answer: `plaintext`, opened by the key `key_arn`.
pub(crate) fn encode_decrypt_reply(
    out: &mut Vec<u8>,
    request_id: u64,
    plaintext: &[u8],
    key_arn: &str,
) {
    let arn = key_arn.as_bytes();
    let body_len = wire::bytes_len(arn) + wire::bytes_len(plaintext) + SYMMETRIC_LEN;
    begin_reply(out, request_id, Op::Decrypt, body_len);
    wire::put_bytes(out, arn);
    wire::put_bytes(out, plaintext);
    put_symmetric(out);
}

/// Appends the reply frame of a GenerateDataKey answer (`op`: with or without plaintext).
pub(crate) fn encode_data_key_reply(
    out: &mut Vec<u8>,
    request_id: u64,
    op: Op,
    ciphertext_blob: &[u8],
    plaintext: Option<&[u8]>,
    key_arn: &str,
) {
    let (blob, arn) = (ciphertext_blob, key_arn.as_bytes());
    // The plaintext's `Option` tag, then the plaintext.
    let body_len =
        wire::bytes_len(blob) + 1 + plaintext.map_or(0, wire::bytes_len) + wire::bytes_len(arn);
    begin_reply(out, request_id, op, body_len);
    wire::put_bytes(out, blob);
    match plaintext {
        Some(p) => {
            out.push(1);
            wire::put_bytes(out, p);
        }
        None => out.push(0),
    }
    wire::put_bytes(out, arn);
}

/// [`decode_response`](super::decode_response) for a client reading the replies to many
/// requests on one connection (a pipeline, which keeps `last`): the answers of Encrypt,
/// Decrypt, GenerateDataKey and GenerateDataKeyWithoutPlaintext are read by hand, and an
/// answer naming the same key ARN as the one before (`last`, which the caller keeps between
/// replies) shares its `Arc<str>` rather than allocating it again. Every other reply, and one
/// in another form, is decoded as `decode_response` decodes it, with its errors.
///
/// Errors: those of `decode_response`.
pub fn decode_response_sharing(
    h: &Header,
    body: &[u8],
    last: &mut Option<Arc<str>>,
) -> Result<Result<Response, KmsError>, ProtocolError> {
    let ok = h.status == STATUS_OK && check_body_len(h, body).is_ok();
    let answer = match Op::from_code(h.op) {
        Some(Op::Encrypt) if ok => read_encrypt_reply(body, last).map(Response::Encrypt),
        Some(Op::Decrypt) if ok => read_decrypt_reply(body, last).map(Response::Decrypt),
        Some(Op::GenerateDataKey) if ok => {
            read_data_key_reply(body, last).map(Response::GenerateDataKey)
        }
        Some(Op::GenerateDataKeyWithoutPlaintext) if ok => {
            read_data_key_reply(body, last).map(Response::GenerateDataKeyWithoutPlaintext)
        }
        _ => None,
    };
    match answer {
        Some(r) => Ok(Ok(r)),
        None => super::decode_response(h, body),
    }
}

// The readers below take a reply's members in the forms the encoders above write; None for
// anything else (bincode then decodes the body, or says why not). The key ARN is resolved
// last, once the whole body has been read: a body that does not decode leaves `last` as it was.

/// The key ARN `arn`: `last`'s when it has the same bytes (the replies to pipelined requests
/// usually name one key), else checked as UTF-8 and remembered there.
fn shared_arn(arn: &[u8], last: &mut Option<Arc<str>>) -> Option<Arc<str>> {
    match last {
        Some(l) if l.as_bytes() == arn => Some(l.clone()),
        _ => Some(last.insert(std::str::from_utf8(arn).ok()?.into()).clone()),
    }
}

/// The symmetric algorithm, as [`put_symmetric`] writes it, ending a body; None for any other.
fn symmetric_end(r: &mut Reader<'_>) -> Option<EncryptionAlgorithm> {
    let symmetric = r.varint()? == SYMMETRIC_INDEX && r.is_empty();
    symmetric.then_some(EncryptionAlgorithm::SymmetricDefault)
}

/// An Encrypt reply's answer, as [`encode_encrypt_reply`] writes it.
fn read_encrypt_reply(body: &[u8], last: &mut Option<Arc<str>>) -> Option<EncryptResponse> {
    let mut r = Reader::new(body);
    let (blob, arn) = (r.bytes()?, r.bytes()?);
    let encryption_algorithm = symmetric_end(&mut r)?;
    Some(EncryptResponse {
        ciphertext_blob: blob.to_vec(),
        key_id: shared_arn(arn, last)?,
        encryption_algorithm,
    })
}

/// A Decrypt reply's answer, as [`encode_decrypt_reply`] writes it.
fn read_decrypt_reply(body: &[u8], last: &mut Option<Arc<str>>) -> Option<DecryptResponse> {
    let mut r = Reader::new(body);
    let (arn, plaintext) = (r.bytes()?, r.bytes()?);
    let encryption_algorithm = symmetric_end(&mut r)?;
    Some(DecryptResponse {
        key_id: shared_arn(arn, last)?,
        plaintext: SecretBytes::from_slice(plaintext),
        encryption_algorithm,
    })
}

/// A GenerateDataKey (or WithoutPlaintext) reply's answer, as [`encode_data_key_reply`] writes
/// it.
fn read_data_key_reply(
    body: &[u8],
    last: &mut Option<Arc<str>>,
) -> Option<GenerateDataKeyResponse> {
    let mut r = Reader::new(body);
    let blob = r.bytes()?;
    let plaintext = r.option(Reader::bytes)?;
    let arn = r.bytes()?;
    if !r.is_empty() {
        return None;
    }
    Some(GenerateDataKeyResponse {
        ciphertext_blob: blob.to_vec(),
        plaintext: plaintext.map(SecretBytes::from_slice),
        key_id: shared_arn(arn, last)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kms::{DecryptRequest, EncryptRequest, GenerateDataKeyRequest};
    use crate::ops::Request;
    use crate::protocol::{encode_request, encode_response, split_frame};

    fn frame(req: &Request) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_request(&mut buf, 5, req);
        buf
    }

    fn hot(buf: &[u8]) -> Option<HotRequest<'_>> {
        let (h, body, _) = split_frame(buf).unwrap().unwrap();
        decode_hot_request(&h, body, &mut None)
    }

    #[test]
    fn hot_requests_decode_in_place_to_the_members_the_owned_codec_wrote() {
        let buf = frame(&Request::Encrypt(EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: SecretBytes::from_slice(b"hello"),
            encryption_algorithm: Some(EncryptionAlgorithm::SymmetricDefault),
            dry_run: true,
            ..Default::default()
        }));
        let Some(HotRequest::Encrypt(r)) = hot(&buf) else {
            panic!("not decoded in place")
        };
        assert_eq!(
            (r.key_id, r.plaintext, r.dry_run),
            ("alias/demo", &b"hello"[..], true)
        );
        assert_eq!(
            r.encryption_algorithm,
            Some(EncryptionAlgorithm::SymmetricDefault)
        );
        // Borrowed from the frame, not copied.
        let inside = buf.as_ptr_range();
        assert!(inside.contains(&r.key_id.as_ptr()) && inside.contains(&r.plaintext.as_ptr()));

        let buf = frame(&Request::Decrypt(DecryptRequest {
            ciphertext_blob: vec![7; 61],
            key_id: Some("alias/x".into()),
            ..Default::default()
        }));
        let Some(HotRequest::Decrypt(r)) = hot(&buf) else {
            panic!("not decoded in place")
        };
        assert_eq!(
            (r.ciphertext_blob, r.key_id),
            (&[7u8; 61][..], Some("alias/x"))
        );

        let req = GenerateDataKeyRequest {
            key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            number_of_bytes: Some(64),
            ..Default::default()
        };
        let buf = frame(&Request::GenerateDataKeyWithoutPlaintext(req.clone()));
        let Some(HotRequest::DataKeyWithoutPlaintext(r)) = hot(&buf) else {
            panic!("not decoded in place")
        };
        assert_eq!(
            (r.key_id, r.number_of_bytes, r.key_spec),
            (&*req.key_id, Some(64), None)
        );
    }

    #[test]
    fn requests_with_a_context_or_grant_tokens_or_trailing_bytes_take_the_owned_decoder() {
        let mut with_context = EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: SecretBytes::from_slice(b"x"),
            ..Default::default()
        };
        with_context
            .encryption_context
            .insert("purpose".into(), "test".into());
        assert!(hot(&frame(&Request::Encrypt(with_context))).is_none());
        let with_tokens = GenerateDataKeyRequest {
            key_id: "alias/demo".into(),
            grant_tokens: vec!["token".into()],
            ..Default::default()
        };
        assert!(hot(&frame(&Request::GenerateDataKey(with_tokens))).is_none());
        let mut buf = frame(&Request::Decrypt(DecryptRequest::default()));
        buf.push(0);
        buf[20] += 1; // body_len
        assert!(hot(&buf).is_none());
    }

    /// Whether the hot decoding of `h`/`body` agrees with the owned one: the same members
    /// where it decodes, and it decodes wherever the owned decoder gives a request without
    /// context or grant tokens.
    fn agrees(h: &Header, body: &[u8]) -> bool {
        let owned = crate::protocol::decode_request(h, body).ok();
        match (decode_hot_request(h, body, &mut None), owned) {
            (Some(HotRequest::Encrypt(r)), Some(Request::Encrypt(o))) => {
                let o = o.borrowed();
                (r.key_id, r.plaintext, r.encryption_algorithm, r.dry_run)
                    == (o.key_id, o.plaintext, o.encryption_algorithm, o.dry_run)
                    && o.encryption_context.is_empty()
                    && o.grant_tokens.is_empty()
            }
            (Some(HotRequest::Decrypt(r)), Some(Request::Decrypt(o))) => {
                let o = o.borrowed();
                (
                    r.ciphertext_blob,
                    r.key_id,
                    r.encryption_algorithm,
                    r.dry_run,
                ) == (
                    o.ciphertext_blob,
                    o.key_id,
                    o.encryption_algorithm,
                    o.dry_run,
                ) && o.encryption_context.is_empty()
                    && o.grant_tokens.is_empty()
            }
            (Some(HotRequest::DataKey(r)), Some(Request::GenerateDataKey(o)))
            | (
                Some(HotRequest::DataKeyWithoutPlaintext(r)),
                Some(Request::GenerateDataKeyWithoutPlaintext(o)),
            ) => {
                let o = o.borrowed();
                (r.key_id, r.key_spec, r.number_of_bytes, r.dry_run)
                    == (o.key_id, o.key_spec, o.number_of_bytes, o.dry_run)
                    && o.encryption_context.is_empty()
                    && o.grant_tokens.is_empty()
            }
            (Some(_), _) => false,
            (None, Some(Request::Encrypt(o))) => {
                !o.encryption_context.is_empty() || !o.grant_tokens.is_empty()
            }
            (None, Some(Request::Decrypt(o))) => {
                !o.encryption_context.is_empty() || !o.grant_tokens.is_empty()
            }
            (
                None,
                Some(Request::GenerateDataKey(o) | Request::GenerateDataKeyWithoutPlaintext(o)),
            ) => !o.encryption_context.is_empty() || !o.grant_tokens.is_empty(),
            (None, _) => true,
        }
    }

    proptest::proptest! {
        #[test]
        fn damaged_hot_frames_decode_in_place_exactly_where_the_owned_decoder_agrees(
            op in 0usize..4,
            key in "[a-z/:0-9-]{0,40}",
            // Up to 300 bytes: lengths of one varint byte and of three.
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            context in proptest::bool::ANY,
            flips in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 0..4),
            cut in proptest::option::of(proptest::num::usize::ANY),
        ) {
            let mut ctx = EncryptionContext::new();
            if context {
                ctx.insert("k".into(), "v".into());
            }
            let req = match op {
                0 => Request::Encrypt(EncryptRequest {
                    key_id: key,
                    plaintext: SecretBytes::from_slice(&payload),
                    encryption_context: ctx,
                    ..Default::default()
                }),
                1 => Request::Decrypt(DecryptRequest {
                    ciphertext_blob: payload,
                    encryption_context: ctx,
                    key_id: Some(key),
                    ..Default::default()
                }),
                _ => {
                    let r = GenerateDataKeyRequest {
                        key_id: key,
                        number_of_bytes: Some(payload.len() as u32),
                        encryption_context: ctx,
                        ..Default::default()
                    };
                    if op == 2 {
                        Request::GenerateDataKey(r)
                    } else {
                        Request::GenerateDataKeyWithoutPlaintext(r)
                    }
                }
            };
            let buf = frame(&req);
            let (h, body, _) = split_frame(&buf).unwrap().unwrap();
            let mut body = body.to_vec();
            for (at, byte) in flips {
                if !body.is_empty() {
                    let i = at % body.len();
                    body[i] = byte;
                }
            }
            if let Some(at) = cut {
                body.truncate(at % (body.len() + 1));
            }
            let h = Header::new(h.op, h.request_id, h.status, body.len() as u32);
            proptest::prop_assert!(agrees(&h, &body));
        }
    }

    #[test]
    fn hot_replies_are_the_bytes_of_the_owned_responses() {
        let arn: Arc<str> = "arn:aws:kms:us-east-1:111122223333:key/k".into();
        // Lengths of one varint byte, and of three (a 4 KiB plaintext and its blob).
        for (blob, key) in [
            (vec![1u8; 77], vec![2u8; 32]),
            (vec![3u8; 4153], vec![4u8; 4096]),
        ] {
            same_reply_bytes(&arn, &blob, &key);
        }
    }

    fn same_reply_bytes(arn: &Arc<str>, blob: &[u8], key: &[u8]) {
        let (blob, key) = (blob.to_vec(), key.to_vec());

        let mut owned = Vec::new();
        let resp = Response::Encrypt(EncryptResponse {
            ciphertext_blob: blob.clone(),
            key_id: arn.clone(),
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        });
        encode_response(&mut owned, 9, Op::Encrypt.code(), &Ok(resp));
        let mut hot = Vec::new();
        encode_encrypt_reply(&mut hot, 9, &blob, arn);
        assert_eq!(hot, owned);

        let mut owned = Vec::new();
        let resp = Response::Decrypt(DecryptResponse {
            key_id: arn.clone(),
            plaintext: SecretBytes::from_slice(&key),
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        });
        encode_response(&mut owned, 9, Op::Decrypt.code(), &Ok(resp));
        let mut hot = Vec::new();
        encode_decrypt_reply(&mut hot, 9, &key, arn);
        assert_eq!(hot, owned);

        for (op, plaintext) in [
            (Op::GenerateDataKey, Some(&key[..])),
            (Op::GenerateDataKeyWithoutPlaintext, None),
        ] {
            let mut owned = Vec::new();
            let body = GenerateDataKeyResponse {
                ciphertext_blob: blob.clone(),
                plaintext: plaintext.map(SecretBytes::from_slice),
                key_id: arn.clone(),
            };
            let resp = if op == Op::GenerateDataKey {
                Response::GenerateDataKey(body)
            } else {
                Response::GenerateDataKeyWithoutPlaintext(body)
            };
            encode_response(&mut owned, 9, op.code(), &Ok(resp));
            let mut hot = Vec::new();
            encode_data_key_reply(&mut hot, 9, op, &blob, plaintext, arn);
            assert_eq!(hot, owned, "{op:?}");
        }
    }

    /// A GenerateDataKey (WithoutPlaintext) answer of a 93-byte blob.
    fn data_key_answer(op: Op, arn: &str, plaintext: Option<&[u8]>) -> Response {
        let body = GenerateDataKeyResponse {
            ciphertext_blob: vec![7u8; 93],
            plaintext: plaintext.map(SecretBytes::from_slice),
            key_id: arn.into(),
        };
        if op == Op::GenerateDataKey {
            Response::GenerateDataKey(body)
        } else {
            Response::GenerateDataKeyWithoutPlaintext(body)
        }
    }

    /// `resp`'s reply frame, as the owned codec writes it.
    fn reply(resp: Response) -> Vec<u8> {
        let op = resp.op().code();
        let mut buf = Vec::new();
        encode_response(&mut buf, 3, op, &Ok(resp));
        buf
    }

    /// `resp` through the owned codec, then through [`decode_response_sharing`] and through
    /// `decode_response`: both answers, which must agree (their `Debug` forms, secrets
    /// redacted, and the secrets compared here).
    fn both(resp: Response, last: &mut Option<Arc<str>>) -> (Response, Response) {
        let buf = reply(resp);
        let (h, body, _) = split_frame(&buf).unwrap().unwrap();
        let by_hand = decode_response_sharing(&h, body, last).unwrap().unwrap();
        let owned = crate::protocol::decode_response(&h, body).unwrap().unwrap();
        assert_eq!(format!("{by_hand:?}"), format!("{owned:?}"));
        assert_eq!(secret_of(&by_hand), secret_of(&owned));
        (by_hand, owned)
    }

    /// The plaintext or data key an answer carries.
    fn secret_of(r: &Response) -> Option<&[u8]> {
        match r {
            Response::Decrypt(d) => Some(d.plaintext.expose()),
            Response::GenerateDataKey(g) | Response::GenerateDataKeyWithoutPlaintext(g) => {
                g.plaintext.as_ref().map(SecretBytes::expose)
            }
            _ => None,
        }
    }

    /// The GenerateDataKey answer [`both`] decodes.
    fn shared(resp: Response, last: &mut Option<Arc<str>>) -> GenerateDataKeyResponse {
        let (Response::GenerateDataKey(a) | Response::GenerateDataKeyWithoutPlaintext(a), _) =
            both(resp, last)
        else {
            panic!("not a data key")
        };
        a
    }

    #[test]
    fn data_key_replies_decode_by_hand_as_bincode_decodes_them_sharing_the_arn_of_one_key() {
        let (one, other) = (
            "arn:aws:kms:us-east-1:111122223333:key/one",
            "arn:aws:kms:us-east-1:111122223333:key/other",
        );
        let mut last = None;
        let first = shared(
            data_key_answer(Op::GenerateDataKey, one, Some(&[1; 32])),
            &mut last,
        );
        let second = shared(
            data_key_answer(Op::GenerateDataKeyWithoutPlaintext, one, None),
            &mut last,
        );
        assert!(
            Arc::ptr_eq(&first.key_id, &second.key_id),
            "one key, one ARN"
        );
        let third = shared(
            data_key_answer(Op::GenerateDataKey, other, Some(&[2; 64])),
            &mut last,
        );
        assert_eq!(&*third.key_id, other);
        assert!(!Arc::ptr_eq(&first.key_id, &third.key_id));
        assert!(
            Arc::ptr_eq(last.as_ref().unwrap(), &third.key_id),
            "the last key remembered"
        );
    }

    #[test]
    fn a_reply_in_another_form_is_left_to_bincode_and_gets_its_error() {
        let valid = reply(data_key_answer(
            Op::GenerateDataKey,
            "arn:k",
            Some(&[1; 32]),
        ));
        // The ARN's last byte made invalid UTF-8.
        let mut not_utf8 = valid.clone();
        *not_utf8.last_mut().unwrap() = 0xff;
        // A byte past the answer, in a body announced one byte longer.
        let mut trailing = valid.clone();
        trailing.push(0);
        let (h, _, _) = split_frame(&valid).unwrap().unwrap();
        let longer = Header::new(h.op, h.request_id, h.status, h.body_len + 1);
        trailing[..HEADER_LEN].copy_from_slice(&longer.to_bytes());
        for frame in [&not_utf8, &trailing] {
            let (h, body, _) = split_frame(frame).unwrap().unwrap();
            let mut last = None;
            let by_hand = format!("{:?}", decode_response_sharing(&h, body, &mut last));
            let owned = format!("{:?}", crate::protocol::decode_response(&h, body));
            assert_eq!(by_hand, owned);
            assert!(by_hand.starts_with("Err("), "{by_hand}");
            assert!(
                last.is_none(),
                "nothing remembered from a reply not decoded"
            );
        }
        // An error reply is the error it carries.
        let mut err = Vec::new();
        let e = KmsError::new(crate::error::ErrorKind::NotFoundException, "no key k");
        encode_response(&mut err, 4, Op::GenerateDataKey.code(), &Err(e));
        let (h, body, _) = split_frame(&err).unwrap().unwrap();
        let r = decode_response_sharing(&h, body, &mut None)
            .unwrap()
            .unwrap_err();
        assert_eq!(r.kind(), crate::error::ErrorKind::NotFoundException);
        assert_eq!(r.message(), "no key k");
    }

    #[test]
    fn encrypt_and_decrypt_replies_decode_by_hand_as_bincode_does_sharing_one_keys_arn() {
        let arn = "arn:aws:kms:us-east-1:111122223333:key/one";
        let mut last = None;
        let encrypt = Response::Encrypt(EncryptResponse {
            ciphertext_blob: vec![9; 301],
            key_id: arn.into(),
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        });
        let (Response::Encrypt(e), _) = both(encrypt, &mut last) else {
            panic!("not an Encrypt answer")
        };
        let decrypt = Response::Decrypt(DecryptResponse {
            key_id: arn.into(),
            plaintext: SecretBytes::from_slice(&[5; 4096]),
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        });
        let (Response::Decrypt(d), _) = both(decrypt, &mut last) else {
            panic!("not a Decrypt answer")
        };
        assert_eq!(d.plaintext.expose(), &[5; 4096][..]);
        assert!(Arc::ptr_eq(&e.key_id, &d.key_id), "one key, one ARN");
        let g = shared(
            data_key_answer(Op::GenerateDataKey, arn, Some(&[1; 32])),
            &mut last,
        );
        assert!(Arc::ptr_eq(&e.key_id, &g.key_id), "across operations too");
    }

    #[test]
    fn an_answer_under_another_algorithm_is_left_to_bincode() {
        // An RSA key's Decrypt answer: not the symmetric form read by hand, decoded as bincode
        // decodes it, and its ARN not remembered.
        let mut last = None;
        let decrypt = Response::Decrypt(DecryptResponse {
            key_id: "arn:aws:kms:us-east-1:111122223333:key/rsa".into(),
            plaintext: SecretBytes::from_slice(b"secret"),
            encryption_algorithm: EncryptionAlgorithm::RsaesOaepSha256,
        });
        let (Response::Decrypt(d), _) = both(decrypt, &mut last) else {
            panic!("not a Decrypt answer")
        };
        assert_eq!(d.encryption_algorithm, EncryptionAlgorithm::RsaesOaepSha256);
        assert_eq!(d.plaintext.expose(), b"secret");
        assert!(last.is_none());
    }
}
