//! Frame bodies: bincode with one configuration, each operation's body encoding (generated from
//! the operation table, `ops::for_each_op!`), and the request/response frame codec.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::error::{DecodeError, EncodeError};

use super::frame::{Header, ProtocolError, HEADER_LEN, MAX_BODY, OP_HELLO, STATUS_OK};
use crate::error::{ErrorKind, KmsError};
use crate::ops::{for_each_op, Op, Request, Response};

/// The most a single body decode may claim (allocate) in total: a multiple of [`MAX_BODY`],
/// since in-memory structs are larger than their varint encodings. A hostile length prefix fails
/// with a limit error before anything that large is allocated.
pub const DECODE_LIMIT: usize = 32 * MAX_BODY as usize;

/// The one bincode configuration of the protocol: little-endian, varint integers, and
/// [`DECODE_LIMIT`] on decoding.
pub const BINCODE_CONFIG: Configuration<LittleEndian, Varint, Limit<DECODE_LIMIT>> =
    bincode::config::standard().with_limit::<DECODE_LIMIT>();

struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        // Bodies carry plaintexts and data keys: a growing buffer wipes what it leaves.
        crate::secret::extend_wiping(self.0, bytes);
        Ok(())
    }
}

/// Appends the bincode encoding of `value` to `out`.
pub(super) fn encode_body<T: bincode::Encode>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut enc = bincode::enc::EncoderImpl::new(VecWriter(out), BINCODE_CONFIG);
    value.encode(&mut enc)
}

/// Decodes a `T` from the front of `body`; returns it and the bytes consumed.
pub(super) fn decode_body<T: bincode::Decode<()>>(body: &[u8]) -> Result<(T, usize), DecodeError> {
    bincode::decode_from_slice(body, BINCODE_CONFIG)
}

// The body of a request or response is the operation's own request or response struct (the op
// code travels in the frame header, so the enum's tag is not encoded). The struct type of each
// arm is inferred from the variant it is wrapped in or taken from.
macro_rules! op_bodies {
    ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {
        impl Request {
            /// Appends the bincode body of this request (without the enum tag) to `out`.
            pub fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                match self { $(Request::$name(r) => encode_body(r, out),)* }
            }

            /// Decodes the body of a request of `op`; returns it and the bytes consumed.
            pub fn decode_body(op: Op, body: &[u8]) -> Result<(Request, usize), DecodeError> {
                match op { $(Op::$name => decode_body(body).map(|(r, n)| (Request::$name(r), n)),)* }
            }
        }

        impl Response {
            /// Appends the bincode body of this response (without the enum tag) to `out`.
            pub fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                match self { $(Response::$name(r) => encode_body(r, out),)* }
            }

            /// Decodes the body of a response of `op`; returns it and the bytes consumed.
            pub fn decode_body(op: Op, body: &[u8]) -> Result<(Response, usize), DecodeError> {
                match op { $(Op::$name => decode_body(body).map(|(r, n)| (Response::$name(r), n)),)* }
            }
        }
    };
}

for_each_op!(op_bodies);

/// Appends a frame whose body `write_body` appends; returns the body length.
pub(super) fn frame_with(
    out: &mut Vec<u8>,
    op: u16,
    request_id: u64,
    status: u32,
    write_body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let start = out.len();
    crate::secret::extend_wiping(out, &[0u8; HEADER_LEN]);
    if let Err(e) = write_body(out) {
        crate::secret::truncate_wiping(out, start);
        return Err(e);
    }
    let body_len = out.len() - start - HEADER_LEN;
    let h = Header::new(
        op,
        request_id,
        status,
        u32::try_from(body_len).unwrap_or(u32::MAX),
    );
    out[start..start + HEADER_LEN].copy_from_slice(&h.to_bytes());
    Ok(body_len)
}

fn encode_failed(e: EncodeError) -> ProtocolError {
    ProtocolError::Malformed(format!("cannot encode: {e}"))
}

/// Appends one request frame, or nothing and [`ProtocolError::BodyTooLarge`] when the body
/// would exceed [`MAX_BODY`] (the daemon would refuse it and close the connection).
pub fn try_encode_request(
    out: &mut Vec<u8>,
    request_id: u64,
    req: &Request,
) -> Result<(), ProtocolError> {
    let start = out.len();
    let len = frame_with(out, req.op().code(), request_id, STATUS_OK, |o| {
        req.encode_body(o)
    })
    .map_err(encode_failed)?;
    if len > MAX_BODY as usize {
        crate::secret::truncate_wiping(out, start);
        return Err(ProtocolError::BodyTooLarge(
            u32::try_from(len).unwrap_or(u32::MAX),
        ));
    }
    Ok(())
}

/// Appends one request frame to `out`. A body over [`MAX_BODY`] is still written (the receiver
/// refuses it); use [`try_encode_request`] to check first.
pub fn encode_request(out: &mut Vec<u8>, request_id: u64, req: &Request) {
    // Encoding into a Vec cannot fail: every body type's Encode only writes, and VecWriter never
    // refuses bytes. Should it ever, nothing is appended and the peer sees no frame.
    let _ = frame_with(out, req.op().code(), request_id, STATUS_OK, |o| {
        req.encode_body(o)
    });
}

/// Decodes the body of a complete request frame (header already checked by
/// [`super::parse_header`]).
pub fn decode_request(h: &Header, body: &[u8]) -> Result<Request, ProtocolError> {
    check_body_len(h, body)?;
    if h.status != STATUS_OK {
        return Err(ProtocolError::UnexpectedStatus(h.status));
    }
    let op = op_of(h.op)?;
    let (req, used) = Request::decode_body(op, body).map_err(|e| malformed(op, e))?;
    no_trailing(h.op, body, used)?;
    Ok(req)
}

/// Appends an error reply: status = the error's [`ErrorKind`] code, body = its message (UTF-8,
/// cut at a character boundary to fit [`MAX_BODY`]).
pub fn encode_error(out: &mut Vec<u8>, request_id: u64, op: u16, error: &KmsError) {
    let msg = error.message();
    let mut cut = msg.len().min(MAX_BODY as usize);
    while !msg.is_char_boundary(cut) {
        cut -= 1;
    }
    let _ = frame_with(out, op, request_id, error.kind().code(), |o| {
        // Into a write buffer that may hold replies with secrets: growing it wipes what it
        // leaves.
        crate::secret::extend_wiping(o, &msg.as_bytes()[..cut]);
        Ok(())
    });
}

/// Appends the error reply for a protocol failure ([`ProtocolError::to_error`]).
pub fn encode_protocol_error(out: &mut Vec<u8>, request_id: u64, op: u16, error: &ProtocolError) {
    encode_error(out, request_id, op, &error.to_error());
}

/// Appends one reply frame: the response body with status 0, or the error. A response too large
/// for one frame becomes a `LimitExceededException` reply.
pub fn encode_response(
    out: &mut Vec<u8>,
    request_id: u64,
    op: u16,
    result: &Result<Response, KmsError>,
) {
    match result {
        Ok(resp) => {
            let start = out.len();
            match frame_with(out, op, request_id, STATUS_OK, |o| resp.encode_body(o)) {
                Ok(len) if len <= MAX_BODY as usize => {}
                Ok(len) => {
                    crate::secret::truncate_wiping(out, start);
                    let e = KmsError::new(
                        ErrorKind::LimitExceededException,
                        format!(
                            "the {} response of {len} bytes exceeds the protocol's frame limit of \
                             {MAX_BODY} bytes; request smaller pages (Limit) or batches",
                            resp.op().name()
                        ),
                    );
                    encode_error(out, request_id, op, &e);
                }
                Err(e) => {
                    let e = KmsError::new(
                        ErrorKind::KMSInternalException,
                        format!("cannot encode the {} response: {e}", resp.op().name()),
                    );
                    encode_error(out, request_id, op, &e);
                }
            }
        }
        Err(e) => encode_error(out, request_id, op, e),
    }
}

/// Decodes a complete reply frame: the response or the error it carries. An error code this
/// build does not know becomes `KMSInternalException` naming the code.
pub fn decode_response(
    h: &Header,
    body: &[u8],
) -> Result<Result<Response, KmsError>, ProtocolError> {
    check_body_len(h, body)?;
    if h.status != STATUS_OK {
        return Ok(Err(decode_error_body(h, body)?));
    }
    let op = op_of(h.op)?;
    let (resp, used) = Response::decode_body(op, body).map_err(|e| malformed(op, e))?;
    no_trailing(h.op, body, used)?;
    Ok(Ok(resp))
}

/// The error an error reply (status ≠ 0) carries.
pub(crate) fn decode_error_body(h: &Header, body: &[u8]) -> Result<KmsError, ProtocolError> {
    let msg = std::str::from_utf8(body).map_err(|e| {
        ProtocolError::Malformed(format!(
            "error message of status {} is not UTF-8 (invalid byte at offset {})",
            h.status,
            e.valid_up_to()
        ))
    })?;
    Ok(match ErrorKind::from_code(h.status) {
        Some(kind) => KmsError::new(kind, msg),
        None => KmsError::new(
            ErrorKind::KMSInternalException,
            format!("unknown error code {} from the daemon: {msg}", h.status),
        ),
    })
}

pub(crate) fn check_body_len(h: &Header, body: &[u8]) -> Result<(), ProtocolError> {
    if body.len() != h.body_len as usize {
        return Err(ProtocolError::Malformed(format!(
            "body of {} bytes where the header announces {}",
            body.len(),
            h.body_len
        )));
    }
    Ok(())
}

fn op_of(code: u16) -> Result<Op, ProtocolError> {
    if code == OP_HELLO {
        return Err(ProtocolError::Malformed(
            "Hello (op 0) frame where an operation was expected".into(),
        ));
    }
    Op::from_code(code).ok_or(ProtocolError::UnknownOp(code))
}

fn malformed(op: Op, e: DecodeError) -> ProtocolError {
    ProtocolError::Malformed(format!("{} body: {e}", op.name()))
}

pub(crate) fn no_trailing(op: u16, body: &[u8], used: usize) -> Result<(), ProtocolError> {
    if used != body.len() {
        return Err(ProtocolError::TrailingBytes {
            op,
            extra: body.len() - used,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::hsm::{CreateClusterRequest, UserRequest};
    use crate::protocol::split_frame;
    use crate::secret::Password;

    /// Every request type's bincode body with each member at its default, after its op code
    /// and length. Bodies carry no member names, so a member added to, removed from or
    /// retyped in a request changes these bytes (a nested type behind an empty `Option` or
    /// `Vec` does not, nor do responses: this catches the common change, not every one).
    fn default_request_bodies() -> Vec<u8> {
        #[allow(clippy::wildcard_imports)]
        // the op table names its types as the API exports them
        use crate::api::{hsm::*, kms::*};
        /// A request at its defaults; for the few without `Default`, the first value of each
        /// member that has none.
        trait Sample {
            fn sample() -> Self;
        }
        impl<T: Default> Sample for T {
            fn sample() -> T {
                T::default()
            }
        }
        impl Sample for UserRequest {
            fn sample() -> Self {
                UserRequest {
                    cluster_id: String::new(),
                    username: String::new(),
                    role: None,
                    password: Password::new(""),
                }
            }
        }
        impl Sample for DeleteKeyObjectRequest {
            fn sample() -> Self {
                DeleteKeyObjectRequest {
                    cluster_id: String::new(),
                    key_reference: 0,
                    username: String::new(),
                    password: Password::new(""),
                }
            }
        }
        impl Sample for ActivateClusterRequest {
            fn sample() -> Self {
                ActivateClusterRequest {
                    cluster_id: String::new(),
                    password: Password::new(""),
                }
            }
        }
        impl Sample for ModifyClusterRequest {
            fn sample() -> Self {
                ModifyClusterRequest {
                    cluster_id: String::new(),
                    backup_retention_policy: BackupRetentionPolicy {
                        kind: String::new(),
                        value: String::new(),
                    },
                    region: None,
                }
            }
        }
        impl Sample for InjectFaultRequest {
            fn sample() -> Self {
                InjectFaultRequest {
                    cluster_id: String::new(),
                    fault: Fault::NetworkDown,
                }
            }
        }
        impl Sample for RefusedRequest {
            fn sample() -> Self {
                RefusedRequest {
                    operation: Refused::ALL[0],
                    key_id: String::new(),
                }
            }
        }
        let mut out = Vec::new();
        macro_rules! bodies {
            ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {$(
                let mut body = Vec::new();
                // Invariant: a request at its defaults encodes (bincode fails only on a
                // writer error, and a Vec's writer has none).
                encode_body(&<$req as Sample>::sample(), &mut body).expect("a default request encodes");
                out.extend_from_slice(&Op::$name.code().to_le_bytes());
                out.extend_from_slice(&(body.len() as u32).to_le_bytes());
                out.extend_from_slice(&body);
            )*};
        }
        crate::ops::for_each_op!(bodies);
        out
    }

    /// A peer of another build refuses this one at its first header only if a changed body
    /// came with a new [`VERSION`]; otherwise it misreads the body, or fails it with a
    /// `SerializationException` that does not name the cause.
    #[test]
    fn a_request_body_changes_only_with_a_new_protocol_version() {
        const PINNED: (u8, u32) = (6, 0x9a38_2006);
        use super::super::VERSION;
        let fingerprint = crc32fast::hash(&default_request_bodies());
        assert_eq!(
            (VERSION, fingerprint),
            PINNED,
            "the request bodies changed (fingerprint {fingerprint:#010x}): bump \
             protocol::VERSION, say what changed under docs/protocol.md's Versions and pin \
             the new version and fingerprint here"
        );
    }

    #[test]
    fn every_op_decodes_garbage_without_panicking() {
        for &op in Op::ALL {
            for body in [
                &[][..],
                &[0u8; 3][..],
                &[0xff; 16][..],
                &[1, 0x41, 0, 0, 0, 0][..],
            ] {
                let h = Header::new(op.code(), 1, STATUS_OK, body.len() as u32);
                // Either a request or a typed error; never a panic.
                let _ = decode_request(&h, body);
                let _ = decode_response(&h, body);
            }
        }
    }

    #[test]
    fn secrets_and_ids_round_trip_and_ids_are_validated() {
        let req = Request::CreateUser(UserRequest {
            cluster_id: "cluster-abcdefghijk".into(),
            username: "kmsuser".into(),
            role: Some(crate::types::HsmUserRole::CryptoUser),
            password: Password::new("correct horse"),
        });
        let mut buf = Vec::new();
        encode_request(&mut buf, 9, &req);
        let (h, body, _) = split_frame(&buf).unwrap().unwrap();
        match decode_request(&h, body).unwrap() {
            Request::CreateUser(u) => assert_eq!(u.password.expose(), "correct horse"),
            other => panic!("{other:?}"),
        }

        let backup = crate::types::BackupId::generate();
        let req = Request::CreateCluster(CreateClusterRequest {
            source_backup_id: Some(backup.clone()),
            ..Default::default()
        });
        let mut buf = Vec::new();
        encode_request(&mut buf, 1, &req);
        let (h, body, _) = split_frame(&buf).unwrap().unwrap();
        match decode_request(&h, body).unwrap() {
            Request::CreateCluster(c) => assert_eq!(c.source_backup_id, Some(backup.clone())),
            other => panic!("{other:?}"),
        }
        // The same frame with the backup id's text corrupted: refused at decode time.
        let text = backup.as_str().as_bytes();
        let at = buf.windows(text.len()).position(|w| w == text).unwrap();
        buf[at] = b'X';
        let (h, body, _) = split_frame(&buf).unwrap().unwrap();
        let e = decode_request(&h, body).unwrap_err();
        assert!(
            matches!(&e, ProtocolError::Malformed(m) if m.contains("not a valid backup id")),
            "{e}"
        );
    }
}
