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

use crate::api::kms::{DecryptRequest, EncryptRequest, GenerateDataKeyRequest};
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

/// A request that must not run on the event loop (it may block): answered by a helper thread.
pub(crate) struct Deferred {
    pub request_id: u64,
    pub request: Request,
}

/// What handling a connection's buffered frames came to.
pub(crate) struct Handled {
    /// Bytes of complete frames consumed.
    pub consumed: usize,
    /// Complete request frames handled.
    pub frames: usize,
    /// A protocol error: its reply was written; close the connection after flushing.
    pub error: Option<ProtocolError>,
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

/// Handles every complete frame of `buf`, appending replies to `out`. Requests that may block
/// are pushed to `deferred` (in order) instead of being run. `max_in_flight` is what Hello
/// advertises; `at_eof`: no more bytes will come. `greeted`: the connection's Hello was
/// answered (set here); until then any other frame is refused, from its header alone, with a
/// protocol error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn handle_frames(
    buf: &[u8],
    greeted: &mut bool,
    kms: &Kms,
    batcher: &mut Batcher,
    out: &mut Vec<u8>,
    deferred: &mut Vec<Deferred>,
    max_in_flight: u32,
    at_eof: bool,
) -> Handled {
    let mut pos = 0;
    let mut frames = 0;
    let mut error = None;
    loop {
        let rest = &buf[pos..];
        let header: Header = match protocol::parse_header(rest) {
            Ok(None) => break,
            Ok(Some(h)) => h,
            // A bad version or flags byte is seen before the whole header is there: wait for
            // the rest so that the error reply can carry the request id.
            Err(ProtocolError::UnsupportedVersion(_) | ProtocolError::ReservedFlags(_))
                if rest.len() < HEADER_LEN && !at_eof =>
            {
                break
            }
            Err(e) => {
                let (id, op) = raw_ids(rest);
                batcher.flush(kms, out);
                protocol::encode_response(out, id, op, &Err(e.to_error()));
                error = Some(e);
                break;
            }
        };
        if !*greeted && header.op != protocol::OP_HELLO {
            let e = ProtocolError::HelloRequired(header.op);
            protocol::encode_protocol_error(out, header.request_id, header.op, &e);
            error = Some(e);
            break;
        }
        let end = HEADER_LEN + header.body_len as usize;
        if rest.len() < end {
            break;
        }
        let body = &rest[HEADER_LEN..end];
        pos += end;
        frames += 1;
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
                    break;
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
                break;
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
        let result: Result<Response, KmsError> = kms.dispatch(&request);
        protocol::encode_response(out, header.request_id, header.op, &result);
    }
    batcher.flush(kms, out);
    Handled {
        consumed: pos,
        frames,
        error,
    }
}
