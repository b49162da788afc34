//! What crosses the boundary by value: the byte buffers and strings kmscks hands to C (and
//! their free functions), and the encryption-context entries C hands to kmscks.
//!
//! A buffer's bytes are one Rust allocation of exactly `len` bytes, so that
//! `kmscks_buffer_free` can give it back knowing only the pointer and the length; a buffer
//! that held a plaintext or data key is wiped before that. Secrets never take a detour through
//! an allocation that is freed unwiped: a plaintext whose vector is larger than its bytes is
//! copied into an exact allocation and the vector wiped, never reallocated.
//!
//! A string is one `malloc` of its bytes and the NUL, freed by `kmscks_string_free` with
//! `free`, which needs no length: a caller may write into the string it got (cut it short,
//! split it with `strtok`) and still free it. A Rust `CString` would not allow that: it frees
//! with the length `strlen` finds, and a wrong length is undefined behaviour for Rust's
//! allocator.

use std::ffi::c_char;

use super::boundary::CResult;
use super::result::Failure;
use crate::secret::SecretBytes;

/// Bytes owned by kmscks and lent to the caller: `len` bytes at `data` (`data` is NULL when
/// `len` is 0). Free with `kmscks_buffer_free()`, which zeroizes the bytes first and resets
/// the struct to `{NULL, 0}`, so that freeing a freed struct, or a zeroed one, does nothing;
/// freeing two copies of one buffer is undefined behaviour.
#[repr(C)]
#[derive(Debug)]
pub struct kmscks_buffer {
    /// The bytes (NULL when `len` is 0).
    pub data: *mut u8,
    /// How many bytes.
    pub len: usize,
}

impl kmscks_buffer {
    /// An empty buffer.
    pub(super) const EMPTY: kmscks_buffer = kmscks_buffer {
        data: std::ptr::null_mut(),
        len: 0,
    };

    /// Lends `bytes` (public bytes: ciphertexts) to C.
    #[inline]
    pub(super) fn from_vec(bytes: Vec<u8>) -> kmscks_buffer {
        if bytes.is_empty() {
            return kmscks_buffer::EMPTY;
        }
        // A vector with spare capacity is shrunk (a reallocation): fine for public bytes.
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        kmscks_buffer {
            data: Box::into_raw(boxed).cast::<u8>(),
            len,
        }
    }

    /// Lends a copy of `bytes` to C: one allocation of exactly their length, which is the
    /// buffer itself. Fit for secrets too (a data key a batch lends): the only copy made is
    /// the one `kmscks_buffer_free` wipes; the bytes copied are their owner's to wipe.
    #[inline]
    pub(super) fn copy_of(bytes: &[u8]) -> kmscks_buffer {
        if bytes.is_empty() {
            return kmscks_buffer::EMPTY;
        }
        let boxed: Box<[u8]> = bytes.into();
        let len = boxed.len();
        kmscks_buffer {
            data: Box::into_raw(boxed).cast::<u8>(),
            len,
        }
    }

    /// Lends secret bytes (a plaintext, a data key) to C without leaving an unwiped copy.
    #[inline]
    pub(super) fn from_secret(mut secret: SecretBytes) -> kmscks_buffer {
        let v = secret.expose_mut();
        if v.len() == v.capacity() {
            // Exactly sized: the allocation itself changes hands, nothing is copied.
            return kmscks_buffer::from_vec(std::mem::take(v));
        }
        // `secret` wipes its own allocation when it drops.
        kmscks_buffer::from_vec(v.as_slice().to_vec())
    }
}

/// One encryption-context pair: both strings UTF-8, NUL-terminated, neither NULL.
#[repr(C)]
#[derive(Debug)]
pub struct kmscks_context_entry {
    /// The context key.
    pub key: *const c_char,
    /// Its value.
    pub value: *const c_char,
}

/// Lends `text` to C as a `char *` (one `malloc`) to free with `kmscks_string_free`.
pub(super) fn c_string(text: &str) -> CResult<*mut c_char> {
    let bytes = text.as_bytes();
    if bytes.contains(&0) {
        return Err(Failure::internal(format!(
            "a string to return holds a NUL: {text:?}"
        )));
    }
    // SAFETY: `malloc` of a non-zero size; the result is checked for NULL before use.
    let p = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
    if p.is_null() {
        return Err(Failure::internal(format!(
            "out of memory for a string of {} bytes",
            bytes.len()
        )));
    }
    // SAFETY: `p` holds `len + 1` writable bytes, and `bytes` is another allocation.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        p.add(bytes.len()).write(0);
    }
    Ok(p.cast())
}

/// Frees a string kmscks returned. NULL does nothing. The string may have been written to
/// (cut short, split with `strtok`): it is freed whole all the same. Freeing a string twice,
/// or one kmscks did not allocate, is undefined behaviour.
///
/// # Safety
/// `s` is NULL or a string returned by a `kmscks_*` function and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn kmscks_string_free(s: *mut c_char) {
    // SAFETY: NULL, or the `malloc` of `c_string`, not yet freed (caller's contract); `free`
    // needs nothing but the pointer.
    unsafe { libc::free(s.cast()) }
}

/// Zeroizes and frees a buffer kmscks filled, then resets it to `{NULL, 0}`. NULL, and a
/// buffer whose `data` is NULL, do nothing.
///
/// # Safety
/// `buffer` is NULL or points to a `kmscks_buffer` that is zeroed or was filled by a
/// `kmscks_*` function and not changed since.
#[no_mangle]
pub unsafe extern "C" fn kmscks_buffer_free(buffer: *mut kmscks_buffer) {
    // SAFETY: NULL or a valid buffer struct (caller's contract).
    let Some(buffer) = (unsafe { buffer.as_mut() }) else {
        return;
    };
    if !buffer.data.is_null() {
        let slice = std::ptr::slice_from_raw_parts_mut(buffer.data, buffer.len);
        // SAFETY: `data`/`len` are the Box<[u8]> made in `from_vec`, untouched since (caller's
        // contract), so rebuilding and dropping the box frees exactly that allocation.
        let mut boxed = unsafe { Box::from_raw(slice) };
        crate::secret::wipe(&mut boxed);
    }
    *buffer = kmscks_buffer::EMPTY;
}
