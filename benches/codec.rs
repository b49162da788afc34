//! Frame codec: encoding and decoding Encrypt and GenerateDataKey requests and responses (the
//! responses also through a pipeline's decoder, `decode_response_sharing`, beside bincode's); and
//! the AWS JSON endpoint's decoding of a Decrypt body beside serde_json's own parse of the
//! same body (the floor: what decoding into the request type costs at least), which shows
//! what the endpoint adds (the search for members kmscks does not honour).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kmscks::api::kms::{
    EncryptRequest, EncryptResponse, GenerateDataKeyRequest, GenerateDataKeyResponse,
};
use kmscks::ops::{Request, Response};
use kmscks::protocol::{
    decode_request, decode_response, decode_response_sharing, encode_request, encode_response,
    split_frame,
};
use kmscks::secret::SecretBytes;
use kmscks::types::{DataKeySpec, EncryptionAlgorithm};

const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn requests() -> Vec<(&'static str, Request)> {
    let mut enc = EncryptRequest {
        key_id: "alias/demo".into(),
        plaintext: SecretBytes::zeroed(256),
        ..Default::default()
    };
    enc.encryption_context
        .insert("purpose".into(), "bench".into());
    vec![
        ("Encrypt/256B", Request::Encrypt(enc)),
        (
            "GenerateDataKey/AES_256",
            Request::GenerateDataKey(GenerateDataKeyRequest {
                key_id: "alias/demo".into(),
                key_spec: Some(DataKeySpec::Aes256),
                ..Default::default()
            }),
        ),
    ]
}

fn responses() -> Vec<(&'static str, Response)> {
    vec![
        (
            "Encrypt/256B",
            Response::Encrypt(EncryptResponse {
                ciphertext_blob: vec![7; 256 + 60],
                key_id: ARN.into(),
                encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
            }),
        ),
        (
            "GenerateDataKey/AES_256",
            Response::GenerateDataKey(GenerateDataKeyResponse {
                ciphertext_blob: vec![7; 32 + 60],
                plaintext: Some(SecretBytes::zeroed(32)),
                key_id: ARN.into(),
            }),
        ),
    ]
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let mut buf = Vec::with_capacity(4096);
    for (name, req) in requests() {
        g.bench_function(format!("encode_request/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                encode_request(&mut buf, 1, black_box(&req));
                black_box(buf.len())
            })
        });
        buf.clear();
        encode_request(&mut buf, 1, &req);
        let frame = buf.clone();
        g.bench_function(format!("decode_request/{name}"), |b| {
            b.iter(|| {
                let (h, body, _) = split_frame(black_box(&frame)).unwrap().unwrap();
                black_box(decode_request(&h, body).unwrap())
            })
        });
    }
    for (name, resp) in responses() {
        let op = resp.op().code();
        let result = Ok(resp);
        g.bench_function(format!("encode_response/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                encode_response(&mut buf, 1, op, black_box(&result));
                black_box(buf.len())
            })
        });
        buf.clear();
        encode_response(&mut buf, 1, op, &result);
        let frame = buf.clone();
        g.bench_function(format!("decode_response/{name}"), |b| {
            b.iter(|| {
                let (h, body, _) = split_frame(black_box(&frame)).unwrap().unwrap();
                black_box(decode_response(&h, body).unwrap().unwrap())
            })
        });
        // A pipeline's decoder, the key ARN of the reply before remembered (as every reply
        // after the first finds it), beside bincode's decode above.
        let mut last = None;
        g.bench_function(format!("decode_response_sharing/{name}"), |b| {
            b.iter(|| {
                let (h, body, _) = split_frame(black_box(&frame)).unwrap().unwrap();
                black_box(
                    decode_response_sharing(&h, body, &mut last)
                        .unwrap()
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
}

/// A Decrypt body as the AWS SDKs send it: `size` bytes of ciphertext in base64.
fn decrypt_body(size: usize) -> Vec<u8> {
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD.encode(vec![0x5a; size]);
    format!(r#"{{"CiphertextBlob":"{blob}","EncryptionContext":{{"purpose":"bench"}}}}"#)
        .into_bytes()
}

fn aws_json(c: &mut Criterion) {
    use kmscks::api::kms::DecryptRequest;
    use kmscks::ops::Op;
    use kmscks::protocol::aws_json::{decode_request, Target};
    let mut g = c.benchmark_group("aws_json");
    for size in [128, 4096] {
        let body = decrypt_body(size);
        g.bench_function(format!("serde_json/Decrypt/{size}B"), |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<DecryptRequest>(black_box(&body)).unwrap())
            })
        });
        g.bench_function(format!("decode_request/Decrypt/{size}B"), |b| {
            b.iter(|| black_box(decode_request(Target::Op(Op::Decrypt), black_box(&body)).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, codec, aws_json);
criterion_main!(benches);
