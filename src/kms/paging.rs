//! Limit/Marker paging shared by every list operation, in O(page): a list is a map ordered
//! by the key it lists in; a page seeks to its marker in that order and builds only the items
//! it returns. Markers are opaque to callers: the list's name and the key of the last item
//! returned, base64url-encoded; anything else is refused with InvalidMarkerException. A marker
//! names a position in the order, not an item, so it stays valid across writes: the next page
//! starts after that key whether or not its item still exists.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::err;
use crate::error::{KmsError, Result};
use crate::types::limits::MARKER_LEN;
use crate::types::{CustomKeyStoreId, KeyId};

/// A page of results and the marker of the next one.
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Set when more items follow.
    pub next_marker: Option<String>,
}

impl<T> Page<T> {
    /// Whether more items follow.
    pub fn truncated(&self) -> bool {
        self.next_marker.is_some()
    }
}

/// A key a list is ordered by, as a marker carries it.
pub trait MarkerKey: Ord + Sized {
    /// The key a marker's text names, if it is one (in the form [`MarkerKey::marker_text`]
    /// writes).
    fn from_marker(text: &str) -> Option<Self>;
    /// The text a marker carries for this key.
    fn marker_text(&self) -> Cow<'_, str>;
}

impl MarkerKey for String {
    fn from_marker(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
    fn marker_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl MarkerKey for KeyId {
    fn from_marker(text: &str) -> Option<KeyId> {
        // Only the canonical (lowercase) form: the one a marker is written with.
        KeyId::parse(text).filter(|id| id.to_string() == text)
    }
    fn marker_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl MarkerKey for CustomKeyStoreId {
    fn from_marker(text: &str) -> Option<CustomKeyStoreId> {
        CustomKeyStoreId::parse(text)
    }
    fn marker_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_str())
    }
}

/// Checks `limit` against `(min, max)` and applies `default`.
pub fn limit(limit: Option<u32>, (min, max): (u32, u32), default: u32) -> Result<usize> {
    match limit {
        None => Ok(default as usize),
        Some(n) => crate::error::check_value("limit", n, (min, max)).map(|n| n as usize),
    }
}

/// The key after which the page `marker` asks for starts, in the list named `list` (`None`:
/// from the start).
pub fn after<K: MarkerKey>(list: &str, marker: Option<&str>) -> Result<Option<K>> {
    let Some(marker) = marker else {
        return Ok(None);
    };
    let len = marker.chars().count();
    if len < MARKER_LEN.0
        || len > MARKER_LEN.1
        || !marker.chars().all(|c| ('\u{20}'..='\u{ff}').contains(&c))
    {
        return Err(KmsError::validation(
            marker,
            "marker",
            crate::error::Constraint::Pattern("[\\u0020-\\u00FF]*"),
        ));
    }
    let invalid = || {
        err!(
            InvalidMarkerException,
            "The marker {marker} is not valid for this request"
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(marker).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let (name, last) = text.split_once('\n').ok_or_else(invalid)?;
    if name != list {
        return Err(invalid());
    }
    K::from_marker(last).map(Some).ok_or_else(invalid)
}

fn encode_marker(list: &str, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}\n{last}"))
}

/// The first `limit` of `entries` (already in their key's order and past the marker), each
/// made into an item by `item`; the marker names the last one when more entries follow.
pub fn take<'a, K: MarkerKey + 'a, V, T>(
    list: &str,
    mut entries: impl Iterator<Item = (&'a K, V)>,
    limit: usize,
    mut item: impl FnMut(&'a K, V) -> T,
) -> Page<T> {
    let mut items = Vec::new();
    let mut last = None;
    for (k, v) in entries.by_ref().take(limit) {
        items.push(item(k, v));
        last = Some(k);
    }
    let next_marker = match last {
        Some(last) if entries.next().is_some() => Some(encode_marker(list, &last.marker_text())),
        _ => None,
    };
    Page { items, next_marker }
}

/// One page of `map` (the list named `list`), after `marker`, at most `limit` long: a seek in
/// the map and `limit` items made by `item`.
pub fn page<'a, K: MarkerKey, V, T>(
    list: &str,
    map: &'a BTreeMap<K, V>,
    limit: usize,
    marker: Option<&str>,
    item: impl FnMut(&'a K, &'a V) -> T,
) -> Result<Page<T>> {
    let entries = match after::<K>(list, marker)? {
        Some(a) => map.range((Excluded(a), Unbounded)),
        None => map.range::<K, _>(..),
    };
    Ok(take(list, entries, limit, item))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn items(n: usize) -> BTreeMap<String, usize> {
        (0..n).map(|i| (format!("k{i:03}"), i)).collect()
    }

    fn keys_page(
        map: &BTreeMap<String, usize>,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<Page<usize>> {
        page("keys", map, limit, marker, |_, v| *v)
    }

    #[test]
    fn pages_walk_every_item_once() {
        let all = items(25);
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let p = keys_page(&all, 10, marker.as_deref()).unwrap();
            seen.extend(p.items.iter().copied());
            match p.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        let exact = keys_page(&items(10), 10, None).unwrap();
        assert!(
            !exact.truncated(),
            "no marker when the page ends exactly at the last item"
        );
    }

    #[test]
    fn a_marker_resumes_after_its_key_whether_or_not_the_item_still_exists() {
        let mut all = items(6);
        let first = keys_page(&all, 3, None).unwrap();
        assert_eq!(first.items, [0, 1, 2]);
        all.remove("k002");
        all.insert("k0015".into(), 100);
        all.insert("k0025".into(), 200);
        let next = keys_page(&all, 3, first.next_marker.as_deref()).unwrap();
        assert_eq!(next.items, [200, 3, 4]);
    }

    #[test]
    fn only_the_page_s_items_are_built() {
        let all = items(1000);
        let mut built = 0;
        let p = page("keys", &all, 5, None, |_, v| {
            built += 1;
            *v
        })
        .unwrap();
        let marker = p.next_marker.unwrap();
        let p = page("keys", &all, 5, Some(&marker), |_, v| {
            built += 1;
            *v
        })
        .unwrap();
        assert_eq!(p.items, [5, 6, 7, 8, 9]);
        assert_eq!(built, 10);
    }

    #[test]
    fn foreign_or_garbage_markers_are_refused() {
        let all = items(5);
        let p = page("aliases", &all, 2, None, |_, v| *v).unwrap();
        let m = p.next_marker.unwrap();
        let e = keys_page(&all, 2, Some(&m)).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidMarkerException);
        assert_eq!(
            keys_page(&all, 2, Some("!!!")).err().unwrap().kind(),
            ErrorKind::InvalidMarkerException
        );
        assert_eq!(
            keys_page(&all, 2, Some("")).err().unwrap().kind(),
            ErrorKind::ValidationException
        );
        let not_a_key_id = encode_marker("keys", "k001");
        assert_eq!(
            after::<KeyId>("keys", Some(&not_a_key_id))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidMarkerException
        );
        let id =
            KeyId::parse("1234abcd-12ab-34cd-56ef-1234567890ab").expect("a well-formed key id");
        let upper = encode_marker("keys", &id.to_string().to_uppercase());
        assert_eq!(
            after::<KeyId>("keys", Some(&upper)).unwrap_err().kind(),
            ErrorKind::InvalidMarkerException
        );
        let own = encode_marker("keys", &id.to_string());
        assert_eq!(after::<KeyId>("keys", Some(&own)).unwrap(), Some(id));
        assert_eq!(
            limit(Some(0), (1, 1000), 100).unwrap_err().kind(),
            ErrorKind::ValidationException
        );
        assert_eq!(
            limit(Some(1001), (1, 1000), 100).unwrap_err().kind(),
            ErrorKind::ValidationException
        );
        assert_eq!(limit(None, (1, 1000), 100).unwrap(), 100);
    }
}
