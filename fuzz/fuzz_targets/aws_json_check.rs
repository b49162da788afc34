//! The property the AWS JSON request decoder must hold on any input, shared by the fuzz target
//! (`aws_json_decode`) and the stable-toolchain test that runs it on generated inputs
//! (`tests/aws_json_decode.rs`), so both check one thing.
//!
//! Input: a target line (`TrentService.Encrypt`), a newline, then the body. When the line
//! names no operation, its first byte picks one from the table, so every operation's body
//! decoder is fuzzed. Decoding must never panic; a request that decodes must serialise back to
//! a JSON body that decodes to the same request (compared through the socket's bincode
//! encoding: the request types hold secrets and have no `PartialEq`).

use kmscks::ops::{Op, Request};
use kmscks::protocol::aws_json::{self, Target};
use kmscks::protocol::encode_request;

/// Decodes `data` as target line + body; panics only if the decoder breaks its contract.
pub(crate) fn check(data: &[u8]) {
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let target = std::str::from_utf8(line)
        .ok()
        .and_then(|t| aws_json::operation(t).ok())
        .unwrap_or_else(|| {
            let pick = usize::from(line.first().copied().unwrap_or(0));
            Target::Op(Op::ALL[pick % Op::ALL.len()])
        });
    let Ok(request) = aws_json::decode_request(target, body) else {
        return;
    };
    // Externally tagged: {"<Operation>": <the request's own JSON body>}.
    let tagged = serde_json::to_value(&request).expect("a decoded request serialises");
    let inner = match tagged {
        serde_json::Value::Object(mut m) if m.len() == 1 => {
            let (_, v) = m.iter_mut().next().expect("one member");
            v.take()
        }
        other => panic!("a request serialises as one tagged member, not {other}"),
    };
    let again = aws_json::decode_request(target, inner.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("the request's own JSON does not decode: {e}"));
    assert_eq!(
        bytes(&request),
        bytes(&again),
        "JSON round trip changed the request"
    );
}

fn bytes(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(&mut out, 1, request);
    out
}
