//! Allocations the hot calls reuse: the key-id strings their requests own.
//!
//! A request owns its key id (`String`), so a C call that names a key would allocate and free a
//! string each time, while a Rust caller builds its request once and reuses it. Each thread
//! keeps the strings of its finished requests and the next call refills one in place. Key ids
//! are not secrets; nothing here needs wiping.

use std::cell::RefCell;

use crate::api::kms::{BatchRequest, EncryptRequest, GenerateDataKeyRequest};

/// Spare strings kept per thread (enough for a large batch), and the largest one kept.
const KEEP: usize = 4096;
const KEEP_CAPACITY: usize = 512;

thread_local! {
    static STRINGS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// An owned copy of `text`, in a spare string when the thread has one.
#[inline]
pub(super) fn string(text: &str) -> String {
    match STRINGS.with_borrow_mut(Vec::pop) {
        Some(mut s) => {
            s.clear();
            s.push_str(text);
            s
        }
        None => text.to_owned(),
    }
}

/// Keeps `s` for a later [`string`].
#[inline]
pub(super) fn recycle(s: String) {
    if s.capacity() <= KEEP_CAPACITY {
        STRINGS.with_borrow_mut(|spare| {
            if spare.len() < KEEP {
                spare.push(s);
            }
        });
    }
}

/// A request whose key-id strings go back to the spares once it has been answered.
pub(super) trait Recycle {
    /// Keeps the request's key-id strings for later [`string`]s.
    fn recycle(self);
}

impl Recycle for EncryptRequest {
    #[inline]
    fn recycle(self) {
        recycle(self.key_id);
    }
}

impl Recycle for GenerateDataKeyRequest {
    #[inline]
    fn recycle(self) {
        recycle(self.key_id);
    }
}

impl<T: Recycle> Recycle for BatchRequest<T> {
    #[inline]
    fn recycle(self) {
        self.items.into_iter().for_each(Recycle::recycle);
    }
}
