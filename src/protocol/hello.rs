//! The Hello exchange: the first frame on every connection.

use super::codec::{check_body_len, decode_body, decode_error_body, encode_body, no_trailing};
use super::frame::{Header, ProtocolError, HEADER_LEN, OP_HELLO, STATUS_OK};
use crate::error::KmsError;

/// The client's Hello (op [`OP_HELLO`]).
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Hello {
    /// The protocol version the client speaks (also in every header).
    pub version: u8,
    /// Free text naming the client, e.g. `kmscks-rs/0.1.0` (for logs).
    pub client: String,
}

/// The daemon's answer to Hello.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct HelloReply {
    /// The protocol version the daemon speaks.
    pub version: u8,
    /// Free text naming the daemon, e.g. `kmscksd/0.1.0`.
    pub server: String,
    /// The largest body the daemon accepts.
    pub max_body: u32,
    /// How many requests one connection may have in flight before the daemon stops reading.
    pub max_in_flight: u32,
    /// The caller's principal ARN, as the daemon derived it from the peer's uid.
    pub principal: String,
}

fn append<T: bincode::Encode>(out: &mut Vec<u8>, request_id: u64, value: &T) {
    let start = out.len();
    crate::secret::extend_wiping(out, &[0u8; HEADER_LEN]);
    if encode_body(value, out).is_err() {
        // Encoding two small structs into a Vec cannot fail; leave no partial frame if it did.
        crate::secret::truncate_wiping(out, start);
        return;
    }
    let len = u32::try_from(out.len() - start - HEADER_LEN).unwrap_or(u32::MAX);
    let h = Header::new(OP_HELLO, request_id, STATUS_OK, len);
    out[start..start + HEADER_LEN].copy_from_slice(&h.to_bytes());
}

fn decode<T: bincode::Decode<()>>(h: &Header, body: &[u8]) -> Result<T, ProtocolError> {
    check_body_len(h, body)?;
    if h.op != OP_HELLO {
        return Err(ProtocolError::Malformed(format!(
            "expected a Hello frame (op 0), got op {}",
            h.op
        )));
    }
    let (v, used) =
        decode_body::<T>(body).map_err(|e| ProtocolError::Malformed(format!("Hello body: {e}")))?;
    no_trailing(h.op, body, used)?;
    Ok(v)
}

/// Appends a Hello frame.
pub fn encode_hello(out: &mut Vec<u8>, request_id: u64, hello: &Hello) {
    append(out, request_id, hello);
}

/// Decodes a Hello request.
pub fn decode_hello(h: &Header, body: &[u8]) -> Result<Hello, ProtocolError> {
    if h.status != STATUS_OK {
        return Err(ProtocolError::UnexpectedStatus(h.status));
    }
    decode(h, body)
}

/// Appends a successful Hello reply (errors use [`super::encode_error`] with op 0).
pub fn encode_hello_reply(out: &mut Vec<u8>, request_id: u64, reply: &HelloReply) {
    append(out, request_id, reply);
}

/// Decodes the reply to Hello: the reply, or the error the daemon refused the Hello with.
pub fn decode_hello_reply(
    h: &Header,
    body: &[u8],
) -> Result<Result<HelloReply, KmsError>, ProtocolError> {
    if h.status != STATUS_OK {
        check_body_len(h, body)?;
        return Ok(Err(decode_error_body(h, body)?));
    }
    decode(h, body).map(Ok)
}
