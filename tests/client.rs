//! The Rust client against a small in-test server that speaks the protocol and dispatches to an
//! in-memory Kms (the real daemon lives in `src/daemon/`). The server answers each batch of
//! pipelined requests in reverse order, so out-of-order matching is exercised.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use kmscks::api::kms::{
    CreateKeyRequest, DecryptRequest, EncryptRequest, GenerateDataKeyRequest, KeyIdRequest,
};
use kmscks::ops::{Backend, Request, Response};
use kmscks::protocol::*;
use kmscks::secret::SecretBytes;
use kmscks::{Client, ErrorKind, Kms};

/// Serves one connection; each request's id is also sent to `seen` as it is decoded, so a
/// test can tell what has reached the server without waiting for a reply. DescribeKey of
/// `die` closes the connection; of `hang`, the connection stays open and nothing more is
/// answered (what comes is read and dropped); of `stall`, nothing more is even read. A
/// WaitForConnection is answered after the wait it asks for, as the daemon holds one.
fn serve_conn(kms: Arc<Kms>, mut s: UnixStream, seen: mpsc::Sender<u64>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        let mut replies: Vec<Vec<u8>> = Vec::new();
        loop {
            match split_frame(&buf[at..]) {
                Ok(Some((h, body, used))) => {
                    at += used;
                    let mut out = Vec::new();
                    if h.op == OP_HELLO {
                        decode_hello(&h, body).unwrap();
                        let reply = HelloReply {
                            version: VERSION,
                            server: "test-server".into(),
                            max_body: MAX_BODY,
                            max_in_flight: 1024,
                            principal: "arn:aws:iam::111122223333:root".into(),
                        };
                        encode_hello_reply(&mut out, h.request_id, &reply);
                    } else {
                        match decode_request(&h, body) {
                            Ok(Request::DescribeKey(r)) if r.key_id == "die" => return,
                            Ok(Request::DescribeKey(r)) if r.key_id == "hang" => {
                                while matches!(s.read(&mut chunk), Ok(n) if n > 0) {}
                                return;
                            }
                            Ok(Request::DescribeKey(r)) if r.key_id == "stall" => {
                                // Holds the connection, unread, until the test process ends.
                                loop {
                                    thread::park();
                                }
                            }
                            Ok(req) => {
                                if let Request::WaitForConnection(w) = &req {
                                    thread::sleep(Duration::from_millis(w.timeout_millis));
                                }
                                // Gone once a test stops watching: nothing to tell then.
                                let _ = seen.send(h.request_id);
                                let res = kms.dispatch(&req);
                                encode_response(&mut out, h.request_id, h.op, &res);
                            }
                            Err(e) => {
                                encode_protocol_error(&mut out, h.request_id, h.op, &e);
                                let _ = s.write_all(&out);
                                return;
                            }
                        }
                    }
                    replies.push(out);
                }
                Ok(None) => break,
                Err(e) => {
                    let mut out = Vec::new();
                    encode_protocol_error(&mut out, 0, 0, &e);
                    let _ = s.write_all(&out);
                    return;
                }
            }
        }
        buf.drain(..at);
        let all: Vec<u8> = replies.into_iter().rev().flatten().collect();
        if s.write_all(&all).is_err() {
            return;
        }
    }
}

fn server() -> (tempfile::TempDir, PathBuf, Arc<Kms>) {
    let (dir, path, kms, _) = watched_server();
    (dir, path, kms)
}

/// A server that also reports the id of every request it decodes.
fn watched_server() -> (tempfile::TempDir, PathBuf, Arc<Kms>, mpsc::Receiver<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmscks.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let kms = Arc::new(Kms::in_memory());
    let k = kms.clone();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let (k, tx) = (k.clone(), tx.clone());
            thread::spawn(move || serve_conn(k, s, tx));
        }
    });
    (dir, path, kms, rx)
}

fn create_key(c: &Client) -> String {
    match c
        .call(&Request::CreateKey(CreateKeyRequest::default()))
        .unwrap()
    {
        Response::CreateKey(r) => r.key_metadata.key_id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn blocking_calls_round_trip_and_errors_keep_their_aws_name() {
    let (_d, path, _kms) = server();
    let c = Client::connect(&path).unwrap();
    assert_eq!(c.server().server, "test-server");
    let key = create_key(&c);
    let enc = c
        .call(&Request::Encrypt(EncryptRequest {
            key_id: key.clone(),
            plaintext: SecretBytes::from_slice(b"hello"),
            ..Default::default()
        }))
        .unwrap();
    let Response::Encrypt(enc) = enc else {
        panic!()
    };
    let dec = c
        .call(&Request::Decrypt(DecryptRequest {
            ciphertext_blob: enc.ciphertext_blob,
            ..Default::default()
        }))
        .unwrap();
    let Response::Decrypt(dec) = dec else {
        panic!()
    };
    assert_eq!(dec.plaintext.expose(), b"hello");

    let e = c
        .call(&Request::DescribeKey(KeyIdRequest {
            key_id: "alias/none".into(),
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFoundException);
    assert!(e.message().contains("alias/none"), "{e}");
}

#[test]
fn shared_between_threads() {
    let (_d, path, _kms) = server();
    let c = Arc::new(Client::connect(&path).unwrap());
    let key = create_key(&c);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let c = c.clone();
            let key = key.clone();
            thread::spawn(move || {
                for i in 0..50 {
                    let text = format!("t{t}-{i}");
                    let Response::Encrypt(e) = c
                        .call(&Request::Encrypt(EncryptRequest {
                            key_id: key.clone(),
                            plaintext: SecretBytes::from_slice(text.as_bytes()),
                            ..Default::default()
                        }))
                        .unwrap()
                    else {
                        panic!()
                    };
                    let Response::Decrypt(d) = c
                        .call(&Request::Decrypt(DecryptRequest {
                            ciphertext_blob: e.ciphertext_blob,
                            ..Default::default()
                        }))
                        .unwrap()
                    else {
                        panic!()
                    };
                    assert_eq!(d.plaintext.expose(), text.as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn pipeline_matches_out_of_order_replies_by_id() {
    let (_d, path, _kms) = server();
    let c = Client::connect(&path).unwrap();
    let key = create_key(&c);
    let mut p = c.pipeline(16).unwrap();
    let mut sent = std::collections::HashMap::new();
    let mut got = 0;
    let mut out_of_order = false;
    let mut last = 0;
    for i in 0..300u32 {
        let n = 1 + i % 64;
        let id = p
            .submit(&Request::GenerateDataKey(GenerateDataKeyRequest {
                key_id: key.clone(),
                number_of_bytes: Some(n),
                ..Default::default()
            }))
            .unwrap();
        sent.insert(id, n);
        assert!(p.in_flight() <= 16);
        for (id, r) in p.drain_ready().collect::<Vec<_>>() {
            let Response::GenerateDataKey(r) = r.unwrap() else {
                panic!()
            };
            assert_eq!(r.plaintext.unwrap().len() as u32, sent.remove(&id).unwrap());
            out_of_order |= id < last;
            last = id;
            got += 1;
        }
    }
    while p.in_flight() > 0 || p.ready() > 0 {
        let (id, r) = p.recv().unwrap();
        let Response::GenerateDataKey(r) = r.unwrap() else {
            panic!()
        };
        assert_eq!(r.plaintext.unwrap().len() as u32, sent.remove(&id).unwrap());
        out_of_order |= id < last;
        last = id;
        got += 1;
    }
    assert_eq!(got, 300);
    assert!(sent.is_empty());
    assert!(
        out_of_order,
        "the server reverses batches; some reply must come early"
    );
    // An error reply inside a pipeline is that request's result, not the pipeline's.
    p.submit(&Request::DescribeKey(KeyIdRequest {
        key_id: "alias/x".into(),
        ..Default::default()
    }))
    .unwrap();
    let (_, r) = p.recv().unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFoundException);
    assert_eq!(p.recv().unwrap_err().kind(), ErrorKind::ValidationException);
}

#[test]
fn a_pipeline_sends_its_requests_once_a_quarter_of_its_depth_is_queued() {
    let (_d, path, _kms, seen) = watched_server();
    let c = Client::connect(&path).unwrap();
    let key = create_key(&c);
    let mut p = c.pipeline(16).unwrap();
    let gdk = Request::GenerateDataKey(GenerateDataKeyRequest {
        key_id: key,
        number_of_bytes: Some(32),
        ..Default::default()
    });
    while seen.try_recv().is_ok() {}
    // No flush and no recv: the server gets work while the caller still has replies to digest.
    let ids: Vec<u64> = (0..4).map(|_| p.submit(&gdk).unwrap()).collect();
    let wait = std::time::Duration::from_secs(30);
    for id in &ids {
        assert_eq!(
            seen.recv_timeout(wait),
            Ok(*id),
            "request {id} never reached the server"
        );
    }
    for _ in &ids {
        let (id, r) = p.recv().unwrap();
        assert!(ids.contains(&id));
        r.unwrap();
    }
}

#[test]
fn broken_connection_fails_the_call_in_flight_then_reconnects() {
    let (_d, path, _kms) = server();
    let c = Client::connect(&path).unwrap();
    let e = c
        .call(&Request::DescribeKey(KeyIdRequest {
            key_id: "die".into(),
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KMSInternalException);
    assert!(e.message().contains(path.to_str().unwrap()), "{e}");
    assert!(e.message().contains("DescribeKey"), "{e}");
    // The next call works on a fresh connection.
    create_key(&c);

    let mut p = c.pipeline(4).unwrap();
    p.submit(&Request::DescribeKey(KeyIdRequest {
        key_id: "die".into(),
        ..Default::default()
    }))
    .unwrap();
    let e = p.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KMSInternalException);
    assert!(e.message().contains("1 requests"), "{e}");
    // The pipeline reconnects on the next submit.
    p.submit(&Request::ListKeys(Default::default())).unwrap();
    assert!(p.recv().unwrap().1.is_ok());
}

fn describe(key_id: &str) -> Request {
    Request::DescribeKey(KeyIdRequest {
        key_id: key_id.into(),
        ..Default::default()
    })
}

/// Asserts that `e` is the error of a wait for the daemon that ran out after `limit`, naming
/// what was in flight (`what`).
fn assert_timed_out(e: &kmscks::KmsError, limit: Duration, what: &str) {
    assert_eq!(e.kind(), ErrorKind::DependencyTimeoutException, "{e}");
    assert!(e.is_transport(), "{e}");
    let m = e.message();
    for part in [
        "did not answer in time",
        &format!("{} ms", limit.as_millis()),
        what,
        "outcome is unknown",
    ] {
        assert!(m.contains(part), "missing {part:?} in {m}");
    }
}

/// The reply timeout of the tests of a daemon that stops answering: long enough that a loaded
/// machine answers within it the calls that must succeed.
const LIMIT: Duration = Duration::from_millis(500);

/// A client of the in-test server at `path`, waiting at most [`LIMIT`] for it.
fn bounded(path: &std::path::Path) -> Client {
    Client::builder(path)
        .reply_timeout(LIMIT)
        .connect()
        .unwrap()
}

#[test]
fn a_call_the_daemon_never_answers_fails_after_the_reply_timeout_and_the_next_call_reconnects() {
    let (_d, path, _kms) = server();
    let (c, limit) = (bounded(&path), LIMIT);
    let began = Instant::now();
    let e = c.call(&describe("hang")).unwrap_err();
    assert!(
        began.elapsed() >= limit,
        "gave up after {:?}",
        began.elapsed()
    );
    assert_timed_out(&e, limit, "DescribeKey");
    // The silent connection was dropped, not pooled: its late reply cannot answer this call.
    create_key(&c);
}

#[test]
fn a_wait_for_connection_call_waits_its_own_timeout_beyond_the_reply_timeout() {
    let (_d, path, _kms) = server();
    let (c, limit) = (bounded(&path), LIMIT);
    let wait = Request::WaitForConnection(kmscks::api::kms::WaitForConnectionRequest {
        custom_key_store_id: "cks-1234567890abcdef0".into(),
        timeout_millis: 700,
    });
    let began = Instant::now();
    // Answered (the store does not exist), after the wait: not a timeout.
    let e = c.call(&wait).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CustomKeyStoreNotFoundException, "{e}");
    assert!(began.elapsed() >= Duration::from_millis(700));
    // The next call on the same connection has the client's own limit again.
    assert_timed_out(
        &c.call(&describe("hang")).unwrap_err(),
        limit,
        "DescribeKey",
    );
}

#[test]
fn a_pipeline_waits_a_wait_for_connection_in_flight_beyond_the_reply_timeout_and_then_no_longer() {
    let (_d, path, _kms) = server();
    let (c, limit) = (bounded(&path), LIMIT);
    let wait = Request::WaitForConnection(kmscks::api::kms::WaitForConnectionRequest {
        custom_key_store_id: "cks-1234567890abcdef0".into(),
        timeout_millis: 700,
    });
    let mut p = c.pipeline(8).unwrap();
    let began = Instant::now();
    let waited = p.submit(&wait).unwrap();
    let listed = p.submit(&Request::ListKeys(Default::default())).unwrap();
    // Both answered, after the wait (longer than the limit): neither read timed out.
    let mut answers = std::collections::HashMap::new();
    for _ in 0..2 {
        let (id, r) = p.recv().unwrap();
        answers.insert(id, r);
    }
    assert!(began.elapsed() >= Duration::from_millis(700));
    let e = answers.remove(&waited).unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CustomKeyStoreNotFoundException, "{e}");
    assert!(answers.remove(&listed).unwrap().is_ok());
    // Answered, the wait no longer counts: a silent reply ends after the client's own limit
    // (the error names the limit the read had).
    p.submit(&describe("hang")).unwrap();
    assert_timed_out(&p.recv().unwrap_err(), limit, "a pipeline with 1 requests");
}

#[test]
fn a_pipeline_waiting_on_a_silent_daemon_fails_after_the_reply_timeout_losing_what_was_in_flight() {
    let (_d, path, _kms) = server();
    let (c, limit) = (bounded(&path), LIMIT);
    let mut p = c.pipeline(8).unwrap();
    p.submit(&describe("hang")).unwrap();
    for _ in 0..3 {
        p.submit(&Request::ListKeys(Default::default())).unwrap();
    }
    let e = p.recv().unwrap_err();
    assert_timed_out(&e, limit, "a pipeline with 4 requests");
    assert_eq!(p.in_flight(), 0);
    // The pipeline reconnects on its next submit.
    p.submit(&Request::ListKeys(Default::default())).unwrap();
    assert!(p.recv().unwrap().1.is_ok());
}

#[test]
fn a_pipeline_whose_daemon_stops_reading_fails_after_the_reply_timeout_instead_of_blocking() {
    let (_d, path, _kms) = server();
    let (c, limit) = (bounded(&path), LIMIT);
    let mut p = c.pipeline(100_000).unwrap();
    p.submit(&describe("stall")).unwrap();
    p.flush().unwrap();
    // 4 KiB plaintexts until the socket's buffers are full and the daemon takes no more: the
    // pipeline's write waits, or it turns to reading replies that never come; either way the
    // wait ends after the limit.
    let encrypt = Request::Encrypt(EncryptRequest {
        key_id: "alias/any".into(),
        plaintext: SecretBytes::new(vec![7u8; 4096]),
        ..Default::default()
    });
    let e = (0..100_000)
        .find_map(|_| p.submit(&encrypt).and_then(|_| p.flush()).err())
        .expect("a daemon that reads nothing took 400 MB");
    assert_timed_out(&e, limit, "a pipeline with");
}

#[test]
fn a_daemon_silent_in_the_hello_exchange_fails_connect_after_the_reply_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmscks.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accepts (the kernel does, into the backlog) and never answers.
    let limit = Duration::from_millis(100);
    let e = Client::builder(&path)
        .reply_timeout(limit)
        .connect()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DependencyTimeoutException, "{e}");
    assert!(e.is_transport(), "{e}");
    let m = e.message();
    for part in [
        "did not answer the Hello exchange in time",
        "100 ms",
        "no request was sent",
        path.to_str().unwrap(),
    ] {
        assert!(m.contains(part), "missing {part:?} in {m}");
    }
    drop(listener);
}

#[test]
fn connect_errors_name_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let e = Client::connect(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DependencyTimeoutException);
    assert!(e.message().contains("absent.sock"), "{e}");
}

#[test]
fn version_mismatch_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let newer = kmscks::protocol::VERSION + 1;
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut b = [0u8; 64];
        let _ = s.read(&mut b);
        let mut h = Header::new(OP_HELLO, 0, 0, 0).to_bytes();
        h[4] = newer;
        let _ = s.write_all(&h);
    });
    let e = Client::connect(&path).unwrap_err();
    assert!(
        e.message().contains(&format!("version {newer}"))
            && e.message()
                .contains(&format!("version {}", kmscks::protocol::VERSION)),
        "{e}"
    );
}

#[test]
fn oversized_request_is_refused_locally() {
    let (_d, path, _kms) = server();
    let c = Client::connect(&path).unwrap();
    let e = c
        .call(&Request::Decrypt(DecryptRequest {
            ciphertext_blob: vec![0; MAX_BODY as usize],
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ValidationException);
    // The connection is still fine.
    create_key(&c);
}

#[test]
#[allow(unsafe_code)]
fn a_daemon_whose_listen_queue_stays_full_fails_connect_after_the_reply_timeout_sending_nothing() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmscks.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // SAFETY: listen(2) on a descriptor borrowed from the open listener, no pointers; called
    // again it sets the queue's length, and Linux queues one connection past it.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    // A daemon that accepts nothing (stopped, wedged): one connection fills its queue.
    let _queued = UnixStream::connect(&path).unwrap();
    let limit = Duration::from_millis(100);
    let began = Instant::now();
    let e = Client::builder(&path)
        .reply_timeout(limit)
        .connect()
        .unwrap_err();
    assert!(
        began.elapsed() >= limit,
        "gave up after {:?}",
        began.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::DependencyTimeoutException, "{e}");
    assert!(e.is_transport(), "{e}");
    let m = e.message();
    for part in [
        "took no new connection for 100 ms",
        "nothing was sent",
        path.to_str().unwrap(),
    ] {
        assert!(m.contains(part), "missing {part:?} in {m}");
    }
    // The queued connection is the only one the listener ever got: the client's gave up.
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_ok());
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}
