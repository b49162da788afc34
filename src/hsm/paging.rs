//! MaxResults/NextToken paging of DescribeClusters, DescribeBackups and ListTags, in O(page)
//! seeks: clusters and tags are maps ordered by id, backups an index ordered newest first (by
//! when each was taken, then by id), as AWS lists them; a page starts right after the position
//! its token names and stops one match past its end. Tokens are opaque to callers (the list's
//! name and the last position returned, base64url-encoded) and name a position, not an item,
//! so a token stays valid when that item goes away. Without MaxResults a list is one page, as
//! kmscks always answered.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{self, Excluded, Unbounded};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::err;
use crate::error::Result;

/// The longest NextToken AWS accepts.
const TOKEN_LEN: usize = 256;

/// How a token writes and reads the key of a list's map: the key's text, and the key a text
/// names.
pub(super) type TokenKey<K> = (fn(&K) -> &str, fn(&str) -> Option<K>);

/// How a token writes a key as text of its own, and reads it back (a key that is no text).
pub(super) type TokenText<K> = (fn(&K) -> String, fn(&str) -> Option<K>);

/// One page: the items and the token of the next page, if more follow.
pub(super) type Page<T> = (Vec<T>, Option<String>);

/// The page of `map`'s entries that `keep` turns into items, after `token`, at most
/// `max_results` long (checked against `range`, AWS's bounds for the list). `id` and
/// `parse` write and read the key a token names.
pub(super) fn page<'a, K: Ord, V, T>(
    list: &str,
    map: &'a BTreeMap<K, V>,
    max_results: Option<u32>,
    range: (u32, u32),
    token: Option<&str>,
    (id, parse): TokenKey<K>,
    mut keep: impl FnMut(&'a K, &'a V) -> Option<T>,
) -> Result<Page<T>> {
    let limit = limit(max_results, range)?;
    let entries = map.range(after(list, token, parse)?);
    let kept = entries.filter_map(|(k, v)| keep(k, v).map(|item| (k, item)));
    Ok(collect(list, limit, |k| id(k).to_owned(), kept))
}

/// [`page`] over an ordered set of keys (an index, whose keys name the items `keep` finds),
/// with a key a token writes as text of its own (`write`; `parse` reads it back).
pub(super) fn page_set<'a, K: Ord, T>(
    list: &str,
    set: &'a BTreeSet<K>,
    max_results: Option<u32>,
    range: (u32, u32),
    token: Option<&str>,
    (write, parse): TokenText<K>,
    mut keep: impl FnMut(&'a K) -> Option<T>,
) -> Result<Page<T>> {
    let limit = limit(max_results, range)?;
    let keys = set.range(after(list, token, parse)?);
    let kept = keys.filter_map(|k| keep(k).map(|item| (k, item)));
    Ok(collect(list, limit, write, kept))
}

/// The page length `max_results` asks for, checked against `range` (unbounded without one).
fn limit(max_results: Option<u32>, range: (u32, u32)) -> Result<usize> {
    match max_results {
        None => Ok(usize::MAX),
        Some(n) if n < range.0 || n > range.1 => Err(err!(
            CloudHsmInvalidRequestException,
            "MaxResults {n} is not between {} and {}",
            range.0,
            range.1
        )),
        Some(n) => Ok(n as usize),
    }
}

/// The keys after the one `token` names (all of them without one), as a range of the list's
/// map or set, or the refusal of a token not of `list`.
fn after<K>(
    list: &str,
    token: Option<&str>,
    parse: fn(&str) -> Option<K>,
) -> Result<(Bound<K>, Bound<K>)> {
    let Some(t) = token else {
        return Ok((Unbounded, Unbounded));
    };
    let key = decode(list, t, parse).ok_or_else(|| {
        err!(
            CloudHsmInvalidRequestException,
            "The NextToken {t} is not valid for this request"
        )
    })?;
    Ok((Excluded(key), Unbounded))
}

/// The first `limit` of `kept` (each item with its key), and the token after the last of
/// them if another follows: it stops one match past the page.
fn collect<'a, K: 'a, T>(
    list: &str,
    limit: usize,
    write: impl Fn(&K) -> String,
    mut kept: impl Iterator<Item = (&'a K, T)>,
) -> Page<T> {
    let mut items = Vec::new();
    let mut last: Option<&K> = None;
    for (k, item) in kept.by_ref().take(limit) {
        items.push(item);
        last = Some(k);
    }
    let next = match last {
        Some(k) if kept.next().is_some() => Some(encode(list, &write(k))),
        _ => None,
    };
    (items, next)
}

fn encode(list: &str, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}\n{last}"))
}

fn decode<K>(list: &str, token: &str, parse: fn(&str) -> Option<K>) -> Option<K> {
    if token.len() > TOKEN_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (name, last) = text.split_once('\n')?;
    (name == list).then_some(())?;
    parse(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: TokenKey<String> =
        (|k| k.as_str(), |t| Some(t.to_owned()));

    fn numbers(n: usize) -> BTreeMap<String, usize> {
        (0..n).map(|i| (format!("k{i:03}"), i)).collect()
    }

    #[test]
    fn pages_walk_every_kept_item_once_and_the_last_page_has_no_token() {
        let all = numbers(23);
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (items, next) = page("l", &all, Some(4), (1, 25), token.as_deref(), KEYS, |_, v| {
                (v % 2 == 0).then_some(*v)
            })
            .unwrap();
            assert!(items.len() <= 4);
            seen.extend(items);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, (0..23).filter(|v| v % 2 == 0).collect::<Vec<_>>());
        let four = numbers(4);
        let (items, next) = page("l", &four, Some(4), (1, 25), None, KEYS, |_, v| Some(v)).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(next, None, "no token when the page ends at the last item");
    }

    #[test]
    fn a_token_of_another_list_or_garbage_and_max_results_out_of_range_are_refused() {
        let all = numbers(3);
        let (_, token) = page("clusters", &all, Some(1), (1, 25), None, KEYS, |_, v| Some(v)).unwrap();
        let token = token.unwrap();
        let other = page("backups", &all, Some(1), (1, 50), Some(&token), KEYS, |_, v| Some(v));
        assert!(other.unwrap_err().message().contains("NextToken"));
        assert!(page("clusters", &all, None, (1, 25), Some("%%"), KEYS, |_, v| Some(v)).is_err());
        for n in [0, 26] {
            let e = page("clusters", &all, Some(n), (1, 25), None, KEYS, |_, v| Some(v)).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::CloudHsmInvalidRequestException);
            assert!(e.message().contains("MaxResults"), "{e}");
        }
    }
}
