//! The socket protocol between `kmscksd` and its clients: framing, bodies and the Hello
//! exchange. `docs/protocol.md` is its specification for clients in other languages.
//!
//! A frame is a fixed 24-byte little-endian [`Header`] followed by `body_len` bytes of body.
//! Request bodies are the bincode encoding ([`BINCODE_CONFIG`]) of the operation's request
//! struct; the op code in the header (from [`crate::ops::Op`], the single table of operations)
//! says which, and the codec of every body is generated from that table. The protocol knows
//! nothing of the service that performs the operations. A reply carries the request's id and op; status 0 means the body is the
//! operation's response struct, any other status is an [`crate::ErrorKind`] code and the body is
//! the UTF-8 error message. Clients may pipeline: replies are matched by request id and may come
//! out of order.
//!
//! Decoding is two-pass: [`parse_header`] checks magic, version, flags and the body length
//! (against [`MAX_BODY`], before anything is allocated), then [`decode_request`] /
//! [`decode_response`] decode a complete body, refusing unknown op codes and trailing bytes.

pub mod aws_json;
mod borrowed;
mod codec;
mod frame;
mod hello;
mod ranges;
mod unhonoured;
mod wire;

pub use borrowed::decode_response_sharing;
pub(crate) use borrowed::{
    decode_hot_request, encode_data_key_reply, encode_decrypt_reply, encode_encrypt_reply,
    HotRequest,
};
pub use codec::{
    decode_request, decode_response, encode_error, encode_protocol_error, encode_request,
    encode_response, try_encode_request, BINCODE_CONFIG, DECODE_LIMIT,
};
pub(crate) use frame::written_frame_len;
pub use frame::{
    parse_header, split_frame, Frame, Header, ProtocolError, HEADER_LEN, MAGIC, MAX_BODY, OP_HELLO,
    STATUS_OK, VERSION,
};
pub use hello::{
    decode_hello, decode_hello_reply, encode_hello, encode_hello_reply, Hello, HelloReply,
};
