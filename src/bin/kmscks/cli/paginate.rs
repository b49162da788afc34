//! Auto-pagination, as the AWS CLI pages list operations (botocore's `PageIterator`): by
//! default every page is fetched and one merged answer printed (the list member only, without
//! `Truncated`/`NextMarker`); `--max-items N` stops after N items and prints a `NextToken` that
//! `--starting-token` resumes from (botocore's token format, so tokens of `aws` and kmscks are
//! interchangeable); `--page-size N` sets the operation's own page size; `--no-paginate`, or
//! giving the operation's own paging flags (`--limit`, `--marker`, `--max-results`,
//! `--next-token`), makes one call and prints the raw page.
//!
//! Which verbs page is derived from their flags, not from a list of names: a verb with both
//! flags of one of AWS's two paging conventions ([`CONVENTIONS`]: KMS's `Limit`/`Marker` →
//! `NextMarker` + `Truncated`, CloudHSM's and CloudTrail's `MaxResults`/`NextToken` →
//! `NextToken`) pages, and its result is the answer's list member.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::args::ArgSpec;
use super::tree::Node;

/// One paging convention: the flags that name it and the members it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paging {
    /// The page-size flag and request member (`limit` / `Limit`).
    limit: (&'static str, &'static str),
    /// The input-token flag and request member (`marker` / `Marker`).
    input_token: (&'static str, &'static str),
    /// The answer's next-page token member (`NextMarker`).
    output_token: &'static str,
    /// The answer's member saying more pages follow, where the convention has one.
    more_results: Option<&'static str>,
}

/// AWS's paging conventions, as botocore's paginator models spell them.
const CONVENTIONS: &[Paging] = &[
    Paging {
        limit: ("limit", "Limit"),
        input_token: ("marker", "Marker"),
        output_token: "NextMarker",
        more_results: Some("Truncated"),
    },
    Paging {
        limit: ("max-results", "MaxResults"),
        input_token: ("next-token", "NextToken"),
        output_token: "NextToken",
        more_results: None,
    },
];

/// The flags every paging verb gets, as the AWS CLI adds them.
pub(crate) const FLAGS: &[(&str, &str)] = &[
    (
        "starting-token",
        "Where to start: the NextToken of an earlier --max-items answer",
    ),
    (
        "page-size",
        "Items per service call (the operation's own page size); the output is unchanged",
    ),
    (
        "max-items",
        "Print at most this many items, and a NextToken to resume from when more remain",
    ),
];

/// How `args`' verb pages, if it does.
pub(crate) fn of(args: &[ArgSpec]) -> Option<Paging> {
    CONVENTIONS.iter().copied().find(|p| {
        [p.limit.0, p.input_token.0]
            .iter()
            .all(|f| args.iter().any(|a| a.flag == *f))
    })
}

impl Paging {
    /// The operation's own paging members (giving one turns auto-pagination off).
    pub(crate) fn own_members(&self) -> [&'static str; 2] {
        [self.limit.1, self.input_token.1]
    }
}

/// What the paging flags asked for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// `--max-items`.
    pub max_items: Option<u64>,
    /// `--starting-token`.
    pub starting_token: Option<String>,
    /// `--page-size`.
    pub page_size: Option<u64>,
}

/// The pages fetched: each reduced to the result member, as botocore keeps them.
#[derive(Debug)]
pub(crate) struct Pages {
    /// Each page as `{<result member>: [items]}` (empty objects when there is none).
    pub pages: Vec<Node>,
    /// The token to resume from (`--max-items` stopped before the end).
    pub resume_token: Option<String>,
}

impl Pages {
    /// The merged answer: every page's items under the result member, and `NextToken` when
    /// `--max-items` stopped early (botocore's `build_full_result`).
    pub(crate) fn merged(&self) -> Node {
        let mut out = Node::Object(Vec::new());
        for page in &self.pages {
            let Node::Object(members) = page else {
                continue;
            };
            for (k, v) in members {
                match (out.get_mut(k), v) {
                    (Some(Node::Array(all)), Node::Array(items)) => all.extend(items.clone()),
                    (Some(_), _) => {}
                    (None, v) => out.set(k, v.clone()),
                }
            }
        }
        if let Some(t) = &self.resume_token {
            out.set("NextToken", Node::String(t.clone()));
        }
        out
    }
}

/// botocore's token: base64 of `{"<input token>": <value or null>[, "boto_truncate_amount": N]}`
/// written as Python's `json.dumps` writes it.
fn encode_token(member: &str, value: Option<&str>, truncate: Option<usize>) -> String {
    let v = value.map_or_else(|| "null".to_owned(), |s| Value::from(s).to_string());
    let mut json = format!("{{{}: {v}", Value::from(member));
    if let Some(n) = truncate {
        json.push_str(&format!(", \"boto_truncate_amount\": {n}"));
    }
    json.push('}');
    STANDARD.encode(json)
}

/// The input token and the items of its page already printed, from a `--starting-token`
/// (botocore's format; anything else is taken as the service's own token, as botocore's
/// fallback does).
fn decode_token(member: &str, token: &str) -> (Option<String>, usize) {
    let decoded = STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok());
    match decoded {
        Some(m) => (
            m.get(member).and_then(Value::as_str).map(str::to_owned),
            m.get("boto_truncate_amount")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0),
        ),
        None => (Some(token.to_owned()), 0),
    }
}

/// The answer's result member: its first list member.
fn result_member(page: &Node) -> Option<String> {
    match page {
        Node::Object(m) => m
            .iter()
            .find(|(_, v)| matches!(v, Node::Array(_)))
            .map(|(k, _)| k.clone()),
        _ => None,
    }
}

/// One service call: the request object in, the answer out.
pub(crate) type Call<'a, E> = dyn FnMut(&Map<String, Value>) -> Result<Node, E> + 'a;

/// Fetches pages of `request` (the request object) through `call`, as botocore's
/// `PageIterator` does.
pub(crate) fn run<E>(
    paging: Paging,
    opts: &Options,
    mut request: Map<String, Value>,
    call: &mut Call<'_, E>,
    same_token_twice: impl Fn(&str) -> E,
) -> Result<Pages, E> {
    let input = paging.input_token.1;
    let (mut token, mut skip) = match &opts.starting_token {
        Some(t) => decode_token(input, t),
        None => (None, 0),
    };
    if let Some(n) = opts.page_size {
        request.insert(paging.limit.1.into(), Value::from(n));
    }
    let mut pages = Vec::new();
    let mut total = 0usize;
    let mut previous: Option<String> = None;
    let max = opts
        .max_items
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    loop {
        match &token {
            Some(t) => request.insert(input.into(), Value::from(t.as_str())),
            None => request.remove(input),
        };
        let answer = call(&request)?;
        let key = result_member(&answer);
        let mut items = match key.as_deref().and_then(|k| answer.get(k)) {
            Some(Node::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        let started_at = std::mem::take(&mut skip);
        items.drain(..started_at.min(items.len()));
        let page = |items: Vec<Node>| match &key {
            Some(k) => Node::Object(vec![(k.clone(), Node::Array(items))]),
            None => Node::Object(Vec::new()),
        };
        if let Some(max) = max.filter(|&m| total + items.len() > m) {
            let keep = max - total;
            items.truncate(keep);
            pages.push(page(items));
            return Ok(Pages {
                pages,
                resume_token: Some(encode_token(
                    input,
                    token.as_deref(),
                    Some(keep + started_at),
                )),
            });
        }
        total += items.len();
        pages.push(page(items));
        let more = paging
            .more_results
            .is_none_or(|m| matches!(answer.get(m), Some(Node::Bool(true))));
        let next = match answer.get(paging.output_token) {
            Some(Node::String(s)) if more && !s.is_empty() => s.clone(),
            _ => {
                return Ok(Pages {
                    pages,
                    resume_token: None,
                })
            }
        };
        if max == Some(total) {
            return Ok(Pages {
                pages,
                resume_token: Some(encode_token(input, Some(&next), None)),
            });
        }
        if previous.as_deref() == Some(next.as_str()) {
            return Err(same_token_twice(&next));
        }
        previous = Some(next.clone());
        token = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{opt, Kind};

    /// A service of `n` keys paged `page` at a time, KMS-style.
    fn service(n: usize, page: usize) -> impl FnMut(&Map<String, Value>) -> Result<Node, String> {
        move |req: &Map<String, Value>| {
            let from: usize = req
                .get("Marker")
                .and_then(Value::as_str)
                .map_or(0, |m| m.parse().unwrap());
            let limit = req
                .get("Limit")
                .and_then(Value::as_u64)
                .map_or(page, |l| l as usize);
            let to = (from + limit).min(n);
            let keys: Vec<Value> = (from..to)
                .map(|i| serde_json::json!({"KeyId": i.to_string()}))
                .collect();
            let mut a = serde_json::json!({"Keys": keys, "Truncated": to < n});
            if to < n {
                a["NextMarker"] = Value::from(to.to_string());
            }
            Ok(Node::parse(a.to_string().as_bytes()).unwrap())
        }
    }

    fn ids(n: &Node) -> Vec<String> {
        match n.get("Keys") {
            Some(Node::Array(items)) => items
                .iter()
                .map(|i| match i.get("KeyId") {
                    Some(Node::String(s)) => s.clone(),
                    _ => panic!(),
                })
                .collect(),
            _ => vec![],
        }
    }

    fn kms() -> Paging {
        of(&[opt("limit", Kind::Int, ""), opt("marker", Kind::Str, "")]).unwrap()
    }

    #[test]
    fn paging_is_derived_from_the_verbs_flags() {
        assert_eq!(kms().output_token, "NextMarker");
        let cloudhsm = of(&[
            opt("max-results", Kind::Int, ""),
            opt("next-token", Kind::Str, ""),
        ])
        .unwrap();
        assert_eq!(cloudhsm.output_token, "NextToken");
        assert_eq!(of(&[opt("limit", Kind::Int, "")]), None);
    }

    #[test]
    fn all_pages_merge_into_the_list_member_alone() {
        let p = run(
            kms(),
            &Options::default(),
            Map::new(),
            &mut service(7, 3),
            |t| t.to_owned(),
        )
        .unwrap();
        assert_eq!(p.pages.len(), 3);
        let m = p.merged();
        assert_eq!(ids(&m), ["0", "1", "2", "3", "4", "5", "6"]);
        assert_eq!(m.get("Truncated"), None);
        assert_eq!(m.get("NextToken"), None);
    }

    #[test]
    fn max_items_stops_with_a_token_that_starting_token_resumes_from() {
        let mut all = Vec::new();
        let mut token = None;
        for _ in 0..10 {
            let opts = Options {
                max_items: Some(2),
                starting_token: token.clone(),
                page_size: None,
            };
            let p = run(kms(), &opts, Map::new(), &mut service(7, 3), |t| {
                t.to_owned()
            })
            .unwrap();
            all.extend(ids(&p.merged()));
            token = p.resume_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(all, ["0", "1", "2", "3", "4", "5", "6"]);
        // botocore's own token for "page at marker 3, two items already printed".
        assert_eq!(
            encode_token("Marker", Some("3"), Some(2)),
            "eyJNYXJrZXIiOiAiMyIsICJib3RvX3RydW5jYXRlX2Ftb3VudCI6IDJ9"
        );
        assert_eq!(
            decode_token(
                "Marker",
                "eyJNYXJrZXIiOiAiMyIsICJib3RvX3RydW5jYXRlX2Ftb3VudCI6IDJ9"
            ),
            (Some("3".into()), 2)
        );
    }

    #[test]
    fn page_size_sets_the_services_page_size() {
        let opts = Options {
            page_size: Some(1),
            ..Options::default()
        };
        let p = run(kms(), &opts, Map::new(), &mut service(3, 50), |t| {
            t.to_owned()
        })
        .unwrap();
        assert_eq!(p.pages.len(), 3);
        assert_eq!(ids(&p.merged()), ["0", "1", "2"]);
    }
}
