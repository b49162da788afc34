//! `--query`: a JMESPath expression applied to the answer before it is printed, as the AWS CLI
//! applies it (to the whole answer, after pagination has merged the pages; to each page for
//! `--output text`).
//!
//! The evaluator is the `jmespath` crate (the JMESPath project's own Rust implementation,
//! checked against the specification's compliance suite), not one of kmscks's. It reads
//! objects into sorted maps; the result's members are put back in the order the answer had
//! them ([`Node::reorder`]), so `--query KeyMetadata` prints as `aws` prints it.

use super::tree::Node;

/// A compiled `--query` expression.
pub(crate) struct Query(jmespath::Expression<'static>);

impl Query {
    /// Compiles `expression`; the message names what is wrong.
    pub(crate) fn compile(expression: &str) -> Result<Query, String> {
        jmespath::compile(expression)
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
    fn a_bad_expression_is_refused_naming_it() {
        let e = Query::compile("Keys[").err().unwrap();
        assert!(e.starts_with("Bad value for --query Keys["), "{e}");
    }
}
