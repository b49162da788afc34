//! A socket round trip through the Rust client: one GenerateDataKey call (one in flight), and a
//! pipelined burst of 64 — against a daemon running in this process (bootstrapped, key
//! `alias/demo`), and, as the baseline in the same run, against
//! [`kmscks::daemon::echo::EchoServer`] answering every frame with a GenerateDataKey reply of the same size (the
//! client, the codec and the socket alone). The call is measured twice: with the client's
//! default wait (checking for the reply for up to `client::DEFAULT_REPLY_SPIN` before it
//! sleeps) and sleeping at once (`reply_spin(Duration::ZERO)`), which pays a wake-up per reply.

mod socket;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use kmscks::daemon::echo::EchoServer;
use kmscks::ops::Backend;
use kmscks::Client;
use socket::{echo_reply, request, ServedDaemon};

fn roundtrip(c: &mut Criterion) {
    let server = EchoServer::start(echo_reply()).expect("echo server");
    bench_server(c, "socket_roundtrip_echo", server.path());

    let daemon = ServedDaemon::start(0);
    bench_server(c, "socket_roundtrip_daemon", daemon.socket());
}

fn bench_server(c: &mut Criterion, group: &str, socket: &Path) {
    let client = Client::connect(socket).expect("connect");
    let mut g = c.benchmark_group(group);
    g.bench_function("call/GenerateDataKey", |b| {
        b.iter(|| black_box(client.call(&request()).unwrap()))
    });
    let sleeper = Client::builder(socket)
        .reply_spin(Duration::ZERO)
        .connect()
        .expect("connect");
    g.bench_function("call/GenerateDataKey, sleeping at once", |b| {
        b.iter(|| black_box(sleeper.call(&request()).unwrap()))
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
