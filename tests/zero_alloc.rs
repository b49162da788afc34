//! The daemon's hot path allocates nothing: once warm, pipelined Encrypt, Decrypt and
//! GenerateDataKey requests over the Unix socket are decoded in place, answered by the engine
//! into reused buffers and encoded straight into the connection's write buffer (issue 14,
//! item 3). A counting global allocator (this test binary's own, so it affects nothing else)
//! counts every allocation made while the measured requests are served, on every thread of
//! the process but the client's, which allocates freely and opts out.
//!
//! The daemon runs in process on the real code path (`Daemon::bind` / `serve`, its event loop,
//! engine shards, control thread and background worker), with two shards and two event loops,
//! the default shape on two cores. (With loops covering the shards the daemon does not split a
//! batch onto another shard's worker, whose hand-off takes owned copies and allocates; that
//! decision is `DaemonConfig::engine`'s, tested there — this test passes with splitting allowed
//! too, the bootstrapped key's batches not being split here.) Background threads could
//! in principle allocate for their own reasons during a round (a timer due), so each op is
//! measured in a few rounds and the quietest must be zero: an allocation per request shows in
//! every round.

mod daemon_support;
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use daemon_support::{Raw, TestDaemon};
use kmscks::api::kms::{DecryptRequest, EncryptRequest, GenerateDataKeyRequest};
use kmscks::ops::{Request, Response};
use kmscks::protocol;
use kmscks::secret::SecretBytes;
use kmscks::types::DataKeySpec;

/// Counts allocations while [`COUNTING`] is on, on threads that did not opt out.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the client's thread: its allocations are not the daemon's.
    static OPTED_OUT: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.load(Ordering::Relaxed) && !OPTED_OUT.try_with(Cell::get).unwrap_or(true) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// Delegates to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `GlobalAlloc::alloc`, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Requests per pipelined round (one write; the daemon reads them in one or a few reads).
const PIPELINE: usize = 64;
/// Rounds before measuring: every buffer reaches its size.
const WARM_ROUNDS: usize = 20;
/// Measured rounds per op; the quietest counts.
const MEASURED_ROUNDS: usize = 3;

/// Sends `PIPELINE` copies of `req` in one write and reads every reply, checking each.
fn round(client: &mut Raw, req: &Request) -> Vec<Response> {
    let mut frames = Vec::new();
    for i in 0..PIPELINE {
        protocol::encode_request(&mut frames, 1_000_000 + i as u64, req);
    }
    client.stream.write_all(&frames).unwrap();
    (0..PIPELINE)
        .map(|_| {
            let reply = client.recv().expect("the daemon answers every request");
            reply
                .result
                .unwrap_or_else(|e| panic!("{}: {e}", req.op().name()))
        })
        .collect()
}

/// Allocations by the daemon's threads per request of `req`, in the quietest of the measured
/// rounds; all rounds' counts for the message.
fn allocations_per_request(client: &mut Raw, req: &Request) -> (u64, Vec<u64>) {
    for _ in 0..WARM_ROUNDS {
        round(client, req);
    }
    let counts: Vec<u64> = (0..MEASURED_ROUNDS)
        .map(|_| {
            ALLOCATIONS.store(0, Ordering::SeqCst);
            COUNTING.store(true, Ordering::SeqCst);
            // The last reply is read only once the daemon wrote it: the count is complete.
            let replies = round(client, req);
            COUNTING.store(false, Ordering::SeqCst);
            let n = ALLOCATIONS.load(Ordering::SeqCst);
            drop(replies);
            n
        })
        .collect();
    let quietest = counts.iter().copied().min().unwrap_or(u64::MAX);
    (quietest / PIPELINE as u64, counts)
}

#[test]
fn warm_pipelined_encrypt_decrypt_and_generate_data_key_allocate_nothing_in_the_daemon() {
    OPTED_OUT.with(|o| o.set(true));
    let daemon = TestDaemon::start(|c| {
        c.bootstrap = true;
        c.engine_shards = 2;
        c.event_loops = 2;
    });
    let mut client = daemon.connect();
    let encrypt = Request::Encrypt(EncryptRequest {
        key_id: "alias/demo".into(),
        plaintext: SecretBytes::from_slice(&[7u8; 32]),
        ..Default::default()
    });
    let blob = match &round(&mut client, &encrypt)[0] {
        Response::Encrypt(r) => r.ciphertext_blob.clone(),
        other => panic!("not an Encrypt answer: {other:?}"),
    };
    let decrypt = Request::Decrypt(DecryptRequest {
        ciphertext_blob: blob,
        ..Default::default()
    });
    let data_key = Request::GenerateDataKey(GenerateDataKeyRequest {
        key_id: "alias/demo".into(),
        key_spec: Some(DataKeySpec::Aes256),
        ..Default::default()
    });
    let mut found = Vec::new();
    for req in [&encrypt, &decrypt, &data_key] {
        let (per_request, counts) = allocations_per_request(&mut client, req);
        eprintln!(
            "{}: allocations in rounds of {PIPELINE} requests: {counts:?}",
            req.op().name()
        );
        if counts.iter().all(|&n| n > 0) {
            found.push(format!(
                "{}: {per_request} per request (rounds of {PIPELINE}: {counts:?} allocations)",
                req.op().name()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "the daemon allocated while serving warm pipelined requests: {}",
        found.join("; ")
    );
}
