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
use kmscks::api::kms::{DecryptRequest, EncryptRequest};
use kmscks::ops::{Backend, Request, Response};
use kmscks::secret::SecretBytes;
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

#[test]
fn a_plaintext_sent_through_the_daemon_is_wiped_from_every_buffer_freed() {
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
        LEAKED.load(Ordering::Relaxed),
        0,
        "blocks freed still holding the plaintext"
    );
}
