//! An ordered JSON tree: what the command line prints, queries and pages through.
//!
//! Why not `serde_json::Value`: its objects sort their keys (the crate's `preserve_order`
//! feature would change the library's own JSON, CloudTrail records among it), while the AWS
//! CLI prints members in the order of the service's model — the order of kmscks's response
//! types. A [`Node`] keeps the order it was read in. Strings may hold plaintexts (Decrypt's
//! answer): a tree is wiped ([`Zeroize`]) before it is dropped by the printer.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use zeroize::{Zeroize, Zeroizing};

use kmscks::ops::Response;

/// A JSON value whose objects keep their members' order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A list.
    Array(Vec<Node>),
    /// An object, members in order.
    Object(Vec<(String, Node)>),
}

impl Node {
    /// The response's own object (without the operation's tag), timestamps as the AWS CLI v2
    /// prints them ([`kmscks::types::time::as_cli_prints`]).
    pub(crate) fn of_response(resp: &Response) -> Node {
        let json = kmscks::types::time::as_cli_prints(|| {
            // Invariant: every response type serialises to JSON (string keys, finite
            // numbers); were one not to, the answer prints as `{}`.
            Zeroizing::new(serde_json::to_vec(resp).unwrap_or_else(|_| b"{}".to_vec()))
        });
        match Node::parse(&json) {
            Some(Node::Object(mut members)) if members.len() == 1 => members.swap_remove(0).1,
            _ => Node::Object(Vec::new()),
        }
    }

    /// Reads JSON text.
    pub(crate) fn parse(json: &[u8]) -> Option<Node> {
        serde_json::from_slice(json).ok()
    }

    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The member `key` of an object, to change.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Object(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets the member `key` of an object (in place if present, else appended).
    pub(crate) fn set(&mut self, key: &str, value: Node) {
        if let Node::Object(m) = self {
            match m.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => m.push((key.to_owned(), value)),
            }
        }
    }

    /// Whether this is a list or an object (not a scalar).
    pub(crate) fn is_container(&self) -> bool {
        matches!(self, Node::Array(_) | Node::Object(_))
    }

    /// Each member name's first position in a walk of the tree (objects' members in order,
    /// depth first): the order the AWS CLI would print them in.
    pub(crate) fn member_ranks(&self) -> HashMap<String, usize> {
        fn walk(n: &Node, ranks: &mut HashMap<String, usize>) {
            match n {
                Node::Object(m) => {
                    for (k, v) in m {
                        let next = ranks.len();
                        ranks.entry(k.clone()).or_insert(next);
                        walk(v, ranks);
                    }
                }
                Node::Array(items) => items.iter().for_each(|i| walk(i, ranks)),
                _ => {}
            }
        }
        let mut ranks = HashMap::new();
        walk(self, &mut ranks);
        ranks
    }

    /// Puts every object's members in the order of `ranks` (names it does not know last, in
    /// the order they have): undoes the sorting of a tree that went through a sorted map.
    pub(crate) fn reorder(&mut self, ranks: &HashMap<String, usize>) {
        match self {
            Node::Object(m) => {
                m.sort_by_key(|(k, _)| ranks.get(k).copied().unwrap_or(usize::MAX));
                m.iter_mut().for_each(|(_, v)| v.reorder(ranks));
            }
            Node::Array(items) => items.iter_mut().for_each(|i| i.reorder(ranks)),
            _ => {}
        }
    }
}

impl Zeroize for Node {
    fn zeroize(&mut self) {
        match self {
            Node::String(s) => s.zeroize(),
            Node::Array(items) => items.iter_mut().for_each(Zeroize::zeroize),
            Node::Object(m) => m.iter_mut().for_each(|(k, v)| {
                k.zeroize();
                v.zeroize();
            }),
            Node::Null | Node::Bool(_) | Node::Number(_) => {}
        }
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Number(n) => n.serialize(s),
            Node::String(t) => s.serialize_str(t),
            Node::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Node::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
                Ok(Node::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
                Ok(Node::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Node, E> {
                Ok(serde_json::Number::from_f64(n).map_or(Node::Null, Node::Number))
            }
            fn visit_str<E>(self, s: &str) -> Result<Node, E> {
                Ok(Node::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Node, E> {
                Ok(Node::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(i) = a.next_element()? {
                    items.push(i);
                }
                Ok(Node::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut m: Vec<(String, Node)> = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Node>()? {
                    // A repeated key keeps its first place and its last value, as JSON
                    // readers (Python's among them) do.
                    match m.iter_mut().find(|(key, _)| *key == k) {
                        Some((_, old)) => *old = v,
                        None => m.push((k, v)),
                    }
                }
                Ok(Node::Object(m))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_their_order_through_a_round_trip() {
        let n = Node::parse(br#"{"b":1,"a":[true,null,"x"],"c":{"z":1.5,"y":{}}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"b":1,"a":[true,null,"x"],"c":{"z":1.5,"y":{}}}"#
        );
        assert_eq!(
            n.get("a"),
            Some(&Node::parse(br#"[true,null,"x"]"#).unwrap())
        );
    }

    #[test]
    fn reorder_restores_the_order_of_a_model_tree() {
        let model = Node::parse(br#"{"Keys":[{"KeyId":"i","KeyArn":"a"}]}"#).unwrap();
        let mut sorted = Node::parse(br#"[{"KeyArn":"a","KeyId":"i","New":1}]"#).unwrap();
        sorted.reorder(&model.member_ranks());
        assert_eq!(
            serde_json::to_string(&sorted).unwrap(),
            r#"[{"KeyId":"i","KeyArn":"a","New":1}]"#
        );
    }
}
