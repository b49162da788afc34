//! Limit/Marker paging shared by every list operation. Markers are opaque to callers: the
//! list's name and the last key returned, base64url-encoded; anything else is refused with
//! InvalidMarkerException.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::err;
use crate::error::{KmsError, Result};
use crate::types::limits::MARKER_LEN;

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

/// Checks `limit` against `(min, max)` and applies `default`.
pub fn limit(limit: Option<u32>, (min, max): (u32, u32), default: u32) -> Result<usize> {
    match limit {
        None => Ok(default as usize),
        Some(n) if n < min => Err(KmsError::validation(
            n,
            "limit",
            crate::error::Constraint::MinValue(min.into()),
        )),
        Some(n) if n > max => Err(KmsError::validation(
            n,
            "limit",
            crate::error::Constraint::MaxValue(max.into()),
        )),
        Some(n) => Ok(n as usize),
    }
}

fn decode_marker(list: &str, marker: &str) -> Result<String> {
    let len = marker.chars().count();
    if len < MARKER_LEN.0
        || len > MARKER_LEN.1
        || !marker.chars().all(|c| ('\u{20}'..='\u{ff}').contains(&c))
    {
        return Err(KmsError::validation(
            marker,
            "marker",
            "Member must satisfy regular expression pattern: [\\u0020-\\u00FF]*",
        ));
    }
    let invalid = || {
        err!(
            InvalidMarkerException,
            "The marker {marker} is not valid for this request"
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(marker).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (name, last) = text.split_once('\n').ok_or_else(invalid)?;
    if name != list {
        return Err(invalid());
    }
    Ok(last.to_owned())
}

fn encode_marker(list: &str, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}\n{last}"))
}

/// One page of `items` (already sorted by their key), after `marker`, at most `limit` long.
pub fn page<T>(
    list: &str,
    items: impl IntoIterator<Item = (String, T)>,
    limit: usize,
    marker: Option<&str>,
) -> Result<Page<T>> {
    let after = marker.map(|m| decode_marker(list, m)).transpose()?;
    let mut iter = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .peekable();
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < limit {
        match iter.next() {
            Some((k, v)) => {
                last = Some(k);
                out.push(v);
            }
            None => break,
        }
    }
    let next_marker = match (iter.peek(), last) {
        (Some(_), Some(last)) => Some(encode_marker(list, &last)),
        _ => None,
    };
    Ok(Page {
        items: out,
        next_marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn items(n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("k{i:03}"), i)).collect()
    }

    #[test]
    fn pages_walk_every_item_once() {
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let p = page("keys", items(25), 10, marker.as_deref()).unwrap();
            seen.extend(p.items.iter().copied());
            match p.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        let exact = page("keys", items(10), 10, None).unwrap();
        assert!(
            !exact.truncated(),
            "no marker when the page ends exactly at the last item"
        );
    }

    #[test]
    fn foreign_or_garbage_markers_are_refused() {
        let p = page("aliases", items(5), 2, None).unwrap();
        let m = p.next_marker.unwrap();
        let e = page("keys", items(5), 2, Some(&m)).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidMarkerException);
        assert_eq!(
            page("keys", items(5), 2, Some("!!!")).err().unwrap().kind(),
            ErrorKind::InvalidMarkerException
        );
        assert_eq!(
            page("keys", items(5), 2, Some("")).err().unwrap().kind(),
            ErrorKind::ValidationException
        );
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
