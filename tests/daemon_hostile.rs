//! Hostile byte streams at a live daemon while a well-behaved client does real work: the bad
//! connections get an error reply where one is possible and are closed; the good client sees
//! every call answered correctly; the daemon keeps serving after each.

mod daemon_support;
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daemon_support::{Raw, TestDaemon};
use kmscks::api::kms::*;
use kmscks::ops::{Request, Response};
use kmscks::protocol::{self, HEADER_LEN, MAGIC, MAX_BODY, VERSION};
use kmscks::secret::SecretBytes;
use kmscks::ErrorKind;

/// A 24-byte header, written by hand from the documented layout.
fn header(version: u8, op: u16, id: u64, body_len: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&MAGIC);
    h.push(version);
    h.push(0);
    h.extend_from_slice(&op.to_le_bytes());
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&body_len.to_le_bytes());
    h
}

fn encrypt(text: &[u8]) -> Request {
    Request::Encrypt(EncryptRequest {
        key_id: "alias/demo".into(),
        plaintext: SecretBytes::new(text.to_vec()),
        ..Default::default()
    })
}

/// Sends `bytes`, then expects an error reply of `kind` for request `id`, then the close.
fn expect_error_then_close(d: &TestDaemon, bytes: &[u8], id: u64, kind: ErrorKind) {
    let mut c = d.connect();
    c.stream.write_all(bytes).unwrap();
    let reply = c.recv().expect("an error reply before the close");
    assert_eq!(reply.header.request_id, id);
    assert_eq!(reply.result.unwrap_err().kind(), kind);
    assert!(c.closed());
}

/// A simple deterministic generator (no dependency, reproducible streams).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hostile_streams_do_not_disturb_a_good_client() {
    let d = TestDaemon::start(|c| {
        c.bootstrap = true;
        c.idle_timeout_secs = 1;
    });
    // The well-behaved client: encrypts and decrypts, checking every answer, until told to
    // stop; then reports how many round trips it did.
    let stop = Arc::new(AtomicBool::new(false));
    let good = {
        let stop = stop.clone();
        let socket = d.socket.clone();
        std::thread::spawn(move || {
            let mut c = Raw::connect(&socket);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) || n < 20 {
                let text = format!("good {n}").into_bytes();
                let ct = expect!(c.call(&encrypt(&text)), Response::Encrypt);
                let pt = expect!(
                    c.call(&Request::Decrypt(DecryptRequest {
                        ciphertext_blob: ct.ciphertext_blob,
                        ..Default::default()
                    })),
                    Response::Decrypt
                );
                assert_eq!(pt.plaintext.expose(), &text[..]);
                n += 1;
            }
            n
        })
    };

    // Wrong version: the header's request id is echoed.
    expect_error_then_close(
        &d,
        &header(VERSION + 1, 60, 77, 0),
        77,
        ErrorKind::SerializationException,
    );
    // A body length over the maximum: refused from the header alone, nothing allocated.
    expect_error_then_close(
        &d,
        &header(VERSION, 60, 78, MAX_BODY + 1),
        78,
        ErrorKind::SerializationException,
    );
    expect_error_then_close(
        &d,
        &header(VERSION, 60, 79, u32::MAX),
        79,
        ErrorKind::SerializationException,
    );
    // Unknown op.
    expect_error_then_close(
        &d,
        &header(VERSION, 9999, 80, 0),
        80,
        ErrorKind::UnknownOperationException,
    );
    // A known op whose body is garbage.
    let mut garbage = header(VERSION, 60, 81, 8);
    garbage.extend_from_slice(&[0xff; 8]);
    expect_error_then_close(&d, &garbage, 81, ErrorKind::SerializationException);
    // Bad magic: no request id can be trusted, the reply says 0.
    let mut bad_magic = header(VERSION, 60, 82, 0);
    bad_magic[0] = b'X';
    expect_error_then_close(&d, &bad_magic, 0, ErrorKind::SerializationException);
    // A good frame, then garbage: the good one is answered, then the error, then the close.
    {
        let mut c = d.connect();
        let mut bytes = Vec::new();
        protocol::encode_request(&mut bytes, 5, &encrypt(b"fine"));
        bytes.extend_from_slice(&header(VERSION, 9999, 6, 0));
        c.stream.write_all(&bytes).unwrap();
        let first = c.recv().unwrap();
        assert_eq!(first.header.request_id, 5);
        assert!(first.result.is_ok());
        let second = c.recv().unwrap();
        assert_eq!(second.header.request_id, 6);
        assert_eq!(
            second.result.unwrap_err().kind(),
            ErrorKind::UnknownOperationException
        );
        assert!(c.closed());
    }
    // A whole frame then at once the end of stream (one read sees both): answered, then closed.
    {
        let mut c = d.connect();
        let mut bytes = Vec::new();
        protocol::encode_request(&mut bytes, 7, &encrypt(b"last words"));
        c.stream.write_all(&bytes).unwrap();
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let reply = c.recv().unwrap();
        assert_eq!(reply.header.request_id, 7);
        assert!(reply.result.is_ok());
        assert!(c.closed());
    }
    // A truncated frame then end of stream: closed, nothing answered.
    {
        let mut c = d.connect();
        let mut bytes = Vec::new();
        protocol::encode_request(&mut bytes, 9, &encrypt(b"cut short"));
        c.stream.write_all(&bytes[..bytes.len() - 3]).unwrap();
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(c.read_frame().is_none());
    }
    // Random byte streams.
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    for round in 0..30 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let len = (rng.next() % 5000) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 3 == 0 {
            // Valid magic and version, random rest: reaches the later checks.
            bytes[..5].copy_from_slice(&header(VERSION, 0, 0, 0)[..5]);
        }
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        // The daemon answers with at most error frames and closes: reading ends.
        let mut sink = Vec::new();
        match s.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "round {round}: {e}"
            ),
        }
    }
    // Slowloris: one byte at a time, slower than the idle timeout lets a frame take. The
    // daemon closes the connection; writing then fails or reading ends.
    {
        let mut s = Raw::connect(&d.socket).stream;
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut bytes = Vec::new();
        protocol::encode_request(&mut bytes, 1, &encrypt(b"slow"));
        let mut closed = false;
        for b in &bytes {
            if s.write_all(std::slice::from_ref(b)).is_err() {
                closed = true;
                break;
            }
            // Not synchronisation: this pause is the slow client under test (one byte per
            // 400 ms, so no frame completes within the 1 s idle timeout).
            std::thread::sleep(Duration::from_millis(400));
            // Peek without blocking for the close.
            s.set_nonblocking(true).unwrap();
            let mut one = [0u8; 1];
            let r = s.read(&mut one);
            s.set_nonblocking(false).unwrap();
            match r {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => panic!("the slow client got a reply"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        assert!(
            closed,
            "a client trickling one byte at a time was never closed"
        );
    }

    stop.store(true, Ordering::SeqCst);
    let rounds = good
        .join()
        .expect("the good client saw every call answered correctly");
    assert!(rounds >= 20);
    // Still serving.
    let mut c = d.connect();
    expect!(c.call(&encrypt(b"after")), Response::Encrypt);
}

#[test]
fn a_client_that_never_reads_is_back_pressured_not_disconnected() {
    let d = TestDaemon::start(|c| {
        c.bootstrap = true;
        c.max_pending_reply_bytes = (MAX_BODY as usize) + HEADER_LEN;
    });
    let mut flood = daemon_support::Flood::start(&d.socket, 1);
    // The daemon stopped reading it (its writes block), and serves others meanwhile.
    let mut c = d.connect();
    expect!(c.call(&encrypt(b"others still served")), Response::Encrypt);
    // Once it reads, every request it sent is answered on the same connection.
    let answered = flood.drain();
    assert_eq!(answered, flood.sent());
    expect!(
        flood.raw(0).call(&encrypt(b"still open")),
        Response::Encrypt
    );
}

#[test]
fn connections_beyond_the_limit_are_refused_cleanly() {
    let d = TestDaemon::start(|c| {
        c.bootstrap = true;
        c.max_connections = 3;
    });
    let mut held: Vec<Raw> = (0..3).map(|_| d.connect()).collect();
    for c in &mut held {
        expect!(c.call(&encrypt(b"in")), Response::Encrypt);
    }
    let mut extra = Raw::connect_without_hello(&d.socket);
    let reply = extra.recv().expect("a refusal frame");
    assert_eq!(reply.header.request_id, 0);
    assert_eq!(
        reply.result.unwrap_err().kind(),
        ErrorKind::LimitExceededException
    );
    assert!(extra.closed());
    // Closing one makes room. Half-close it and read to the daemon's close: the daemon frees
    // the slot before it drops its end, so once we see the end the slot is free.
    let mut gone = held.pop().expect("three connections held");
    gone.stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close a held connection");
    assert!(gone.closed());
    let mut again = d.connect();
    expect!(again.call(&encrypt(b"room")), Response::Encrypt);
    for c in &mut held {
        expect!(c.call(&encrypt(b"still in")), Response::Encrypt);
    }
}
