//! `--query`: a JMESPath expression applied to the answer before it is printed, as the AWS CLI
//! applies it (to the whole answer, after pagination has merged the pages; to each page for
//! `--output text`).
//!
//! The evaluator is the `jmespath` crate (the JMESPath project's own Rust implementation,
//! checked against the specification's compliance suite), not one of kmscks's. It reads
//! objects into sorted maps; the result's members are put back in the order the answer had
//! them ([`Node::reorder`]), so `--query KeyMetadata` prints as `aws` prints it.
//!
//! One thing the specification dropped and the AWS CLI still reads is rewritten first
//! ([`legacy_literals`]): a backtick literal that is not JSON, `` [?AliasName==`alias/demo`] ``,
//! which python-jmespath reads as the string it holds. AWS's own examples are written so.

use std::borrow::Cow;

use super::tree::Node;

/// A compiled `--query` expression.
pub(crate) struct Query(jmespath::Expression<'static>);

impl Query {
    /// Compiles `expression`; the message names what is wrong.
    pub(crate) fn compile(expression: &str) -> Result<Query, String> {
        jmespath::compile(&legacy_literals(expression))
            .map(Query)
            .map_err(|e| format!("Bad value for --query {expression}: {e}"))
    }

    /// The expression's result on `answer`.
    pub(crate) fn apply(&self, answer: &Node) -> Result<Node, String> {
        let found = self
            .0
            .search(answer)
            .map_err(|e| format!("Bad value for --query: {e}"))?;
        let json = serde_json::to_vec(&*found)
            .map_err(|e| format!("--query gave a result that is not JSON: {e}"))?;
        let mut node = Node::parse(&json).unwrap_or(Node::Null);
        node.reorder(&answer.member_ranks());
        Ok(node)
    }
}

/// `expression` with each backtick literal that is not JSON made the JSON string of its text
/// (blanks at its start dropped), as python-jmespath reads one: `` `alias/demo` `` is
/// `` `"alias/demo"` ``. Literals that are JSON, and backticks inside quoted identifiers or raw
/// strings, are left as they are.
fn legacy_literals(expression: &str) -> Cow<'_, str> {
    if !expression.contains('`') {
        return Cow::Borrowed(expression);
    }
    let mut out = String::with_capacity(expression.len() + 8);
    let mut chars = expression.chars();
    while let Some(c) = chars.next() {
        match c {
            // A quoted identifier or a raw string: copied to its closing quote, escapes kept.
            '"' | '\'' => {
                out.push(c);
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == '\\' {
                        out.extend(chars.next());
                    } else if d == c {
                        break;
                    }
                }
            }
            '`' => {
                // The literal's text up to the closing backtick (`\`` is a backtick in it).
                let mut text = String::new();
                let mut closed = false;
                while let Some(d) = chars.next() {
                    match d {
                        '\\' if chars.clone().next() == Some('`') => {
                            chars.next();
                            text.push('`');
                        }
                        '`' => {
                            closed = true;
                            break;
                        }
                        _ => text.push(d),
                    }
                }
                if !closed || serde_json::from_str::<serde_json::Value>(&text).is_ok() {
                    // JSON already (or unterminated: the compiler names that): as written.
                    out.push('`');
                    out.push_str(&text.replace('`', "\\`"));
                    if closed {
                        out.push('`');
                    }
                } else {
                    let json = serde_json::Value::String(text.trim_start().to_owned());
                    out.push('`');
                    out.push_str(&json.to_string().replace('`', "\\`"));
                    out.push('`');
                }
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expr: &str, json: &str) -> String {
        let answer = Node::parse(json.as_bytes()).unwrap();
        let r = Query::compile(expr).unwrap().apply(&answer).unwrap();
        serde_json::to_string(&r).unwrap()
    }

    #[test]
    fn queries_select_project_and_filter_keeping_the_answers_member_order() {
        let keys = r#"{"Keys":[{"KeyId":"1","KeyArn":"a1"},{"KeyId":"2","KeyArn":"a2"}],"Truncated":false}"#;
        assert_eq!(run("Keys[].KeyId", keys), r#"["1","2"]"#);
        assert_eq!(run("Keys[0]", keys), r#"{"KeyId":"1","KeyArn":"a1"}"#);
        assert_eq!(run("Keys[?KeyId=='2'].KeyArn | [0]", keys), r#""a2""#);
        assert_eq!(run("length(Keys)", keys), "2");
        assert_eq!(run("Nope", keys), "null");
    }

    #[test]
    fn a_backtick_literal_that_is_not_json_is_the_string_it_holds_as_for_the_aws_cli() {
        let aliases = r#"{"Aliases":[{"AliasName":"alias/demo","TargetKeyId":"k1"},
            {"AliasName":"alias/other","TargetKeyId":"k2"}]}"#;
        assert_eq!(
            run("Aliases[?AliasName==`alias/demo`].TargetKeyId", aliases),
            r#"["k1"]"#
        );
        // Blanks at its start go, as python-jmespath drops them; JSON literals stay JSON.
        assert_eq!(
            run("Aliases[?AliasName==` alias/other`].TargetKeyId", aliases),
            r#"["k2"]"#
        );
        assert_eq!(
            run("Aliases[?AliasName==`\"alias/demo\"`].TargetKeyId", aliases),
            r#"["k1"]"#
        );
        assert_eq!(run("length(`[1,2,3]`)", aliases), "3");
        // Inside a raw string a backtick is text, not a literal.
        assert_eq!(run("'a`b'", aliases), r#""a`b""#);
        assert_eq!(legacy_literals("Keys[0]"), "Keys[0]");
        assert_eq!(legacy_literals("[?A==`x\\`y`]"), "[?A==`\"x\\`y\"`]");
    }

    #[test]
    fn a_bad_expression_is_refused_naming_it() {
        let e = Query::compile("Keys[").err().unwrap();
        assert!(e.starts_with("Bad value for --query Keys["), "{e}");
    }
}
