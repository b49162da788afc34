//! A socket round trip through the Rust client: one GenerateDataKey call (one in flight), and a
//! pipelined burst of 64 — against a daemon running in this process (bootstrapped, key
//! `alias/demo`), and, as the baseline in the same run, against
//! [`kmscks::daemon::echo::EchoServer`] answering every frame with a GenerateDataKey reply of the same size (the
//! client, the codec and the socket alone).

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use kmscks::api::kms::{GenerateDataKeyRequest, GenerateDataKeyResponse};
use kmscks::daemon::echo::EchoServer;
use kmscks::daemon::{Daemon, DaemonConfig, Shutdown};
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
    bench_server(c, "socket_roundtrip_echo", server.path());

    let dir = tempfile::tempdir().expect("temp dir");
    let config = DaemonConfig {
        data_dir: dir.path().join("data"),
        socket: dir.path().join("kmscks.sock"),
        bootstrap: true,
        ..DaemonConfig::default()
    };
    let daemon = Daemon::bind(config).expect("daemon binds");
    let socket = daemon.socket().to_path_buf();
    let shutdown = Shutdown::new();
    let serving = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || daemon.serve(shutdown))
    };
    support::wait_ready(&socket, support::READY_TIMEOUT);
    bench_server(c, "socket_roundtrip_daemon", &socket);
    shutdown.trigger();
    serving
        .join()
        .expect("daemon thread")
        .expect("daemon stops cleanly");
}

fn bench_server(c: &mut Criterion, group: &str, socket: &Path) {
    let client = Client::connect(socket).expect("connect");
    let mut g = c.benchmark_group(group);
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
