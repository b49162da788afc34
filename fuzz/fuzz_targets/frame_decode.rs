//! Arbitrary bytes through the daemon's and the client's decoding paths: header parsing, frame
//! splitting (pipelined input), request, response and Hello decoding. Any panic, abort or
//! runaway allocation is a bug. Decoded requests are re-encoded and must decode to the same
//! frame bytes.
#![no_main]

use kmscks::protocol::*;
use libfuzzer_sys::fuzz_target;

/// A decoded request re-encodes to a frame that decodes and re-encodes to the same bytes
/// (bincode accepts some non-canonical input, e.g. unsorted maps, so the first encoding may
/// differ from the input; the second must not).
fn canonical(req: &kmscks::ops::Request) {
    let mut once = Vec::new();
    encode_request(&mut once, 1, req);
    let (h, body, used) = split_frame(&once).unwrap().unwrap();
    assert_eq!(used, once.len());
    let back = decode_request(&h, body).expect("own request encoding decodes");
    let mut twice = Vec::new();
    encode_request(&mut twice, 1, &back);
    assert_eq!(once, twice, "request encoding is stable");
}

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        let (h, body, used) = match split_frame(rest) {
            Ok(Some(f)) => f,
            // Incomplete frame or a bad header: the daemon would wait or close.
            Ok(None) | Err(_) => {
                // Also decode the bytes as a body under a synthetic header for every op code
                // present in the first two bytes, so bodies get fuzzed without a valid header.
                if rest.len() >= 2 {
                    let op = u16::from_le_bytes([rest[0], rest[1]]);
                    let body = &rest[2..];
                    let h = Header::new(op, 0, 0, body.len() as u32);
                    if let Ok(req) = decode_request(&h, body) {
                        canonical(&req);
                    }
                    let _ = decode_response(&h, body);
                    let _ = decode_hello(&h, body);
                    let _ = decode_hello_reply(&h, body);
                }
                return;
            }
        };
        if h.op == OP_HELLO {
            let _ = decode_hello(&h, body);
            let _ = decode_hello_reply(&h, body);
        } else {
            if let Ok(req) = decode_request(&h, body) {
                canonical(&req);
            }
            if let Ok(Ok(resp)) = decode_response(&h, body) {
                let mut once = Vec::new();
                encode_response(&mut once, 1, h.op, &Ok(resp));
                let (h1, b1, _) = split_frame(&once).unwrap().unwrap();
                let back = decode_response(&h1, b1).expect("own response encoding decodes");
                let mut twice = Vec::new();
                encode_response(&mut twice, 1, h.op, &back);
                assert_eq!(once, twice, "response encoding is stable");
            }
        }
        at += used;
    }
});
