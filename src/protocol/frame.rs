//! The frame header and its validation.

use std::fmt;

use crate::error::{ErrorKind, KmsError};

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"KMSC";
/// The protocol version this build speaks (header byte 4).
pub const VERSION: u8 = 6;
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 24;
/// Where the header's last member, `body_len`, starts.
const BODY_LEN_AT: usize = 20;
/// Largest body a frame may carry, in bytes. Checked on the header, before any allocation.
pub const MAX_BODY: u32 = 1 << 20;
/// The Hello exchange's op code. Not in the operation table: it is protocol-level.
pub const OP_HELLO: u16 = 0;
/// The status of a successful reply (and of every request).
pub const STATUS_OK: u32 = 0;

/// A frame header: `magic[4] | version u8 | flags u8 | op u16 | request_id u64 | status u32 |
/// body_len u32`, little-endian, 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Protocol version ([`VERSION`]).
    pub version: u8,
    /// Reserved, 0.
    pub flags: u8,
    /// The operation's code ([`crate::ops::Op::code`]) or [`OP_HELLO`].
    pub op: u16,
    /// Chosen by the client; echoed in the reply.
    pub request_id: u64,
    /// 0 in requests and successful replies; an [`ErrorKind`] code in error replies.
    pub status: u32,
    /// Length of the body that follows.
    pub body_len: u32,
}

impl Header {
    /// A header of this build's [`VERSION`], with no flags.
    pub fn new(op: u16, request_id: u64, status: u32, body_len: u32) -> Header {
        Header {
            version: VERSION,
            flags: 0,
            op,
            request_id,
            status,
            body_len,
        }
    }

    /// The 24 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = self.version;
        b[5] = self.flags;
        b[6..8].copy_from_slice(&self.op.to_le_bytes());
        b[8..16].copy_from_slice(&self.request_id.to_le_bytes());
        b[16..20].copy_from_slice(&self.status.to_le_bytes());
        b[BODY_LEN_AT..HEADER_LEN].copy_from_slice(&self.body_len.to_le_bytes());
        b
    }

    /// Header plus body length in bytes.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }
}

/// Why a frame or body was refused. Every one of these ends the connection after the error
/// reply (where a reply is possible).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The frame does not start with [`MAGIC`].
    BadMagic,
    /// The header's version is not [`VERSION`].
    UnsupportedVersion(u8),
    /// Reserved flag bits are set.
    ReservedFlags(u8),
    /// The header announces a body longer than [`MAX_BODY`].
    BodyTooLarge(u32),
    /// The op code is in no operation table entry (nor [`OP_HELLO`]).
    UnknownOp(u16),
    /// A request frame carries a non-zero status.
    UnexpectedStatus(u32),
    /// The body decoded, but bytes were left over.
    TrailingBytes {
        /// The frame's op code.
        op: u16,
        /// How many bytes were left.
        extra: usize,
    },
    /// The body does not decode as the op's type (or is otherwise inconsistent).
    Malformed(String),
    /// The first frame of a connection is not a Hello: it carries this op code.
    HelloRequired(u16),
}

impl ProtocolError {
    /// The error reply for this failure: `UnknownOperationException` for an unknown op code,
    /// `SerializationException` for everything else.
    pub fn to_error(&self) -> KmsError {
        let kind = match self {
            ProtocolError::UnknownOp(_) => ErrorKind::UnknownOperationException,
            _ => ErrorKind::SerializationException,
        };
        KmsError::new(kind, self.to_string())
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::BadMagic => write!(f, "bad frame magic: frames start with \"KMSC\""),
            ProtocolError::UnsupportedVersion(v) => write!(
                f,
                "unsupported protocol version {v}: this peer speaks version {VERSION}"
            ),
            ProtocolError::ReservedFlags(b) => {
                write!(
                    f,
                    "reserved header flags set: {b:#04x} (must be 0 in version {VERSION})"
                )
            }
            ProtocolError::BodyTooLarge(n) => {
                write!(
                    f,
                    "frame body of {n} bytes exceeds the limit of {MAX_BODY} bytes"
                )
            }
            ProtocolError::UnknownOp(op) => write!(f, "unknown operation code {op}"),
            ProtocolError::UnexpectedStatus(s) => {
                write!(f, "request frame carries status {s}; requests must carry 0")
            }
            ProtocolError::TrailingBytes { op, extra } => write!(
                f,
                "{extra} trailing bytes after the body of operation code {op}"
            ),
            ProtocolError::Malformed(m) => write!(f, "malformed frame body: {m}"),
            ProtocolError::HelloRequired(op) => write!(
                f,
                "the first frame of a connection must be a Hello (op code {}); got op code {op}",
                OP_HELLO
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<ProtocolError> for KmsError {
    fn from(e: ProtocolError) -> KmsError {
        e.to_error()
    }
}

/// Parses and validates the header at the start of `buf`. `Ok(None)`: fewer than
/// [`HEADER_LEN`] bytes so far, and those present are a valid prefix (a wrong magic is reported
/// as soon as its first byte arrives).
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
    // The bytes there are of the magic, one by one (at most four: a slice comparison would
    // call `memcmp` for every frame read and every reply counted).
    if buf.iter().zip(MAGIC).any(|(have, want)| *have != want) {
        return Err(ProtocolError::BadMagic);
    }
    if buf.len() > 4 && buf[4] != VERSION {
        return Err(ProtocolError::UnsupportedVersion(buf[4]));
    }
    if buf.len() > 5 && buf[5] != 0 {
        return Err(ProtocolError::ReservedFlags(buf[5]));
    }
    let Some(b) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let le16 = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let le32 = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[8..16]);
    let h = Header {
        version: b[4],
        flags: b[5],
        op: le16(6),
        request_id: u64::from_le_bytes(id),
        status: le32(16),
        body_len: le32(BODY_LEN_AT),
    };
    if h.body_len > MAX_BODY {
        return Err(ProtocolError::BodyTooLarge(h.body_len));
    }
    Ok(Some(h))
}

/// The length (header and body) of the frame whose header starts `buf`, read from its
/// `body_len` alone, without validating the header: for frames this peer wrote itself (the
/// daemon counting the replies in its write buffer). None while the header is incomplete.
pub(crate) fn written_frame_len(buf: &[u8]) -> Option<usize> {
    let b: [u8; 4] = buf.get(BODY_LEN_AT..HEADER_LEN)?.try_into().ok()?;
    Some(HEADER_LEN + u32::from_le_bytes(b) as usize)
}

/// A complete frame found at the front of a buffer: its header, its body, and the number of
/// bytes (header + body) it occupies there.
pub type Frame<'a> = (Header, &'a [u8], usize);

/// Splits one complete frame off the front of `buf`. `Ok(None)` while the frame is incomplete.
pub fn split_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, ProtocolError> {
    let Some(h) = parse_header(buf)? else {
        return Ok(None);
    };
    let len = h.frame_len();
    Ok(buf.get(HEADER_LEN..len).map(|body| (h, body, len)))
}
