//! Key policy texts shared from the moment they are decoded.
//!
//! Most keys carry their account's default policy, so the state holds each distinct text once
//! (`KmsState` interns on every change and after a decode). Decoding 100,000 keys would still
//! allocate 100,000 copies of the same half-kilobyte text only to free them again — most of an
//! open's allocations, and a high-water mark the allocator keeps. While [`sharing`] runs (the
//! service wraps snapshot decoding and journal replay in it), a decoded policy text that equals
//! one already seen is handed out as that one's allocation instead; the last text seen is
//! compared first, so the common run of identical texts costs a comparison, not a hash.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};

/// The texts decoded so far in this thread's [`sharing`] scope.
#[derive(Default)]
struct Table {
    texts: HashSet<Arc<str>>,
    last: Option<Arc<str>>,
}

thread_local! {
    static TABLE: RefCell<Option<Table>> = const { RefCell::new(None) };
}

/// Runs `f` with decoded policy texts shared (see the module doc); nested calls share one table.
pub fn sharing<R>(f: impl FnOnce() -> R) -> R {
    let outer = TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let outer = t.is_some();
        if !outer {
            *t = Some(Table::default());
        }
        outer
    });
    let out = f();
    if !outer {
        TABLE.with(|t| t.borrow_mut().take());
    }
    out
}

/// The shared allocation of `text` within a [`sharing`] scope; a new one outside it.
fn share(text: &str) -> Arc<str> {
    TABLE.with(|t| match t.borrow_mut().as_mut() {
        None => text.into(),
        Some(table) => {
            if let Some(last) = table.last.as_ref().filter(|l| ***l == *text) {
                return last.clone();
            }
            let shared = match table.texts.get(text) {
                Some(s) => s.clone(),
                None => {
                    let s: Arc<str> = text.into();
                    table.texts.insert(s.clone());
                    s
                }
            };
            table.last = Some(shared.clone());
            shared
        }
    })
}

/// `deserialize_with` for `Key::policy`: a string, shared as [`sharing`] says.
pub(crate) fn shared_policy<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
    struct Text;
    impl Visitor<'_> for Text {
        type Value = Arc<str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a key policy document (a string)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Arc<str>, E> {
            Ok(share(v))
        }
    }
    d.deserialize_str(Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_decoded_in_a_scope_share_one_allocation_and_outside_do_not() {
        let decode = |s: &str| -> Arc<str> {
            shared_policy(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
                .unwrap()
        };
        let (a, b, c, d) = sharing(|| (decode("P"), decode("Q"), decode("P"), decode("Q")));
        assert!(Arc::ptr_eq(&a, &c) && Arc::ptr_eq(&b, &d));
        assert!(!Arc::ptr_eq(&a, &b));
        let (x, y) = (decode("P"), decode("P"));
        assert!(!Arc::ptr_eq(&x, &y), "outside a scope every text is its own");
        assert!(TABLE.with(|t| t.borrow().is_none()), "the scope's table is gone");
    }
}
