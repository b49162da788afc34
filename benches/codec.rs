//! Frame codec: encoding and decoding Encrypt and GenerateDataKey requests and responses.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kmscks::api::kms::{
    EncryptRequest, EncryptResponse, GenerateDataKeyRequest, GenerateDataKeyResponse,
};
use kmscks::ops::{Request, Response};
use kmscks::protocol::{
    decode_request, decode_response, encode_request, encode_response, split_frame,
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
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
