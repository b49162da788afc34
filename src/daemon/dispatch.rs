//! From the bytes of one read to the replies of that read.
//!
//! The complete frames in a connection's read buffer are decoded in order. Consecutive
//! Encrypt, Decrypt, GenerateDataKey and GenerateDataKeyWithoutPlaintext requests (of one
//! kind) are collected and handed to the engine as ONE batch call
//! ([`Kms::encrypt_batch`] …), so routing and queueing are paid once per read, not per
//! request; every other operation goes through [`Kms::dispatch`] in order. Replies are appended
//! to the connection's write buffer and written with one `write` when the read is handled.
//! Those four are decoded in place ([`protocol::decode_hot_request`]: key ids, plaintexts and
//! blobs borrowed from the read buffer), answered by the engine into the batcher's reused
//! buffers and encoded straight from them into the write buffer, so that once warm a read of
//! them allocates nothing (`tests/zero_alloc.rs`); one with an encryption context or grant
//! tokens is decoded into the owned request type and joins the same batch. The HTTP endpoint
//! collects its pipelined (owned) requests with the same [`Batcher`]; only how a reply is
//! written differs ([`Replies`]).
//!
//! Handling is bounded by an [`Allowance`]: work (so that one event-loop turn stays within a
//! few milliseconds whatever one client sends), reply bytes (the reply cap and the uid's
//! memory quota) and replies owed (`max_in_flight`). Decoding stops before the frame that
//! would pass one of them; the rest waits in the read buffer. A batch request (EncryptBatch
//! …) becomes a [`Job`] answered a slice of items per turn, its reply the same as one engine
//! call would give.

use zeroize::Zeroizing;

use super::control_thread::Lane;
use crate::api::kms::{
    BatchResponse, DecryptRequest, DecryptRequestRef, DecryptResponse, EncryptRequest,
    EncryptRequestRef, EncryptResponse, GenerateDataKeyRequest, GenerateDataKeyRequestRef,
    GenerateDataKeyResponse,
};
use crate::engine::{reuse_vec, DataKeyView, DecryptView, EncryptView};
use crate::err;
use crate::error::KmsError;
use crate::ops::{Op, Request, Response};
use crate::protocol::{self, Header, HelloReply, HotRequest, ProtocolError, HEADER_LEN};
use crate::types::EncryptionAlgorithm;
use crate::vecs::push_in_room;
use crate::BatchScratch;
use crate::Kms;

/// The kind of the batch being collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Encrypt,
    Decrypt,
    DataKey,
    DataKeyWithoutPlaintext,
}

/// Where the replies of collected requests go, in the order of the requests: the socket's
/// frames (`Vec<u8>`), or the HTTP endpoint's answers.
pub(crate) trait Replies {
    /// Appends the reply to request `id` (the socket's request id; the HTTP endpoint's own
    /// tag) of operation `op`.
    fn reply(&mut self, id: u64, op: Op, result: crate::Result<Response>);

    /// Appends the reply to an Encrypt, from the engine's answer as it lies in the batch's
    /// buffers. By default through [`Replies::reply`], owned.
    fn reply_encrypt(&mut self, id: u64, result: Result<EncryptView<'_>, &KmsError>) {
        let result = result.map_err(Clone::clone).map(|v| {
            Response::Encrypt(EncryptResponse {
                ciphertext_blob: v.ciphertext_blob.to_vec(),
                key_id: v.key_arn.clone(),
                encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
            })
        });
        self.reply(id, Op::Encrypt, result);
    }

    /// Appends the reply to a Decrypt, as [`Replies::reply_encrypt`].
    fn reply_decrypt(&mut self, id: u64, result: Result<DecryptView<'_>, &KmsError>) {
        let result = result.map_err(Clone::clone).map(|v| {
            Response::Decrypt(DecryptResponse {
                key_id: v.key_arn.clone(),
                plaintext: crate::secret::SecretBytes::from_slice(v.plaintext),
                encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
            })
        });
        self.reply(id, Op::Decrypt, result);
    }

    /// Appends the reply to a GenerateDataKey (`op`: with or without plaintext), as
    /// [`Replies::reply_encrypt`].
    fn reply_data_key(&mut self, id: u64, op: Op, result: Result<DataKeyView<'_>, &KmsError>) {
        let result = result.map_err(Clone::clone).map(|v| {
            let r = GenerateDataKeyResponse {
                ciphertext_blob: v.ciphertext_blob.to_vec(),
                plaintext: v.plaintext.map(crate::secret::SecretBytes::from_slice),
                key_id: v.key_arn.clone(),
            };
            if op == Op::GenerateDataKey {
                Response::GenerateDataKey(r)
            } else {
                Response::GenerateDataKeyWithoutPlaintext(r)
            }
        });
        self.reply(id, op, result);
    }
}

/// The socket's replies: frames encoded straight into the connection's write buffer.
impl Replies for Vec<u8> {
    fn reply(&mut self, id: u64, op: Op, result: crate::Result<Response>) {
        protocol::encode_response(self, id, op.code(), &result);
    }

    fn reply_encrypt(&mut self, id: u64, result: Result<EncryptView<'_>, &KmsError>) {
        match result {
            Ok(v) => protocol::encode_encrypt_reply(self, id, v.ciphertext_blob, v.key_arn),
            Err(e) => protocol::encode_error(self, id, Op::Encrypt.code(), e),
        }
    }

    fn reply_decrypt(&mut self, id: u64, result: Result<DecryptView<'_>, &KmsError>) {
        match result {
            Ok(v) => protocol::encode_decrypt_reply(self, id, v.plaintext, v.key_arn),
            Err(e) => protocol::encode_error(self, id, Op::Decrypt.code(), e),
        }
    }

    fn reply_data_key(&mut self, id: u64, op: Op, result: Result<DataKeyView<'_>, &KmsError>) {
        match result {
            Ok(v) => protocol::encode_data_key_reply(
                self,
                id,
                op,
                v.ciphertext_blob,
                v.plaintext,
                v.key_arn,
            ),
            Err(e) => protocol::encode_error(self, id, op.code(), e),
        }
    }
}

/// A collected request: decoded in place from the read buffer (the socket's common case), or
/// owned (the HTTP endpoint's, and a socket request with an encryption context or grant
/// tokens), by its index in [`Batcher::owned`] — an owned request is several times the size
/// of one decoded in place, and every item would be moved at its size.
enum Item<'a> {
    Hot(HotRequest<'a>),
    Owned(usize),
}

/// Collects consecutive batchable requests of one read (`'a`: the read buffer's borrow).
/// Reused across reads ([`Batcher::rebind`]): once warm, collecting and answering a batch of
/// requests decoded in place allocates nothing.
#[derive(Default)]
pub(crate) struct Batcher<'a> {
    kind: Option<Kind>,
    ids: Vec<u64>,
    items: Vec<Item<'a>>,
    /// The owned requests of the collected batch, in order.
    owned: Vec<Request>,
    /// What the batch calls reuse.
    scratch: BatchScratch,
    /// Always empty: the allocations the requests of the next flush are lent in.
    encrypt: Vec<EncryptRequestRef<'static>>,
    decrypt: Vec<DecryptRequestRef<'static>>,
    data_key: Vec<GenerateDataKeyRequestRef<'static>>,
    /// An upper estimate of the reply bytes of the collected batch.
    projected: usize,
}

/// Reply bytes beyond the payload that one data-plane reply may take (header, key ARN,
/// ciphertext header and tag, encoding): an estimate for bounding, not a wire fact.
const REPLY_OVERHEAD: usize = 512;
/// The data key size assumed for a GenerateDataKey that does not give NumberOfBytes.
const DEFAULT_DATA_KEY: usize = 32;

/// The data key bytes a GenerateDataKey request asks for, as far as bounding needs to know.
fn data_key_bytes(number_of_bytes: Option<u32>) -> usize {
    number_of_bytes.map_or(DEFAULT_DATA_KEY, |n| n as usize)
}

/// The kind of a request decoded in place and an upper estimate of its reply bytes.
fn kind_of_hot(req: &HotRequest<'_>) -> (Kind, usize) {
    let (kind, payload) = match req {
        HotRequest::Encrypt(r) => (Kind::Encrypt, r.plaintext.len()),
        HotRequest::Decrypt(r) => (Kind::Decrypt, r.ciphertext_blob.len()),
        HotRequest::DataKey(r) => (Kind::DataKey, 2 * data_key_bytes(r.number_of_bytes)),
        HotRequest::DataKeyWithoutPlaintext(r) => (
            Kind::DataKeyWithoutPlaintext,
            2 * data_key_bytes(r.number_of_bytes),
        ),
    };
    (kind, REPLY_OVERHEAD + payload)
}

/// The kind of an owned request and an upper estimate of its reply bytes; None when it is
/// not batchable (an Encrypt or Decrypt with an asymmetric algorithm is not: the batch calls
/// serve symmetric keys).
fn kind_of_owned(req: &Request) -> Option<(Kind, usize)> {
    let symmetric = EncryptionAlgorithm::is_symmetric;
    let (kind, payload) = match req {
        Request::Encrypt(r) if symmetric(r.encryption_algorithm) => {
            (Kind::Encrypt, r.plaintext.len())
        }
        Request::Decrypt(r) if symmetric(r.encryption_algorithm) => {
            (Kind::Decrypt, r.ciphertext_blob.len())
        }
        Request::GenerateDataKey(r) => (Kind::DataKey, 2 * data_key_bytes(r.number_of_bytes)),
        Request::GenerateDataKeyWithoutPlaintext(r) => (
            Kind::DataKeyWithoutPlaintext,
            2 * data_key_bytes(r.number_of_bytes),
        ),
        _ => return None,
    };
    Some((kind, REPLY_OVERHEAD + payload))
}

/// Work units ([`work_cost`]: one per request or batch item, plus one per KiB of payload) one
/// connection may use per event-loop turn: about a millisecond of engine work, so that a
/// client holds the others for no more than that at a time.
pub(crate) const WORK_PER_TURN: usize = 1024;

/// The work units one request (or batch item) of `bytes` payload costs: 1, plus 1 per KiB.
pub(crate) fn work_cost(bytes: usize) -> usize {
    1 + bytes / 1024
}

/// The work units a request answered on the loop took beyond what its size paid: one per
/// microsecond of `took` (a turn's [`WORK_PER_TURN`] is about a millisecond). A signature
/// under an ECC key or a key agreement costs hundreds of microseconds whatever its size: paid
/// by its size alone, one connection pipelining them held the loop for a tenth of a second a
/// turn, and every other connection on it waited that long for each of its requests.
pub(crate) fn work_taken(took: std::time::Duration) -> usize {
    usize::try_from(took.as_micros()).unwrap_or(usize::MAX)
}

/// What a request held past its turn is charged against its uid's memory quota, per byte of its
/// frame: a batch being answered, a control-plane call waiting for its lane, a batch or a
/// WaitForConnection waiting for a helper. Decoded, a frame takes many times its bytes, and a batch
/// gathers an answer per item: a batch item of 6 bytes is a request of about 100 and an answer of
/// about 150, an empty tag of 2 bytes a pair of 48. A reviewer measured 40 times the frame (32
/// connections of one uid, each holding a 1 MiB batch of empty items: 1.3 GB, charged 32 MiB).
pub(crate) const HELD_PER_FRAME_BYTE: usize = 48;

/// The charge of a held request whose frame is `frame_bytes` long: [`HELD_PER_FRAME_BYTE`]
/// times it, but at most `cap` (half the uid's quota: a connection alone can always get that
/// much room, so every request is served in the end) and at least the frame.
pub(crate) fn held_charge(frame_bytes: usize, cap: usize) -> usize {
    frame_bytes
        .saturating_mul(HELD_PER_FRAME_BYTE)
        .min(cap)
        .max(frame_bytes)
}

impl<'a> Batcher<'a> {
    /// This batcher, empty, for requests of another lifetime, keeping its allocations.
    pub(crate) fn rebind<'b>(self) -> Batcher<'b> {
        Batcher {
            kind: None,
            ids: self.ids,
            items: reuse_vec(self.items),
            owned: self.owned,
            scratch: self.scratch,
            encrypt: self.encrypt,
            decrypt: self.decrypt,
            data_key: self.data_key,
            projected: 0,
        }
    }

    /// Takes a batchable request, flushing a batch of another kind first; gives back a request
    /// that is not batchable.
    pub(crate) fn push(
        &mut self,
        id: u64,
        req: Request,
        kms: &Kms,
        out: &mut impl Replies,
    ) -> Option<Request> {
        let Some(k) = kind_of_owned(&req) else {
            return Some(req);
        };
        self.start(k, kms, out);
        self.owned.push(req);
        self.ids.push(id);
        self.items.push(Item::Owned(self.owned.len() - 1));
        None
    }

    /// Takes a request decoded in place, flushing a batch of another kind first.
    pub(crate) fn push_hot(
        &mut self,
        id: u64,
        req: HotRequest<'a>,
        kms: &Kms,
        out: &mut impl Replies,
    ) {
        self.start(kind_of_hot(&req), kms, out);
        self.ids.push(id);
        push_in_room(&mut self.items, Item::Hot(req));
    }

    /// Makes room for a request of `kind` in the batch, flushing a batch of another kind
    /// first, and counts its reply bytes.
    fn start(&mut self, (kind, estimate): (Kind, usize), kms: &Kms, out: &mut impl Replies) {
        if self.kind != Some(kind) {
            self.flush(kms, out);
            self.kind = Some(kind);
        }
        self.projected += estimate;
    }

    /// Runs the collected batch (one engine call) and appends its replies.
    pub(crate) fn flush(&mut self, kms: &Kms, out: &mut impl Replies) {
        self.projected = 0;
        let Some(kind) = self.kind.take() else {
            return;
        };
        let ids = &self.ids;
        let mut next = ids.iter().copied();
        // Not reached: the engine answers every item it is given.
        let mut id = move || next.next().unwrap_or_default();
        match kind {
            Kind::Encrypt => {
                let mut reqs: Vec<EncryptRequestRef<'_>> =
                    reuse_vec(std::mem::take(&mut self.encrypt));
                reqs.extend(self.items.iter().filter_map(|it| match it {
                    Item::Hot(HotRequest::Encrypt(r)) => Some(*r),
                    Item::Owned(i) => match &self.owned[*i] {
                        Request::Encrypt(r) => Some(r.borrowed()),
                        _ => None,
                    },
                    _ => None,
                }));
                kms.encrypt_batch_with(&reqs, &mut self.scratch, |r| out.reply_encrypt(id(), r));
                self.encrypt = reuse_vec(reqs);
            }
            Kind::Decrypt => {
                let mut reqs: Vec<DecryptRequestRef<'_>> =
                    reuse_vec(std::mem::take(&mut self.decrypt));
                reqs.extend(self.items.iter().filter_map(|it| match it {
                    Item::Hot(HotRequest::Decrypt(r)) => Some(*r),
                    Item::Owned(i) => match &self.owned[*i] {
                        Request::Decrypt(r) => Some(r.borrowed()),
                        _ => None,
                    },
                    _ => None,
                }));
                kms.decrypt_batch_with(&reqs, &mut self.scratch, |r| out.reply_decrypt(id(), r));
                self.decrypt = reuse_vec(reqs);
            }
            Kind::DataKey | Kind::DataKeyWithoutPlaintext => {
                let with_plaintext = kind == Kind::DataKey;
                let op = if with_plaintext {
                    Op::GenerateDataKey
                } else {
                    Op::GenerateDataKeyWithoutPlaintext
                };
                let mut reqs: Vec<GenerateDataKeyRequestRef<'_>> =
                    reuse_vec(std::mem::take(&mut self.data_key));
                reqs.extend(self.items.iter().filter_map(|it| match it {
                    Item::Hot(HotRequest::DataKey(r) | HotRequest::DataKeyWithoutPlaintext(r)) => {
                        Some(*r)
                    }
                    Item::Owned(i) => match &self.owned[*i] {
                        Request::GenerateDataKey(r)
                        | Request::GenerateDataKeyWithoutPlaintext(r) => Some(r.borrowed()),
                        _ => None,
                    },
                    _ => None,
                }));
                kms.generate_data_key_batch_with(&reqs, with_plaintext, &mut self.scratch, |r| {
                    out.reply_data_key(id(), op, r)
                });
                self.data_key = reuse_vec(reqs);
            }
        }
        self.items.clear();
        self.owned.clear();
        self.ids.clear();
    }
}

/// A batch request (EncryptBatch, DecryptBatch, GenerateDataKey[WithoutPlaintext]Batch)
/// answered a slice of items per event-loop turn, so that a batch of 60,000 items does not
/// hold the loop. Each item's answer does not depend on the slice it is in, so the reply is
/// the one a single engine call gives.
pub(crate) struct Job {
    request_id: u64,
    frame_bytes: usize,
    next: usize,
    items: JobItems,
}

type Results<T> = Vec<crate::Result<T>>;

enum JobItems {
    Encrypt(Vec<EncryptRequest>, Results<EncryptResponse>),
    Decrypt(Vec<DecryptRequest>, Results<DecryptResponse>),
    DataKey(
        Vec<GenerateDataKeyRequest>,
        Results<GenerateDataKeyResponse>,
        bool,
    ),
}

/// The end of the next slice of `items` from `next`: as many as `work` pays for, at least
/// one. `size` is an item's payload bytes.
fn slice_end<T>(items: &[T], next: usize, work: &mut usize, size: impl Fn(&T) -> usize) -> usize {
    let mut end = next;
    while let Some(item) = items.get(end) {
        let cost = work_cost(size(item));
        if end > next && cost > *work {
            break;
        }
        *work = work.saturating_sub(cost);
        end += 1;
    }
    end
}

impl Job {
    /// The job for a batch request (its items taken out of it); None for any other request.
    fn new(request_id: u64, frame_bytes: usize, request: &mut Request) -> Option<Job> {
        let items = match request {
            Request::EncryptBatch(b) => JobItems::Encrypt(std::mem::take(&mut b.items), Vec::new()),
            Request::DecryptBatch(b) => JobItems::Decrypt(std::mem::take(&mut b.items), Vec::new()),
            Request::GenerateDataKeyBatch(b) => {
                JobItems::DataKey(std::mem::take(&mut b.items), Vec::new(), true)
            }
            Request::GenerateDataKeyWithoutPlaintextBatch(b) => {
                JobItems::DataKey(std::mem::take(&mut b.items), Vec::new(), false)
            }
            _ => return None,
        };
        Some(Job {
            request_id,
            frame_bytes,
            next: 0,
            items,
        })
    }

    /// What it is charged against the uid's memory quota until answered ([`held_charge`] of
    /// its frame).
    pub(crate) fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Answers the next items, as many as `work` pays for (at least one). Returns true once
    /// every item is answered.
    pub(crate) fn step(&mut self, kms: &Kms, work: &mut usize) -> bool {
        let next = self.next;
        match &mut self.items {
            JobItems::Encrypt(items, results) => {
                let end = slice_end(items, next, work, |r| r.plaintext.len());
                results.extend(kms.encrypt_batch(&items[next..end]));
                self.next = end;
                end == items.len()
            }
            JobItems::Decrypt(items, results) => {
                let end = slice_end(items, next, work, |r| r.ciphertext_blob.len());
                results.extend(kms.decrypt_batch(&items[next..end]));
                self.next = end;
                end == items.len()
            }
            JobItems::DataKey(items, results, with_plaintext) => {
                let end = slice_end(items, next, work, |r| {
                    r.number_of_bytes.map_or(DEFAULT_DATA_KEY, |n| n as usize)
                });
                results.extend(kms.generate_data_key_batch(&items[next..end], *with_plaintext));
                self.next = end;
                end == items.len()
            }
        }
    }

    /// Appends the reply (once [`Job::step`] returned true).
    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        let (op, response) = match self.items {
            JobItems::Encrypt(_, r) => (
                Op::EncryptBatch,
                Response::EncryptBatch(BatchResponse::from_results(r)),
            ),
            JobItems::Decrypt(_, r) => (
                Op::DecryptBatch,
                Response::DecryptBatch(BatchResponse::from_results(r)),
            ),
            JobItems::DataKey(_, r, true) => (
                Op::GenerateDataKeyBatch,
                Response::GenerateDataKeyBatch(BatchResponse::from_results(r)),
            ),
            JobItems::DataKey(_, r, false) => (
                Op::GenerateDataKeyWithoutPlaintextBatch,
                Response::GenerateDataKeyWithoutPlaintextBatch(BatchResponse::from_results(r)),
            ),
        };
        protocol::encode_response(out, self.request_id, op.code(), &Ok(response));
    }
}

/// Batch frames with a body larger than this are decoded and answered on a helper thread
/// (still a slice at a time, so that the engine's queues serve other callers in between): the
/// decoding and encoding of a 1 MiB batch alone would hold the event loop too long.
const OFFLOAD_BYTES: usize = 64 << 10;

/// Work that must not run on the event loop: answered by a helper thread.
pub(crate) enum Deferred {
    /// A request that may block (WaitForConnection). The connection's later frames wait for
    /// it: its frame may be a megabyte (the store id is any string), and a connection
    /// pipelining such frames would otherwise have the daemon hold them all, uncounted.
    Blocking {
        request_id: u64,
        request: Request,
        /// What it is charged until answered ([`held_charge`] of its frame).
        held: usize,
    },
    /// A control-plane request (it takes the state's lock, and may wait for an fsync), or an
    /// RSA private-key operation (milliseconds): run on its control thread's lane
    /// (`control_thread`). The connection's later frames wait for it.
    Control {
        request_id: u64,
        request: Request,
        /// What it is charged until answered ([`held_charge`] of its frame).
        frame_bytes: usize,
        /// Where it runs.
        lane: Lane,
    },
    /// A large batch frame, not yet decoded (its plaintexts wiped however it ends: answered,
    /// or dropped unanswered when its connection closed first). The connection's later frames
    /// wait for it.
    Batch {
        header: Header,
        body: Zeroizing<Vec<u8>>,
        /// What it is charged until answered ([`held_charge`]).
        held: usize,
    },
}

impl Deferred {
    /// The request id and op its reply carries.
    pub(crate) fn ids(&self) -> (u64, u16) {
        match self {
            Deferred::Blocking {
                request_id,
                request,
                ..
            }
            | Deferred::Control {
                request_id,
                request,
                ..
            } => (*request_id, request.op().code()),
            Deferred::Batch { header, .. } => (header.request_id, header.op),
        }
    }

    /// Answers it (on a helper or control thread): the reply frame, and whether the
    /// connection must close after it (the frame did not decode). Always answers: a panic
    /// inside (a bug) becomes a `KMSInternalException` reply and the close, so the loop's
    /// accounting for the request (its connection's outstanding requests, its uid's helper)
    /// is given back as for any answer, and the connection is not left waiting for good.
    pub(crate) fn run(self, kms: &Kms) -> (Vec<u8>, bool) {
        let (id, op) = self.ids();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.answer(kms))).unwrap_or_else(
            |_| {
                let mut out = Vec::new();
                protocol::encode_response(&mut out, id, op, &Err(panicked()));
                (out, true)
            },
        )
    }

    fn answer(self, kms: &Kms) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        match self {
            Deferred::Blocking {
                request_id,
                request,
                ..
            }
            | Deferred::Control {
                request_id,
                request,
                ..
            } => {
                let result = kms.dispatch(&request);
                protocol::encode_response(&mut out, request_id, request.op().code(), &result);
                (out, false)
            }
            Deferred::Batch {
                header, mut body, ..
            } => {
                let decoded = protocol::decode_request(&header, &body);
                // The body holds plaintexts: no copy is left behind.
                crate::secret::wipe_vec(&mut body);
                let mut request = match decoded {
                    Ok(r) => r,
                    Err(e) => {
                        let e = e.to_error();
                        protocol::encode_response(&mut out, header.request_id, header.op, &Err(e));
                        return (out, true);
                    }
                };
                match Job::new(header.request_id, 0, &mut request) {
                    Some(mut job) => {
                        // A slice at a time, so that other callers' requests get between them
                        // in the engine's queues.
                        loop {
                            let mut work = WORK_PER_TURN;
                            if job.step(kms, &mut work) {
                                break;
                            }
                        }
                        job.finish(&mut out);
                    }
                    None => {
                        // Not reached: only batch ops are deferred as batches.
                        let result = kms.dispatch(&request);
                        protocol::encode_response(&mut out, header.request_id, header.op, &result);
                    }
                }
                (out, false)
            }
        }
    }
}

/// The answer to a request whose handling panicked off the loop (a bug): the socket's and
/// the HTTP endpoint's, which then close the connection.
pub(super) fn panicked() -> KmsError {
    err!(
        KMSInternalException,
        "kmscksd failed answering this request (a bug); the connection is closed"
    )
}

/// Whether `op` is a batch operation (answered as a [`Job`]).
pub(super) fn is_batch(op: u16) -> bool {
    [
        Op::EncryptBatch,
        Op::DecryptBatch,
        Op::GenerateDataKeyBatch,
        Op::GenerateDataKeyWithoutPlaintextBatch,
    ]
    .iter()
    .any(|o| o.code() == op)
}

/// How much one call of [`handle_frames`] may do; what it uses is taken off.
#[derive(Debug)]
pub(crate) struct Allowance {
    /// Work units ([`work_cost`]) left in this event-loop turn.
    pub work: usize,
    /// Reply bytes that may still be appended. Checked before each frame, so the last
    /// frame's reply may pass it: give at least 1 to let one frame through.
    pub reply_bytes: usize,
    /// Replies that may still be owed (`max_in_flight` minus those outstanding).
    pub replies: usize,
    /// Memory a request held past this turn may still be charged ([`held_charge`]): the
    /// connection's room. A request that would need more is not taken ([`Stop::Memory`]).
    pub held: usize,
    /// The most a held request is charged (the `cap` of [`held_charge`]).
    pub held_cap: usize,
}

/// Why [`handle_frames`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// No whole frame left in the buffer.
    Input,
    /// The turn's work is spent: continue on a later turn.
    Work,
    /// No room for more replies (reply cap, memory quota, in-flight limit): continue once
    /// the client reads.
    Room,
    /// A batch request became a [`Job`], or went to a helper thread ([`Deferred::Batch`]), a
    /// request that may block to a helper thread ([`Deferred::Blocking`]), or a control-plane
    /// request to the control thread ([`Deferred::Control`]): answer it before the next frame.
    Job,
    /// A protocol error (its reply written): close after flushing.
    Error,
    /// The next frame is a request that would be held past this turn, and the connection's
    /// room does not cover what it would be charged (this much): it stays in the buffer until
    /// the uid's memory goes down.
    Memory(usize),
}

/// What handling a connection's buffered frames came to.
pub(crate) struct Handled {
    /// Bytes of complete frames consumed.
    pub consumed: usize,
    /// Complete request frames handled.
    pub frames: usize,
    /// A protocol error: its reply was written; close the connection after flushing.
    pub error: Option<ProtocolError>,
    /// Why handling stopped.
    pub stop: Stop,
    /// The batch request to run next, when `stop` is [`Stop::Job`].
    pub job: Option<Job>,
}

/// The request id and op of a header whose fields could not be validated, if its bytes are
/// there and the magic is right (layout: magic[4] version flags op u16 request_id u64 …, little-endian).
fn raw_ids(buf: &[u8]) -> (u64, u16) {
    if buf.len() < HEADER_LEN || buf[..4] != protocol::MAGIC {
        return (0, 0);
    }
    let op = u16::from_le_bytes([buf[6], buf[7]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[8..16]);
    (u64::from_le_bytes(id), op)
}

/// Handles the complete frames of `buf` in order, within `allow`, appending replies to `out`. A
/// request that must not run on the loop (it may block, takes the control-plane state, or is a
/// large batch) is pushed to `deferred` instead of being run, and handling stops there
/// ([`Stop::Job`]); a batch request is returned as a [`Job`]. `max_in_flight` is what Hello
/// advertises; `at_eof`: no more bytes will come. `greeted`: the connection's Hello was answered
/// (set here); until then any other frame is refused, from its header alone, with a protocol error.
#[allow(clippy::too_many_arguments)] // one call site; the loop's state, passed as is
pub(crate) fn handle_frames(
    buf: &[u8],
    greeted: &mut bool,
    kms: &Kms,
    spare: &mut Batcher<'static>,
    out: &mut Vec<u8>,
    deferred: &mut Vec<Deferred>,
    max_in_flight: u32,
    at_eof: bool,
    allow: &mut Allowance,
) -> Handled {
    let mut pos = 0;
    let mut frames = 0;
    let mut error = None;
    let mut job = None;
    let start = out.len();
    // Requests decoded in place borrow from `buf` until the batch is flushed, below.
    let mut batcher: Batcher<'_> = std::mem::take(spare).rebind();
    // The key id of the last request decoded in place (see `decode_hot_request`).
    let mut last_key = None;
    let stop = loop {
        if allow.work == 0 {
            break Stop::Work;
        }
        if allow.replies == 0 || out.len() - start + batcher.projected >= allow.reply_bytes {
            break Stop::Room;
        }
        let rest = &buf[pos..];
        let header: Header = match protocol::parse_header(rest) {
            Ok(None) => break Stop::Input,
            Ok(Some(h)) => h,
            // A bad version or flags byte is seen before the whole header is there: wait for
            // the rest so that the error reply can carry the request id.
            Err(ProtocolError::UnsupportedVersion(_) | ProtocolError::ReservedFlags(_))
                if rest.len() < HEADER_LEN && !at_eof =>
            {
                break Stop::Input
            }
            Err(e) => {
                let (id, op) = raw_ids(rest);
                batcher.flush(kms, out);
                protocol::encode_response(out, id, op, &Err(e.to_error()));
                error = Some(e);
                break Stop::Error;
            }
        };
        if !*greeted && header.op != protocol::OP_HELLO {
            let e = ProtocolError::HelloRequired(header.op);
            protocol::encode_protocol_error(out, header.request_id, header.op, &e);
            error = Some(e);
            break Stop::Error;
        }
        let end = HEADER_LEN + header.body_len as usize;
        if rest.len() < end {
            break Stop::Input;
        }
        let body = &rest[HEADER_LEN..end];
        // A request held past the turn is charged for what it decodes into first: a batch is
        // known by its op, a control-plane call once decoded (below).
        let held = held_charge(end, allow.held_cap);
        let batch = is_batch(header.op);
        if batch && held > allow.held {
            break Stop::Memory(held);
        }
        let work_before = allow.work;
        pos += end;
        frames += 1;
        allow.replies -= 1;
        allow.work = allow.work.saturating_sub(work_cost(body.len()));
        if header.op == protocol::OP_HELLO {
            batcher.flush(kms, out);
            let hello = protocol::decode_hello(&header, body).and_then(|hello| {
                if hello.version == protocol::VERSION {
                    Ok(hello)
                } else {
                    Err(ProtocolError::UnsupportedVersion(hello.version))
                }
            });
            match hello {
                Ok(_) => {
                    *greeted = true;
                    protocol::encode_hello_reply(
                        out,
                        header.request_id,
                        &HelloReply {
                            version: protocol::VERSION,
                            server: concat!("kmscksd/", env!("CARGO_PKG_VERSION")).into(),
                            max_body: protocol::MAX_BODY,
                            max_in_flight,
                            principal: kms.principal().to_owned(),
                        },
                    )
                }
                Err(e) => {
                    protocol::encode_protocol_error(out, header.request_id, header.op, &e);
                    error = Some(e);
                    break Stop::Error;
                }
            }
            continue;
        }
        if batch && body.len() > OFFLOAD_BYTES {
            batcher.flush(kms, out);
            deferred.push(Deferred::Batch {
                header,
                body: Zeroizing::new(body.to_vec()),
                held,
            });
            break Stop::Job;
        }
        if let Some(hot) = protocol::decode_hot_request(&header, body, &mut last_key) {
            batcher.push_hot(header.request_id, hot, kms, out);
            continue;
        }
        let request = match protocol::decode_request(&header, body) {
            Ok(r) => r,
            Err(e) => {
                batcher.flush(kms, out);
                protocol::encode_response(out, header.request_id, header.op, &Err(e.to_error()));
                error = Some(e);
                break Stop::Error;
            }
        };
        let Some(request) = batcher.push(header.request_id, request, kms, out) else {
            continue;
        };
        batcher.flush(kms, out);
        // A WaitForConnection (which may block for its whole timeout) goes to a helper thread,
        // and is not the control-plane call its op would make it.
        let blocking = matches!(request, Request::WaitForConnection(_));
        let lane = Lane::of(&request);
        if blocking || lane.is_some() {
            if held > allow.held {
                // Not taken: read again (and decoded again) once there is room for it.
                drop(request);
                pos -= end;
                frames -= 1;
                allow.replies += 1;
                allow.work = work_before;
                break Stop::Memory(held);
            }
            let request_id = header.request_id;
            deferred.push(match lane {
                Some(lane) if !blocking => Deferred::Control {
                    request_id,
                    request,
                    frame_bytes: held,
                    lane,
                },
                _ => Deferred::Blocking {
                    request_id,
                    request,
                    held,
                },
            });
            break Stop::Job;
        }
        let mut request = request;
        if let Some(j) = Job::new(header.request_id, held, &mut request) {
            // The frame's cost was taken above; the items are paid for as they run.
            job = Some(j);
            break Stop::Job;
        }
        // Not the hot path (those requests were batched above): a clock read costs nothing
        // beside what these take.
        let started = std::time::Instant::now();
        let result: Result<Response, KmsError> = kms.dispatch(&request);
        let beyond_size = work_taken(started.elapsed()).saturating_sub(work_cost(body.len()));
        allow.work = allow.work.saturating_sub(beyond_size);
        protocol::encode_response(out, header.request_id, header.op, &result);
    };
    batcher.flush(kms, out);
    *spare = batcher.rebind();
    Handled {
        consumed: pos,
        frames,
        error,
        stop,
        job,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kms::{
        BatchItem, BatchRequest, CreateKeyRequest, ErrorBody, GenerateRandomRequest,
        WaitForConnectionRequest,
    };

    fn random_frames(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        for id in 1..=n {
            protocol::encode_request(
                &mut buf,
                id,
                &Request::GenerateRandom(GenerateRandomRequest {
                    number_of_bytes: Some(1024),
                    ..Default::default()
                }),
            );
        }
        buf
    }

    fn handle(buf: &[u8], kms: &Kms, allow: &mut Allowance) -> (Handled, Vec<u8>) {
        let mut out = Vec::new();
        let handled = handle_frames(
            buf,
            &mut true, // greeted: these tests are about what follows the Hello
            kms,
            &mut Batcher::default(),
            &mut out,
            &mut Vec::new(),
            4,
            false,
            allow,
        );
        (handled, out)
    }

    fn plenty() -> Allowance {
        Allowance {
            work: usize::MAX,
            reply_bytes: usize::MAX,
            replies: usize::MAX,
            held: usize::MAX,
            held_cap: usize::MAX,
        }
    }

    #[test]
    fn decoding_stops_when_the_replies_allowed_are_owed() {
        let kms = Kms::in_memory();
        let buf = random_frames(10);
        let mut allow = Allowance {
            replies: 4,
            ..plenty()
        };
        let (h, _) = handle(&buf, &kms, &mut allow);
        assert_eq!((h.frames, h.stop, allow.replies), (4, Stop::Room, 0));
        assert_eq!(h.consumed, 4 * buf.len() / 10);
    }

    #[test]
    fn decoding_stops_once_the_reply_bytes_are_reached_letting_the_first_frame_through() {
        let kms = Kms::in_memory();
        let buf = random_frames(10);
        let mut allow = Allowance {
            reply_bytes: 1,
            ..plenty()
        };
        let (h, out) = handle(&buf, &kms, &mut allow);
        assert_eq!((h.frames, h.stop), (1, Stop::Room));
        let mut allow = Allowance {
            reply_bytes: 3 * out.len(),
            ..plenty()
        };
        let (h, _) = handle(&buf, &kms, &mut allow);
        assert_eq!((h.frames, h.stop), (3, Stop::Room));
    }

    #[test]
    fn decoding_stops_when_the_turns_work_is_spent() {
        let kms = Kms::in_memory();
        let buf = random_frames(10);
        let mut allow = Allowance {
            work: 6,
            ..plenty()
        };
        let (h, _) = handle(&buf, &kms, &mut allow);
        // One unit each by their size; one that took longer than a microsecond a unit, more.
        assert_eq!((h.stop, allow.work), (Stop::Work, 0));
        assert!((1..=6).contains(&h.frames), "{}", h.frames);
        let mut allow = plenty();
        let (h, _) = handle(&buf, &kms, &mut allow);
        assert_eq!((h.frames, h.stop), (10, Stop::Input));
    }

    #[test]
    fn a_request_answered_on_the_loop_pays_for_the_time_it_took_not_its_size() {
        use crate::api::kms::SignRequest;
        use crate::types::{KeySpec, KeyUsage, SigningAlgorithm};
        let kms = Kms::in_memory();
        let key = kms
            .create_key(&CreateKeyRequest {
                key_spec: Some(KeySpec::EccNistP521),
                key_usage: Some(KeyUsage::SignVerify),
                ..Default::default()
            })
            .unwrap()
            .key_metadata
            .key_id;
        // 64 signatures of a few bytes each: 64 units by their size, and so all of them in
        // one turn (every P-521 signature takes tens of microseconds at the least).
        let mut buf = Vec::new();
        for id in 1..=64 {
            let sign = Request::Sign(SignRequest {
                key_id: key.clone(),
                message: crate::secret::SecretBytes::new(b"message".to_vec()),
                signing_algorithm: Some(SigningAlgorithm::EcdsaSha512),
                ..Default::default()
            });
            protocol::encode_request(&mut buf, id, &sign);
        }
        let mut allow = Allowance {
            work: WORK_PER_TURN,
            ..plenty()
        };
        let (h, out) = handle(&buf, &kms, &mut allow);
        assert_eq!(h.stop, Stop::Work, "{} signatures in one turn", h.frames);
        assert!((1..64).contains(&h.frames), "{}", h.frames);
        let (header, body, _) = protocol::split_frame(&out).unwrap().unwrap();
        assert!(matches!(
            protocol::decode_response(&header, body).unwrap(),
            Ok(Response::Sign(_))
        ));
    }

    #[test]
    fn a_held_request_is_charged_its_decoded_size_up_to_the_cap_and_at_least_its_frame() {
        assert_eq!(held_charge(1000, usize::MAX), 1000 * HELD_PER_FRAME_BYTE);
        assert_eq!(held_charge(1000, 5000), 5000);
        assert_eq!(held_charge(1000, 10), 1000);
    }

    #[test]
    fn the_protocol_doc_states_the_held_charge_as_it_is() {
        let doc = include_str!("../../docs/protocol.md");
        let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        for stated in [
            format!("is counted at {HELD_PER_FRAME_BYTE} times its frame, at most half the quota"),
            format!("({HELD_PER_FRAME_BYTE} times its length, at most half the quota)"),
        ] {
            assert!(
                flat.contains(&stated),
                "docs/protocol.md does not say {stated:?}"
            );
        }
    }

    #[test]
    fn a_request_held_past_the_turn_is_taken_only_with_room_for_its_charge() {
        let kms = Kms::in_memory();
        let batch = Request::EncryptBatch(BatchRequest {
            items: (0..30)
                .map(|_| EncryptRequest {
                    key_id: "alias/none".into(),
                    ..Default::default()
                })
                .collect(),
        });
        let control = Request::CreateKey(CreateKeyRequest::default());
        // Its store id is any string: a frame of up to a megabyte.
        let wait = Request::WaitForConnection(WaitForConnectionRequest {
            custom_key_store_id: "w".repeat(100_000),
            timeout_millis: 1,
        });
        for (request, becomes_job) in [(batch, true), (control, false), (wait, false)] {
            let mut frame = Vec::new();
            protocol::encode_request(&mut frame, 9, &request);
            let (op, held) = (request.op(), held_charge(frame.len(), usize::MAX));
            // The same frame twice: the second waits for the first's answer.
            let buf = [frame.as_slice(), &frame].concat();
            let run = |room: usize| {
                let mut allow = Allowance {
                    held: room,
                    work: 100,
                    replies: 4,
                    ..plenty()
                };
                let mut deferred = Vec::new();
                let h = handle_frames(
                    &buf,
                    &mut true,
                    &kms,
                    &mut Batcher::default(),
                    &mut Vec::new(),
                    &mut deferred,
                    4,
                    false,
                    &mut allow,
                );
                (h, deferred, allow)
            };
            // One byte short: nothing taken, nothing spent, and what it waits for said.
            let (h, deferred, allow) = run(held - 1);
            assert_eq!(h.stop, Stop::Memory(held), "{op:?}");
            assert_eq!(
                (h.consumed, h.frames, allow.work, allow.replies),
                (0, 0, 100, 4)
            );
            assert!(h.job.is_none() && deferred.is_empty());
            // With room (for both, even): the first taken, and charged that much until
            // answered; the next frame waits for its answer.
            let (h, deferred, _) = run(2 * held);
            assert_eq!((h.stop, h.consumed), (Stop::Job, frame.len()), "{op:?}");
            if becomes_job {
                assert_eq!(h.job.expect("a batch becomes a job").frame_bytes(), held);
            } else {
                let charged = match deferred.as_slice() {
                    [Deferred::Control { frame_bytes, .. }] => *frame_bytes,
                    [Deferred::Blocking { held, .. }] => *held,
                    _ => panic!("not one request off the loop: {} deferred", deferred.len()),
                };
                assert_eq!(charged, held, "{op:?}");
            }
        }
    }

    #[test]
    fn a_batch_in_slices_answers_like_one_call() {
        let kms = Kms::in_memory();
        let key = kms
            .create_key(&CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        let items: Vec<EncryptRequest> = (0..30)
            .map(|i| EncryptRequest {
                key_id: if i % 9 == 0 {
                    "alias/none".into()
                } else {
                    key.clone()
                },
                plaintext: crate::secret::SecretBytes::new(vec![i as u8; 2000]),
                ..Default::default()
            })
            .collect();
        let mut buf = Vec::new();
        let request = Request::EncryptBatch(BatchRequest { items });
        protocol::encode_request(&mut buf, 7, &request);
        let mut allow = plenty();
        let (h, out) = handle(&buf, &kms, &mut allow);
        assert_eq!((h.frames, h.stop, out.len()), (1, Stop::Job, 0));
        let mut job = h.job.expect("a batch becomes a job");
        // 2,000-byte items cost 2 units each: 9 units answer 4 items, at least one.
        let mut steps = 0;
        loop {
            steps += 1;
            let mut work = 9;
            if job.step(&kms, &mut work) {
                break;
            }
        }
        assert_eq!(steps, 8);
        let mut out = Vec::new();
        job.finish(&mut out);
        let (header, body, _) = protocol::split_frame(&out).unwrap().unwrap();
        assert_eq!(header.request_id, 7);
        let Ok(Response::EncryptBatch(reply)) = protocol::decode_response(&header, body).unwrap()
        else {
            panic!("not an EncryptBatch reply");
        };
        let Request::EncryptBatch(request) = request else {
            unreachable!("built above")
        };
        let alone = kms.encrypt_batch(&request.items);
        assert_eq!(reply.results.len(), alone.len());
        for (i, (sliced, alone)) in reply.results.iter().zip(&alone).enumerate() {
            match (sliced, alone) {
                (BatchItem::Ok(s), Ok(a)) => {
                    assert_eq!(
                        (&s.key_id, s.ciphertext_blob.len()),
                        (&a.key_id, a.ciphertext_blob.len()),
                        "item {i}"
                    )
                }
                (BatchItem::Err(s), Err(a)) => assert_eq!(s, &ErrorBody::from(a), "item {i}"),
                _ => panic!("item {i}: {sliced:?} against {alone:?}"),
            }
        }
    }
}
