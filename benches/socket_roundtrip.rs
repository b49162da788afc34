//! A socket round trip through the Rust client: one GenerateDataKey call (one in flight), and a
//! pipelined burst of 64. The server is the in-process echo server of `loadgen_socket`
//! (answering with a real GenerateDataKey reply frame), not the daemon: this measures the
//! client, the codec and the socket, i.e. the floor the daemon is compared against.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kmscks::kms::api::{GenerateDataKeyRequest, GenerateDataKeyResponse};
use kmscks::loadgen_socket::EchoServer;
use kmscks::ops::{Backend, Op, Request, Response};
use kmscks::protocol::encode_response;
use kmscks::secret::SecretBytes;
use kmscks::types::DataKeySpec;
use kmscks::Client;

fn request() -> Request {
    Request::GenerateDataKey(GenerateDataKeyRequest {
        key_id: "alias/demo".into(),
        key_spec: Some(DataKeySpec::Aes256),
        ..Default::default()
    })
}

fn roundtrip(c: &mut Criterion) {
    let mut reply = Vec::new();
    let resp = Ok(Response::GenerateDataKey(GenerateDataKeyResponse {
        ciphertext_blob: vec![7; 92],
        plaintext: Some(SecretBytes::zeroed(32)),
        key_id: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            .into(),
    }));
    encode_response(&mut reply, 0, Op::GenerateDataKey.code(), &resp);
    let server = EchoServer::start(reply).expect("echo server");
    let client = Client::connect(server.path()).expect("connect");

    let mut g = c.benchmark_group("socket_roundtrip_echo");
    g.bench_function("call/GenerateDataKey", |b| {
        b.iter(|| black_box(client.call(&request()).unwrap()))
    });
    let mut p = client.pipeline(64).expect("pipeline");
    g.bench_function("pipeline64/GenerateDataKey x64", |b| {
        b.iter(|| {
            for _ in 0..64 {
                p.submit(&request()).unwrap();
            }
            for _ in 0..64 {
                black_box(p.recv().unwrap().1.unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
