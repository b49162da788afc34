//! A plaintext sent through the daemon leaves no copy in freed memory: not in the client's
//! request and reply buffers, not in the daemon's. The threat model says plaintexts are
//! zeroized when dropped; a buffer freed without a wipe leaves its bytes in the heap for the
//! next allocation (or a core dump) to show.
//!
//! Why a test binary of its own: only a global allocator sees every block freed. This one
//! scans each block, as it is freed, for a marker the test encrypts and decrypts, and counts
//! the blocks that still hold it. The daemon runs on a thread of this process, so its frees
//! are scanned too.

mod daemon_support;
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use daemon_support::TestDaemon;
use kmscks::api::kms::{CreateKeyRequest, DecryptRequest, EncryptRequest, GenerateRandomRequest};
use kmscks::ops::{Backend, Request, Response};
use kmscks::secret::SecretBytes;
use kmscks::types::{EncryptionAlgorithm, KeySpec, KeyUsage};
use kmscks::Client;

/// The marker: 48 bytes no allocation holds by chance.
const MARKER: [u8; 48] = {
    let mut m = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        m[i] = (i as u8).wrapping_mul(37).wrapping_add(0xA5) ^ 0x3C;
        i += 1;
    }
    m
};

/// Frees of a block that still held the marker, while [`SCANNING`].
static LEAKED: AtomicUsize = AtomicUsize::new(0);
static SCANNING: AtomicBool = AtomicBool::new(false);

/// The system allocator, scanning each block it frees for [`MARKER`].
struct Scanning;

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `GlobalAlloc::alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if SCANNING.load(Ordering::Relaxed) && layout.size() >= MARKER.len() {
            // SAFETY: `block` is a live allocation of `layout.size()` bytes until the
            // `System.dealloc` below (the caller's contract for `dealloc`); it is only read.
            let bytes = unsafe { std::slice::from_raw_parts(block, layout.size()) };
            if bytes.windows(MARKER.len()).any(|w| w == MARKER) {
                LEAKED.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: as above, passed on.
        unsafe { System.dealloc(block, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

/// Scanning is process-wide: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_plaintext_sent_through_the_daemon_is_wiped_from_every_buffer_freed() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let d = TestDaemon::start(|c| c.bootstrap = true);
    let client = Client::connect(&d.socket).expect("the test daemon runs as this uid");
    // A plaintext of several markers, so that every copy of it, whole or cut into frames,
    // holds at least one.
    let plaintext = || SecretBytes::new(MARKER.repeat(40));
    SCANNING.store(true, Ordering::Relaxed);
    for _ in 0..3 {
        let encrypt = Request::Encrypt(EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: plaintext(),
            ..Default::default()
        });
        let Ok(Response::Encrypt(sealed)) = client.call(&encrypt) else {
            panic!("Encrypt through the daemon failed");
        };
        let decrypt = Request::Decrypt(DecryptRequest {
            ciphertext_blob: sealed.ciphertext_blob,
            ..Default::default()
        });
        let Ok(Response::Decrypt(opened)) = client.call(&decrypt) else {
            panic!("Decrypt through the daemon failed");
        };
        assert_eq!(opened.plaintext.expose(), plaintext().expose());
    }
    // The connections' buffers too: the client's pool and the daemon's connections close.
    drop(client);
    drop(d);
    SCANNING.store(false, Ordering::Relaxed);
    assert_eq!(
        LEAKED.swap(0, Ordering::Relaxed),
        0,
        "blocks freed still holding the plaintext"
    );
}

#[test]
fn a_reply_made_off_the_event_loop_for_a_connection_gone_is_wiped() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // One loop, so that the control thread's answers reach it in the order they were made.
    let d = TestDaemon::start(|c| c.event_loops = 1);
    let client = Client::connect(&d.socket).expect("the test daemon runs as this uid");
    let Ok(Response::CreateKey(key)) = client.call(&Request::CreateKey(CreateKeyRequest {
        key_spec: Some(KeySpec::Rsa2048),
        key_usage: Some(KeyUsage::EncryptDecrypt),
        ..Default::default()
    })) else {
        panic!("CreateKey RSA_2048 failed");
    };
    let key_id = key.key_metadata.key_id;
    let algorithm = Some(EncryptionAlgorithm::RsaesOaepSha256);
    let encrypt = Request::Encrypt(EncryptRequest {
        key_id: key_id.clone(),
        plaintext: SecretBytes::new(MARKER.repeat(3)),
        encryption_algorithm: algorithm,
        ..Default::default()
    });
    let Ok(Response::Encrypt(sealed)) = client.call(&encrypt) else {
        panic!("Encrypt with RSA_2048 failed");
    };
    let decrypt = Request::Decrypt(DecryptRequest {
        ciphertext_blob: sealed.ciphertext_blob,
        key_id: Some(key_id),
        encryption_algorithm: algorithm,
        ..Default::default()
    });
    SCANNING.store(true, Ordering::Relaxed);
    // An RSA Decrypt runs on a control thread. Its connection is closed before the answer is
    // back: it sends a GenerateRandom first, answered on the loop, and closes without reading;
    // writing that answer fails, and the loop closes the connection. The Decrypt's answer
    // then has nowhere to go.
    let mut gone = d.connect();
    gone.send(&Request::GenerateRandom(GenerateRandomRequest {
        number_of_bytes: Some(16),
        custom_key_store_id: None,
    }));
    gone.send(&decrypt);
    drop(gone);
    // The same uid's next RSA Decrypt runs after it on that thread, and its answer reaches
    // the loop after the first: once it is here, the first was dropped.
    let Ok(Response::Decrypt(opened)) = client.call(&decrypt) else {
        panic!("Decrypt with RSA_2048 failed");
    };
    // Compared in place: a copy made here would be a block freed unwiped.
    let back = opened.plaintext.expose();
    assert!(back.len() == 3 * MARKER.len() && back.chunks(MARKER.len()).all(|c| c == MARKER));
    drop(opened);
    SCANNING.store(false, Ordering::Relaxed);
    assert_eq!(
        LEAKED.swap(0, Ordering::Relaxed),
        0,
        "blocks freed still holding the plaintext"
    );
}
