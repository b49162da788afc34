//! The C API of libkmscks: what `include/kmscks.h` declares (`build.rs` generates the header
//! from this module with cbindgen; `tests/capi_header.rs` holds the committed copy to it).
//!
//! C and C++ programs link `libkmscks.so` or `libkmscks.a` and get the same operations as the
//! Rust [`crate::Kms`] and [`crate::Client`], through one opaque handle, `kmscks_client`, in
//! either mode: `kmscks_open` runs the service inside the process, `kmscks_connect` talks to
//! `kmscksd`. Every function is written once, against [`crate::ops::Backend`], so the two modes
//! cannot drift apart.
//!
//! # Conventions (rustls-ffi's)
//! - Names are `kmscks_<verb>_<noun>`; handle types are opaque; enum constants are
//!   `KMSCKS_<TYPE>_<NAME>`.
//! - Every fallible function returns a `kmscks_result` (`KMSCKS_OK` is 0). On failure,
//!   `kmscks_last_error_message()` gives the detail until the thread's next `kmscks_*` call.
//! - Outputs go through out-pointers and are written only on success. Strings come back as
//!   `char *` (free with `kmscks_string_free`), bytes as `kmscks_buffer` (free with
//!   `kmscks_buffer_free`, which zeroizes first).
//! - Every pointer is checked: NULL where none is allowed, a string that is not UTF-8, a NULL
//!   array with a non-zero count, a size that does not fit the operation, or an unknown enum
//!   value is `KMSCKS_INVALID_ARGUMENT` naming the argument, before anything is done.
//! - A panic never crosses into C: each entry point catches it and answers `KMSCKS_INTERNAL`.
//! - A `kmscks_client` may be used from many threads at once (it is `Send + Sync` in Rust
//!   terms: calls take a shared reference); `kmscks_close` must not race with other calls on
//!   the same handle.
//!
//! # Why `unsafe` is allowed here
//! The crate denies `unsafe_code`; this module is the one place that takes pointers from C.
//! Every `unsafe` block reads or writes a pointer the caller gave, after checking it is not
//! NULL, under the contract each function's `# Safety` section states (the pointer is valid
//! for the access and, for strings, NUL-terminated); `boundary.rs` holds those reads, so that
//! the operation files only call them.
#![allow(unsafe_code, non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

// In the header's order (cbindgen follows the declarations).
mod result;
// Buffers, strings, context entries.
mod memory;
// Handles.
mod handle;
// Operations.
mod cluster;
// Custom key stores.
mod stores;
// Keys.
mod keys;
// Grants.
mod grants;
// Importing key material.
mod import;
// Cryptographic operations.
mod crypto;
// HMAC and signing keys.
mod asym;
// Data key pairs.
mod key_pair;
// RSA encryption and key agreement.
mod asym_crypto;
// JSON answers.
mod json;
// Enums.
mod enums;
// Argument checks (no C items).
mod boundary;

#[cfg(test)]
mod tests;
