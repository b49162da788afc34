//! From the bytes of one read to the replies of that read.
//!
//! The complete frames in a connection's read buffer are decoded in order. Consecutive
//! Encrypt, Decrypt, GenerateDataKey and GenerateDataKeyWithoutPlaintext requests (of one
//! kind) are collected and handed to the engine as ONE batch call
//! ([`Kms::encrypt_batch`] …), so routing and queueing are paid once per read, not per
//! request; every other operation goes through [`Kms::dispatch`] in order. Replies are appended
//! to the connection's write buffer and written with one `write` when the read is handled.
//! The batch vectors are reused across reads: once warm, this path allocates nothing beyond
//! the requests' and responses' own bodies.
//!
//! Handling is bounded by an [`Allowance`]: work (so that one event-loop turn stays within a
//! few milliseconds whatever one client sends), reply bytes (the reply cap and the uid's
//! memory quota) and replies owed (`max_in_flight`). Decoding stops before the frame that
//! would pass one of them; the rest waits in the read buffer. A batch request (EncryptBatch
//! …) becomes a [`Job`] answered a slice of items per turn, its reply the same as one engine
//! call would give.

use crate::api::kms::{
    BatchResponse, DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse,
    GenerateDataKeyRequest, GenerateDataKeyResponse,
};
use crate::error::KmsError;
use crate::ops::{Op, Request, Response};
use crate::protocol::{self, Header, HelloReply, ProtocolError, HEADER_LEN};
use crate::Kms;

/// The kind of the batch being collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Encrypt,
    Decrypt,
    DataKey,
    DataKeyWithoutPlaintext,
}

/// Collects consecutive batchable requests of one read. Reused across reads.
#[derive(Default)]
pub(crate) struct Batcher {
    kind: Option<Kind>,
    ids: Vec<u64>,
    encrypt: Vec<EncryptRequest>,
    decrypt: Vec<DecryptRequest>,
    data_key: Vec<GenerateDataKeyRequest>,
    /// An upper estimate of the reply bytes of the collected batch.
    projected: usize,
}

/// Reply bytes beyond the payload that one data-plane reply may take (header, key ARN,
/// ciphertext header and tag, encoding): an estimate for bounding, not a wire fact.
const REPLY_OVERHEAD: usize = 512;
/// The data key size assumed for a GenerateDataKey that does not give NumberOfBytes.
const DEFAULT_DATA_KEY: usize = 32;

/// An upper estimate of the reply bytes of one Encrypt, Decrypt or GenerateDataKey request.
fn reply_estimate(req: &Request) -> usize {
    REPLY_OVERHEAD
        + match req {
            Request::Encrypt(r) => r.plaintext.len(),
            Request::Decrypt(r) => r.ciphertext_blob.len(),
            Request::GenerateDataKey(r) | Request::GenerateDataKeyWithoutPlaintext(r) => {
                2 * r.number_of_bytes.map_or(DEFAULT_DATA_KEY, |n| n as usize)
            }
            _ => 0,
        }
}

/// The work units one request (or batch item) of `bytes` payload costs: 1, plus 1 per KiB.
pub(crate) fn work_cost(bytes: usize) -> usize {
    1 + bytes / 1024
}

impl Batcher {
    /// Takes a batchable request, flushing a batch of another kind first; gives back a request
    /// that is not batchable.
    fn push(&mut self, id: u64, req: Request, kms: &Kms, out: &mut Vec<u8>) -> Option<Request> {
        let kind = match &req {
            Request::Encrypt(_) => Kind::Encrypt,
            Request::Decrypt(_) => Kind::Decrypt,
            Request::GenerateDataKey(_) => Kind::DataKey,
            Request::GenerateDataKeyWithoutPlaintext(_) => Kind::DataKeyWithoutPlaintext,
            _ => return Some(req),
        };
        if self.kind != Some(kind) {
            self.flush(kms, out);
            self.kind = Some(kind);
        }
        self.projected += reply_estimate(&req);
        self.ids.push(id);
        match req {
            Request::Encrypt(r) => self.encrypt.push(r),
            Request::Decrypt(r) => self.decrypt.push(r),
            Request::GenerateDataKey(r) | Request::GenerateDataKeyWithoutPlaintext(r) => {
                self.data_key.push(r)
            }
            _ => unreachable!("kind was matched above"),
        }
        None
    }

    /// Runs the collected batch (one engine call) and appends its replies.
    pub(crate) fn flush(&mut self, kms: &Kms, out: &mut Vec<u8>) {
        self.projected = 0;
        let Some(kind) = self.kind.take() else {
            return;
        };
        match kind {
            Kind::Encrypt => {
                let results = kms.encrypt_batch(&self.encrypt);
                reply_all(out, &self.ids, Op::Encrypt, results, Response::Encrypt);
                self.encrypt.clear();
            }
            Kind::Decrypt => {
                let results = kms.decrypt_batch(&self.decrypt);
                reply_all(out, &self.ids, Op::Decrypt, results, Response::Decrypt);
                self.decrypt.clear();
            }
            Kind::DataKey => {
                let results = kms.generate_data_key_batch(&self.data_key, true);
                reply_all(
                    out,
                    &self.ids,
                    Op::GenerateDataKey,
                    results,
                    Response::GenerateDataKey,
                );
                self.data_key.clear();
            }
            Kind::DataKeyWithoutPlaintext => {
                let results = kms.generate_data_key_batch(&self.data_key, false);
                reply_all(
                    out,
                    &self.ids,
                    Op::GenerateDataKeyWithoutPlaintext,
                    results,
                    Response::GenerateDataKeyWithoutPlaintext,
                );
                self.data_key.clear();
            }
        }
        self.ids.clear();
    }
}

fn reply_all<T>(
    out: &mut Vec<u8>,
    ids: &[u64],
    op: Op,
    results: Vec<crate::Result<T>>,
    wrap: fn(T) -> Response,
) {
    let mut results = results.into_iter();
    for &id in ids {
        let result = results.next().unwrap_or_else(|| {
            Err(crate::err!(
                KMSInternalException,
                "the engine returned too few results for a batch of {}",
                ids.len()
            ))
        });
        protocol::encode_response(out, id, op.code(), &result.map(wrap));
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
    DataKey(Vec<GenerateDataKeyRequest>, Results<GenerateDataKeyResponse>, bool),
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
    /// The job for a batch request; gives back any other request.
    fn new(request_id: u64, frame_bytes: usize, request: Request) -> Result<Job, Request> {
        let items = match request {
            Request::EncryptBatch(b) => JobItems::Encrypt(b.items, Vec::new()),
            Request::DecryptBatch(b) => JobItems::Decrypt(b.items, Vec::new()),
            Request::GenerateDataKeyBatch(b) => JobItems::DataKey(b.items, Vec::new(), true),
            Request::GenerateDataKeyWithoutPlaintextBatch(b) => {
                JobItems::DataKey(b.items, Vec::new(), false)
            }
            other => return Err(other),
        };
        Ok(Job {
            request_id,
            frame_bytes,
            next: 0,
            items,
        })
    }

    /// The size of the request frame (held against the uid's memory quota until answered).
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

/// A request that must not run on the event loop (it may block): answered by a helper thread.
pub(crate) struct Deferred {
    pub request_id: u64,
    pub request: Request,
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
    /// A batch request became a [`Job`]: run it before the next frame.
    Job,
    /// A protocol error (its reply written): close after flushing.
    Error,
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

/// Handles the complete frames of `buf` in order, within `allow`, appending replies to `out`.
/// Requests that may block are pushed to `deferred` (in order) instead of being run; a batch
/// request is returned as a [`Job`]. `max_in_flight` is what Hello advertises; `at_eof`: no
/// more bytes will come.
#[allow(clippy::too_many_arguments)] // one call site; the loop's state, passed as is
pub(crate) fn handle_frames(
    buf: &[u8],
    kms: &Kms,
    batcher: &mut Batcher,
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
        let end = HEADER_LEN + header.body_len as usize;
        if rest.len() < end {
            break Stop::Input;
        }
        let body = &rest[HEADER_LEN..end];
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
                Ok(_) => protocol::encode_hello_reply(
                    out,
                    header.request_id,
                    &HelloReply {
                        version: protocol::VERSION,
                        server: concat!("kmscksd/", env!("CARGO_PKG_VERSION")).into(),
                        max_body: protocol::MAX_BODY,
                        max_in_flight,
                        principal: kms.principal().to_owned(),
                    },
                ),
                Err(e) => {
                    protocol::encode_protocol_error(out, header.request_id, header.op, &e);
                    error = Some(e);
                    break Stop::Error;
                }
            }
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
        if matches!(request, Request::WaitForConnection(_)) {
            deferred.push(Deferred {
                request_id: header.request_id,
                request,
            });
            continue;
        }
        let request = match Job::new(header.request_id, end, request) {
            Ok(j) => {
                // The frame's cost was taken above; the items are paid for as they run.
                job = Some(j);
                break Stop::Job;
            }
            Err(request) => request,
        };
        let result: Result<Response, KmsError> = kms.dispatch(&request);
        protocol::encode_response(out, header.request_id, header.op, &result);
    };
    batcher.flush(kms, out);
    Handled {
        consumed: pos,
        frames,
        error,
        stop,
        job,
    }
}
