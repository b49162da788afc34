//! A string the C API returns may be written to by its caller and still be freed: C programs
//! cut strings short and split them with `strtok`, which writes NULs into them, and then free
//! them with `kmscks_string_free`.
//!
//! Why a test binary of its own: what such a free got wrong cannot be seen from C. A string
//! freed as a Rust `CString` is given back with the length `strlen` finds, and a wrong length
//! is undefined behaviour for Rust's allocator, though glibc's `free` under the system
//! allocator ignores it. So this binary's global allocator keeps each block's size in front
//! of it and counts every free whose size differs from the block's. The C calls are made
//! through their `extern "C"` symbols, as a C program makes them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Delegates to the system allocator with a header in front of each block holding its size,
/// and counts the frees that name another size.
struct SizeChecking;

/// Frees whose layout named a size other than the block's.
static WRONG_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The header: at least a `usize` and at least the alignment asked for, so that the block
/// after it keeps that alignment.
fn header(layout: Layout) -> usize {
    layout.align().max(size_of::<usize>())
}

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for SizeChecking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let head = header(layout);
        let Ok(outer) = Layout::from_size_align(layout.size() + head, head) else {
            return null_mut();
        };
        // SAFETY: `outer` has a non-zero size (the header).
        let base = unsafe { System.alloc(outer) };
        if base.is_null() {
            return base;
        }
        // SAFETY: `base` holds `head + size` bytes, `head` a multiple of the alignment and at
        // least a `usize`, so the size is written in bounds and aligned for a `usize`.
        unsafe {
            let block = base.add(head);
            block.cast::<usize>().sub(1).write(layout.size());
            block
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let head = header(layout);
        // SAFETY: `block` came from `alloc` above with this alignment (the caller's contract
        // for `GlobalAlloc::dealloc`), so its size sits just in front of it.
        let size = unsafe { block.cast::<usize>().sub(1).read() };
        if size != layout.size() {
            WRONG_SIZE.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the block's own size and alignment, as `alloc` made it.
        unsafe {
            System.dealloc(
                block.sub(head),
                Layout::from_size_align_unchecked(size + head, head),
            )
        }
    }
}

#[global_allocator]
static ALLOCATOR: SizeChecking = SizeChecking;

#[allow(non_camel_case_types)]
type kmscks_client = c_void;

#[allow(unsafe_code)]
extern "C" {
    fn kmscks_open(data_dir: *const c_char, out: *mut *mut kmscks_client) -> i32;
    fn kmscks_close(c: *mut kmscks_client);
    fn kmscks_create_key(
        c: *const kmscks_client,
        custom_key_store_id_or_null: *const c_char,
        description_or_null: *const c_char,
        key_id: *mut *mut c_char,
    ) -> i32;
    fn kmscks_string_free(s: *mut c_char);
}

/// `KMSCKS_OK`.
const OK: i32 = 0;

#[test]
#[allow(unsafe_code)]
fn a_returned_string_cut_short_by_its_caller_is_freed_whole() {
    // Linked for its C symbols.
    use kmscks as _;
    let mut c = null_mut();
    // SAFETY: NULL data directory (in memory); `c` is writable.
    assert_eq!(unsafe { kmscks_open(null(), &mut c) }, OK);
    let before = WRONG_SIZE.load(Ordering::Relaxed);
    for cut in [0, 8, 35] {
        let mut key = null_mut();
        // SAFETY: an open handle; NULL store and description; `key` is writable.
        assert_eq!(
            unsafe { kmscks_create_key(c, null(), null(), &mut key) },
            OK
        );
        // SAFETY: a string kmscks returned, NUL-terminated.
        let id = unsafe { CStr::from_ptr(key) }.to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "a key id: {id}");
        // What `strtok` does to a string it splits: a NUL where the delimiter was.
        // SAFETY: `cut` is within the 36 bytes of the string.
        unsafe { key.add(cut).write(0) };
        // SAFETY: returned by kmscks and not yet freed; only its bytes were changed.
        unsafe { kmscks_string_free(key) };
    }
    // SAFETY: NULL does nothing.
    unsafe { kmscks_string_free(null_mut()) };
    // SAFETY: opened above, closed once.
    unsafe { kmscks_close(c) };
    assert_eq!(
        WRONG_SIZE.load(Ordering::Relaxed) - before,
        0,
        "frees that gave the allocator another size than the string's"
    );
}
