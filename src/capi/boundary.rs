//! The boundary with C: the panic guard every entry point runs in, and the checked reads of
//! the pointers C passes (handles, strings, byte arrays, encryption contexts, out-pointers).
//!
//! Every `unsafe` of the C API that reads a caller's pointer is here, behind a function whose
//! `# Safety` states what the caller promised; the operation files call these and never touch
//! a raw pointer themselves (beyond handing one on). A NULL where none is allowed, a string that
//! is not UTF-8 or a NULL array with a non-zero count is an [`Failure::invalid`] naming the
//! argument.

use std::ffi::{c_char, CStr};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::handle::kmscks_client;
use super::memory::kmscks_context_entry;
use super::result::{clear_last_error, kmscks_result, set_last_error, Failure};
use crate::types::EncryptionContext;

/// What an entry point's body returns.
pub(super) type CResult<T = ()> = std::result::Result<T, Failure>;

/// Runs the body of an entry point: clears the thread's last error, catches any panic, and
/// turns the outcome into a code (recording the message of a failure).
#[inline]
pub(super) fn guard(body: impl FnOnce() -> CResult) -> kmscks_result {
    clear_last_error();
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return kmscks_result::KMSCKS_OK,
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Failure::internal(format!("caught at the C boundary: {what}"))
        }
    };
    set_last_error(&failure.message);
    failure.code
}

/// The handle behind `c`.
///
/// # Safety
/// `c` is NULL or a handle from `kmscks_open`/`kmscks_connect` not yet closed.
#[inline]
pub(super) unsafe fn client<'a>(c: *const kmscks_client) -> CResult<&'a kmscks_client> {
    // SAFETY: non-NULL, and by the caller's contract a live handle.
    unsafe { c.as_ref() }.ok_or_else(|| Failure::invalid("c", "is NULL"))
}

/// A required string argument.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string readable for the duration of the call.
#[inline]
pub(super) unsafe fn text<'a>(ptr: *const c_char, name: &str) -> CResult<&'a str> {
    // SAFETY: forwarded contract.
    match unsafe { read_text(ptr) } {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Failure::invalid(name, "is NULL")),
        Err(what) => Err(Failure::invalid(name, what)),
    }
}

/// Parses AWS's spelling of an enum value given as the argument `name`
/// (`KMSCKS_INVALID_ARGUMENT` naming it when `parse` does not know the value).
pub(super) fn spelling<T>(value: &str, name: &str, parse: fn(&str) -> Option<T>) -> CResult<T> {
    parse(value).ok_or_else(|| Failure::invalid(name, format!("{value:?} is not a valid value")))
}

/// A required enum argument in AWS's spelling (`"ECDSA_SHA_256"`, `"RSA_2048"`).
///
/// # Safety
/// As [`text`].
#[inline]
pub(super) unsafe fn spelled<T>(
    ptr: *const c_char,
    name: &str,
    parse: fn(&str) -> Option<T>,
) -> CResult<T> {
    // SAFETY: forwarded contract.
    spelling(unsafe { text(ptr, name) }?, name, parse)
}

/// An optional string argument (NULL: absent).
///
/// # Safety
/// As [`text`].
pub(super) unsafe fn optional_text<'a>(ptr: *const c_char, name: &str) -> CResult<Option<&'a str>> {
    // SAFETY: forwarded contract.
    unsafe { read_text(ptr) }.map_err(|what| Failure::invalid(name, what))
}

/// The string at `ptr` (None for NULL), or what is wrong with it. The argument's name is
/// formatted by the caller only on failure.
///
/// # Safety
/// As [`text`].
#[inline]
unsafe fn read_text<'a>(ptr: *const c_char) -> Result<Option<&'a str>, String> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map(Some)
        .map_err(|e| format!("is not UTF-8 (invalid byte at offset {})", e.valid_up_to()))
}

/// A byte-array argument of `len` bytes (NULL allowed only when `len` is 0).
///
/// # Safety
/// `ptr` is NULL or readable for `len` bytes for the duration of the call.
#[inline]
pub(super) unsafe fn bytes<'a>(ptr: *const u8, len: usize, name: &str) -> CResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(name, format!("is NULL with length {len}")));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(
            name,
            format!("length {len} is not a size"),
        ));
    }
    // SAFETY: non-NULL, readable for `len` bytes by the caller's contract, `len` ≤ isize::MAX.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An array argument of `len` items (NULL allowed only when `len` is 0).
///
/// # Safety
/// `ptr` is NULL or points to `len` initialized items readable for the duration of the call.
#[inline]
pub(super) unsafe fn array<'a, T>(ptr: *const T, len: usize, name: &str) -> CResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(name, format!("is NULL with count {len}")));
    }
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(Failure::invalid(name, format!("count {len} is too large")));
    }
    // SAFETY: non-NULL, `len` items by the caller's contract, total size ≤ isize::MAX.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An encryption context: `len` entries at `ptr`, each key and value a UTF-8 string; a key
/// given twice is refused (a context is a map).
///
/// # Safety
/// As [`array`], and every entry's `key` and `value` as [`text`].
#[inline]
pub(super) unsafe fn context(
    ptr: *const kmscks_context_entry,
    len: usize,
    name: &str,
) -> CResult<EncryptionContext> {
    // SAFETY: forwarded contract.
    let entries = unsafe { array(ptr, len, name) }?;
    let mut ctx = EncryptionContext::new();
    for (i, entry) in entries.iter().enumerate() {
        let member =
            |part: &str, what: String| Failure::invalid(&format!("{name}[{i}].{part}"), what);
        // SAFETY: forwarded contract (each entry's strings).
        let key = unsafe { read_text(entry.key) }
            .and_then(|k| k.ok_or_else(|| "is NULL".to_owned()))
            .map_err(|what| member("key", what))?;
        // SAFETY: as above.
        let value = unsafe { read_text(entry.value) }
            .and_then(|v| v.ok_or_else(|| "is NULL".to_owned()))
            .map_err(|what| member("value", what))?;
        if ctx.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(member(
                "key",
                format!("'{key}' appears twice in the encryption context"),
            ));
        }
    }
    Ok(ctx)
}

/// An encryption context the hot calls lend their borrowed requests: the pairs C passed, or
/// the empty context when it passed none (the common case, which then costs nothing to make
/// or drop — dropping even an empty `BTreeMap` costs ~100 instructions, callgrind on
/// `ffi/bench/bench.c`).
pub(super) struct Context(Option<EncryptionContext>);

/// The context of a call that passed no pairs.
static NO_CONTEXT: EncryptionContext = EncryptionContext::new();

impl std::ops::Deref for Context {
    type Target = EncryptionContext;

    #[inline]
    fn deref(&self) -> &EncryptionContext {
        self.0.as_ref().unwrap_or(&NO_CONTEXT)
    }
}

/// [`context`], as a hot call lends it.
///
/// # Safety
/// As [`context`].
#[inline]
pub(super) unsafe fn lent_context(
    ptr: *const kmscks_context_entry,
    len: usize,
    name: &str,
) -> CResult<Context> {
    if len == 0 {
        return Ok(Context(None));
    }
    // SAFETY: forwarded contract.
    unsafe { context(ptr, len, name) }.map(|ctx| Context(Some(ctx)))
}

/// A required out-pointer, checked before the operation runs (so that a NULL one leaves
/// nothing done); written with [`put`] only on success.
#[inline]
pub(super) fn out<T>(ptr: *mut T, name: &str) -> CResult<Out<T>> {
    if ptr.is_null() {
        return Err(Failure::invalid(name, "is NULL (an output is required)"));
    }
    Ok(Out(ptr))
}

/// An optional out-pointer (NULL: the caller does not want that output).
#[inline]
pub(super) fn optional_out<T>(ptr: *mut T) -> Option<Out<T>> {
    (!ptr.is_null()).then_some(Out(ptr))
}

/// A checked, non-NULL out-pointer.
pub(super) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// The addresses this output is written to, and its argument's name: what [`distinct`]
    /// compares.
    pub(super) fn named<'n>(&self, name: &'n str) -> (Range<usize>, &'n str) {
        let at = self.0 as usize;
        (at..at.saturating_add(size_of::<T>()), name)
    }
}

/// Refuses outputs that share memory (the same `kmscks_buffer` given for a plaintext and its
/// ciphertext): the one written last would replace the one written first, which would then
/// be neither freed nor — a data key, a private key — wiped. [`Failure::invalid`] naming the
/// second of the two, checked before the operation runs.
pub(super) fn distinct(outputs: &[(Range<usize>, &str)]) -> CResult {
    for (i, (first, first_name)) in outputs.iter().enumerate() {
        for (second, second_name) in &outputs[i + 1..] {
            if first.start < second.end && second.start < first.end {
                return Err(Failure::invalid(
                    second_name,
                    format!("shares its memory with {first_name} (each output needs its own)"),
                ));
            }
        }
    }
    Ok(())
}

/// Writes `value` through an out-pointer.
///
/// # Safety
/// The pointer given to [`out`]/[`optional_out`] is valid for a write of `T` (it need not be
/// initialized: nothing is read or dropped there).
#[inline]
pub(super) unsafe fn put<T>(out: Out<T>, value: T) {
    // SAFETY: non-NULL (checked when `out` was made), writable by the caller's contract.
    unsafe { out.0.write(value) }
}
