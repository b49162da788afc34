//! Key policies: parsing, validation and evaluation of AWS KMS key policy documents.
//!
//! kmscks evaluates key policies itself; there is no IAM behind it. A caller is a principal ARN
//! string. In-process callers are the account root ([`Scope::root_principal`],
//! `arn:aws:iam::<account>:root`); the daemon maps a peer uid to a principal with
//! [`principal_for_uid`].
//!
//! Evaluation follows AWS's rules, within these deliberate limits:
//!
//! - **The account root is only the root.** In AWS, a statement whose principal is the account
//!   (`arn:aws:iam::<account>:root` or the bare 12-digit account id) delegates access to IAM
//!   policies in that account. kmscks has no IAM to delegate to, so such a statement applies to
//!   the root principal only. `"*"` and `{"AWS": "*"}` apply to everyone.
//! - **Default deny; an explicit `Deny` wins** over any `Allow`.
//! - **Action patterns** may use `*` and `?`; the action name is matched case-insensitively
//!   (`kms:generate*` matches `kms:GenerateDataKey`). Resource patterns may use the same
//!   wildcards and are matched case-sensitively against the key ARN.
//! - **Conditions**: only the operators `StringEquals`, `StringLike`, `StringNotEquals` and
//!   `StringNotLike` (each also with `IfExists`) on the keys `kms:CallerAccount` and
//!   `aws:PrincipalArn` are evaluated. A negated operator holds when the caller's value matches
//!   none of the values ("deny everyone but the admin"). Any other operator or key makes the
//!   statement's condition *unsupported*, and kmscks fails closed: an `Allow` statement with an
//!   unsupported condition never applies, a `Deny` statement with one always applies (to the
//!   principals, actions and resources it names).
//! - Principal types other than `AWS` (`Service`, `Federated`, `CanonicalUser`) are accepted but
//!   never match a caller, since kmscks has no such callers.
//!
//! Everything is compiled once in [`KeyPolicy::parse`]; [`KeyPolicy::verdict`] (and
//! [`KeyPolicy::allows`]) do not allocate. A verdict tells an explicit deny from the absence
//! of an allow, since only the latter may a grant make up for.

use serde_json::{Map, Value};

use crate::err;
use crate::error::{ErrorKind, KmsError, Result};
use crate::ops::Op;
use crate::types::{limits, PolicyVerdict, Scope};

/// AWS's message when a new policy would lock the caller out of PutKeyPolicy.
pub const LOCKOUT_MESSAGE: &str =
    "The new key policy will not allow you to update the key policy in the future.";

/// AWS's default key policy for a key in `scope`'s account, as GetKeyPolicy returns it.
pub fn default_policy(scope: &Scope) -> String {
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "{}"
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#,
        scope.root_principal()
    )
}

/// The principal ARN for a local peer uid: uid 0 and the daemon's own uid are the account root,
/// any other uid is `arn:aws:iam::<account>:user/uid-<uid>`.
pub fn principal_for_uid(scope: &Scope, uid: u32, daemon_uid: u32) -> String {
    if uid == 0 || uid == daemon_uid {
        scope.root_principal()
    } else {
        format!("arn:aws:iam::{}:user/uid-{uid}", scope.account_id)
    }
}

/// A parsed, validated and compiled key policy. Immutable; cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    statements: Box<[Statement]>,
}

impl KeyPolicy {
    /// Parses and validates a key policy document a caller gives (CreateKey, PutKeyPolicy).
    ///
    /// Errors: `LimitExceededException` when `text` is longer than
    /// [`limits::MAX_POLICY_BYTES`]; `MalformedPolicyDocumentException`, naming the statement
    /// and member, when the document is not a valid key policy.
    pub fn parse(text: &str) -> Result<KeyPolicy> {
        KeyPolicy::parse_as(text, Reading::Given)
    }

    /// Parses a stored key policy, one that [`KeyPolicy::parse`] of its own build accepted.
    /// A rule added since then must not make it unreadable: a policy that no longer parses
    /// would open no data directory holding it (the data plane compiles every key's policy)
    /// and would lock even the account root out of the key (no PutKeyPolicy can pass an
    /// unreadable policy). So a stored policy is read as the build that stored it read it:
    /// a principal with a wildcard in part of it, refused as given since, is the literal
    /// ARN it always was, matching no caller.
    pub fn parse_stored(text: &str) -> Result<KeyPolicy> {
        KeyPolicy::parse_as(text, Reading::Stored)
    }

    fn parse_as(text: &str, reading: Reading) -> Result<KeyPolicy> {
        if text.len() > limits::MAX_POLICY_BYTES {
            return Err(err!(
                LimitExceededException,
                "The key policy is {} bytes, more than the {} bytes allowed",
                text.len(),
                limits::MAX_POLICY_BYTES
            ));
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| {
            err!(
                MalformedPolicyDocumentException,
                "The key policy is not valid JSON: {e}"
            )
        })?;
        let Value::Object(doc) = doc else {
            return Err(malformed("The key policy must be a JSON object"));
        };
        for name in doc.keys() {
            if !matches!(name.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!(
                    "The key policy has an unknown top-level member '{name}'"
                )));
            }
        }
        match doc.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(v) => {
                return Err(malformed(format!(
                    "The key policy member 'Version' is {v}; it must be \"2012-10-17\" or \
                     \"2008-10-17\""
                )))
            }
        }
        if let Some(id) = doc.get("Id") {
            if !id.is_string() {
                return Err(malformed("The key policy member 'Id' must be a string"));
            }
        }
        let statements =
            match doc.get("Statement") {
                None => {
                    return Err(malformed(
                        "The key policy has no 'Statement' member; it needs at least one statement",
                    ))
                }
                Some(Value::Object(one)) => vec![Statement::parse(0, one, reading)?],
                Some(Value::Array(many)) if many.is_empty() => return Err(malformed(
                    "The key policy member 'Statement' is an empty array; it needs at least one \
                     statement",
                )),
                Some(Value::Array(many)) => many
                    .iter()
                    .enumerate()
                    .map(|(i, s)| match s {
                        Value::Object(s) => Statement::parse(i, s, reading),
                        _ => Err(malformed(format!("Statement[{i}] must be a JSON object"))),
                    })
                    .collect::<Result<Vec<_>>>()?,
                Some(_) => return Err(malformed(
                    "The key policy member 'Statement' must be an object or an array of objects",
                )),
            };
        Ok(KeyPolicy {
            statements: statements.into(),
        })
    }

    /// Whether no statement looks at the key's ARN (every `Resource` is a plain `*`, as in the
    /// default policy): then [`KeyPolicy::allows`] gives the same verdict for every key, and a
    /// caller may skip writing the ARN.
    pub fn ignores_resource(&self) -> bool {
        self.statements.iter().all(|s| s.resources.matches_everything())
    }

    /// Whether `principal` may perform `action` (e.g. `kms:Encrypt`) on the key `key_arn`.
    pub fn allows(&self, principal: &str, action: &str, key_arn: &str) -> bool {
        self.verdict(principal, action, key_arn) == PolicyVerdict::Allow
    }

    /// What this policy answers `principal` performing `action` on the key `key_arn`: an
    /// explicit Deny (a `Deny` statement that applies, whatever allows it), an Allow, or
    /// neither — the one answer a grant may then override.
    pub fn verdict(&self, principal: &str, action: &str, key_arn: &str) -> PolicyVerdict {
        let mut allowed = false;
        for st in self.statements.iter() {
            if !st.actions.matches(action) || !st.applies_to(principal, key_arn) {
                continue;
            }
            match st.effect {
                Effect::Deny => return PolicyVerdict::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
        if allowed {
            PolicyVerdict::Allow
        } else {
            PolicyVerdict::ImplicitDeny
        }
    }

    /// For the tests' tables: bit `i` is set when `actions[i]` (of the first 64) is allowed to
    /// `principal` on `key_arn`.
    #[cfg(test)]
    pub(crate) fn action_mask(&self, principal: &str, key_arn: &str, actions: &[&str]) -> u64 {
        actions
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, action)| self.allows(principal, action, key_arn))
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }

    /// AWS's policy lockout safety check: fails with `MalformedPolicyDocumentException` unless
    /// this policy lets `caller` perform `kms:PutKeyPolicy` on `key_arn`. Callers skip it when
    /// the request sets `BypassPolicyLockoutSafetyCheck`.
    pub fn check_lockout_safety(&self, caller: &str, key_arn: &str) -> Result<()> {
        if self.allows(caller, Op::PutKeyPolicy.action().as_str(), key_arn) {
            Ok(())
        } else {
            Err(malformed(LOCKOUT_MESSAGE))
        }
    }
}

fn malformed(message: impl Into<String>) -> KmsError {
    KmsError::new(ErrorKind::MalformedPolicyDocumentException, message)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// One compiled statement.
#[derive(Clone, Debug)]
struct Statement {
    effect: Effect,
    principals: Principals,
    /// `NotPrincipal`: the statement applies to everyone the list does not match.
    not_principal: bool,
    actions: Patterns,
    resources: Patterns,
    condition: Condition,
}

/// The statement members kmscks knows.
const STATEMENT_MEMBERS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Statement {
    fn parse(index: usize, s: &Map<String, Value>, reading: Reading) -> Result<Statement> {
        let at = match s.get("Sid") {
            Some(Value::String(sid)) => format!("Statement[{index}] (Sid \"{sid}\")"),
            Some(_) => {
                return Err(malformed(format!(
                    "Statement[{index}]: member 'Sid' must be a string"
                )))
            }
            None => format!("Statement[{index}]"),
        };
        let bad = |what: String| malformed(format!("{at}: {what}"));
        for name in s.keys() {
            if !STATEMENT_MEMBERS.contains(&name.as_str()) {
                return Err(bad(format!("unknown member '{name}'")));
            }
        }
        let effect = match s.get("Effect") {
            Some(Value::String(e)) if e == "Allow" => Effect::Allow,
            Some(Value::String(e)) if e == "Deny" => Effect::Deny,
            Some(e) => {
                return Err(bad(format!(
                    "member 'Effect' is {e}; it must be \"Allow\" or \"Deny\""
                )))
            }
            None => return Err(bad("member 'Effect' is missing".into())),
        };
        let (member, value, not_principal) =
            exactly_one(s, "Principal", "NotPrincipal").map_err(bad)?;
        let principals =
            Principals::parse(value, reading).map_err(|e| bad(format!("member '{member}' {e}")))?;
        let (member, value, negated) = exactly_one(s, "Action", "NotAction").map_err(bad)?;
        let actions = Patterns::parse(value, negated, PatternKind::Action)
            .map_err(|e| bad(format!("member '{member}' {e}")))?;
        let (member, value, negated) = exactly_one(s, "Resource", "NotResource").map_err(bad)?;
        let resources = Patterns::parse(value, negated, PatternKind::Resource)
            .map_err(|e| bad(format!("member '{member}' {e}")))?;
        let condition = match s.get("Condition") {
            None => Condition::Always,
            Some(c) => Condition::parse(c).map_err(|e| bad(format!("member 'Condition' {e}")))?,
        };
        Ok(Statement {
            effect,
            principals,
            not_principal,
            actions,
            resources,
            condition,
        })
    }

    /// Whether this statement takes effect for `principal` on `key_arn` (actions aside).
    fn applies_to(&self, principal: &str, key_arn: &str) -> bool {
        if self.principals.matches(principal) == self.not_principal {
            return false;
        }
        if !self.resources.matches(key_arn) {
            return false;
        }
        match (self.condition.evaluate(principal), self.effect) {
            (Some(holds), _) => holds,
            // Fail closed: an unsupported condition never grants and always denies.
            (None, Effect::Allow) => false,
            (None, Effect::Deny) => true,
        }
    }
}

/// The one present member of `positive`/`negative`, and whether it was the negative one.
fn exactly_one<'a>(
    s: &'a Map<String, Value>,
    positive: &'static str,
    negative: &'static str,
) -> std::result::Result<(&'static str, &'a Value, bool), String> {
    match (s.get(positive), s.get(negative)) {
        (Some(v), None) => Ok((positive, v, false)),
        (None, Some(v)) => Ok((negative, v, true)),
        (Some(_), Some(_)) => Err(format!(
            "members '{positive}' and '{negative}' must not both be present"
        )),
        (None, None) => Err(format!("member '{positive}' (or '{negative}') is missing")),
    }
}

/// A string or a non-empty array of strings, as the policy grammar allows for most members.
fn string_list(value: &Value) -> std::result::Result<Vec<&str>, String> {
    match value {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if items.is_empty() => Err("must not be an empty array".into()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| format!("element {i} must be a string, not {v}"))
            })
            .collect(),
        other => Err(format!(
            "must be a string or an array of strings, not {other}"
        )),
    }
}

/// Whose key policy is read: a caller's, checked by every rule of this build, or one stored
/// (see [`KeyPolicy::parse_stored`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    Given,
    Stored,
}

/// The principals a statement names.
#[derive(Clone, Debug)]
enum Principals {
    /// `"*"` or an `AWS` list containing `"*"`.
    Everyone,
    /// Exact principal ARNs (bare account ids are normalised to the account root ARN).
    Arns(Box<[Box<str>]>),
}

impl Principals {
    fn parse(value: &Value, reading: Reading) -> std::result::Result<Principals, String> {
        let map = match value {
            Value::String(s) if s == "*" => return Ok(Principals::Everyone),
            Value::Object(map) if !map.is_empty() => map,
            _ => {
                return Err(
                    "must be \"*\" or an object such as {\"AWS\": \"<principal ARN>\"}".into(),
                )
            }
        };
        let mut arns = Vec::new();
        for (kind, v) in map {
            let list = string_list(v).map_err(|e| format!("'{kind}' {e}"))?;
            match kind.as_str() {
                "AWS" => {
                    for p in list {
                        if p == "*" {
                            return Ok(Principals::Everyone);
                        }
                        if p.is_empty() {
                            return Err("'AWS' holds an empty principal".into());
                        }
                        if p.contains(['*', '?']) && reading == Reading::Given {
                            // AWS refuses a wildcard in part of a principal; kept, it would
                            // match no caller, and a Deny meant for many would deny no one.
                            return Err(format!(
                                "holds the principal '{p}' with a wildcard: only \"*\" alone \
                                 may stand for many principals"
                            ));
                        }
                        arns.push(normalise_principal(p));
                    }
                }
                // Valid AWS principal types that no kmscks caller can be.
                "Service" | "Federated" | "CanonicalUser" => {}
                other => {
                    return Err(format!(
                        "has an unknown principal type '{other}' (expected AWS, Service, \
                         Federated or CanonicalUser)"
                    ))
                }
            }
        }
        Ok(Principals::Arns(arns.into()))
    }

    fn matches(&self, principal: &str) -> bool {
        match self {
            Principals::Everyone => true,
            Principals::Arns(arns) => arns.iter().any(|a| **a == *principal),
        }
    }
}

/// A bare 12-digit account id stands for that account's root principal.
fn normalise_principal(p: &str) -> Box<str> {
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        format!("arn:aws:iam::{p}:root").into()
    } else {
        p.into()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatternKind {
    /// `*` or `kms:...`; matched case-insensitively.
    Action,
    /// Any ARN pattern; matched case-sensitively.
    Resource,
}

/// A compiled list of action or resource patterns (`Action`/`NotAction`,
/// `Resource`/`NotResource`).
#[derive(Clone, Debug)]
struct Patterns {
    patterns: Box<[Pattern]>,
    negated: bool,
    ignore_case: bool,
}

impl Patterns {
    fn parse(
        value: &Value,
        negated: bool,
        kind: PatternKind,
    ) -> std::result::Result<Patterns, String> {
        let list = string_list(value)?;
        let mut patterns = Vec::with_capacity(list.len());
        for p in list {
            match kind {
                PatternKind::Action => {
                    let ok = p == "*"
                        || (p.len() > 4
                            && p.is_char_boundary(4)
                            && p[..4].eq_ignore_ascii_case("kms:"));
                    if !ok {
                        return Err(format!(
                            "has action '{p}'; actions must be \"*\" or start with \"kms:\""
                        ));
                    }
                }
                PatternKind::Resource => {
                    if p.is_empty() {
                        return Err("holds an empty resource".into());
                    }
                }
            }
            patterns.push(Pattern::compile(p));
        }
        Ok(Patterns {
            patterns: patterns.into(),
            negated,
            ignore_case: kind == PatternKind::Action,
        })
    }

    /// Whether every text matches (a plain `*`, not negated).
    fn matches_everything(&self) -> bool {
        !self.negated && self.patterns.iter().any(|p| matches!(p, Pattern::Any))
    }

    fn matches(&self, text: &str) -> bool {
        let any = self
            .patterns
            .iter()
            .any(|p| p.matches(text, self.ignore_case));
        any != self.negated
    }
}

/// One pattern, classified at compile time so that the common cases skip the glob matcher.
#[derive(Clone, Debug)]
enum Pattern {
    /// `*`.
    Any,
    /// No wildcard.
    Exact(Box<str>),
    /// Contains `*` or `?`.
    Glob(Box<str>),
}

impl Pattern {
    fn compile(p: &str) -> Pattern {
        if p == "*" {
            Pattern::Any
        } else if p.contains(['*', '?']) {
            Pattern::Glob(p.into())
        } else {
            Pattern::Exact(p.into())
        }
    }

    fn matches(&self, text: &str, ignore_case: bool) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(p) if ignore_case => p.eq_ignore_ascii_case(text),
            Pattern::Exact(p) => **p == *text,
            Pattern::Glob(p) => glob_match(p.as_bytes(), text.as_bytes(), ignore_case),
        }
    }
}

/// Glob matching with `*` (any run, possibly empty) and `?` (exactly one character), without
/// allocation. Linear backtracking to the last `*`, so worst case O(pattern × text).
fn glob_match(pattern: &[u8], text: &[u8], ignore_case: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut t) = (0usize, 0usize);
    // Position after the last `*` seen, and the text position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p + 1, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == b'?' {
            // `?` is one character: skip a whole UTF-8 sequence.
            p += 1;
            t += utf8_len(text[t]);
        } else if p < pattern.len() && eq(pattern[p], text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp;
            t = st + utf8_len(text[st]);
            star = Some((sp, t));
        } else {
            return false;
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&b| b == b'*')
}

/// Length of the UTF-8 sequence starting with `lead` (1 for a stray continuation byte).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// A statement's `Condition` block.
#[derive(Clone, Debug)]
enum Condition {
    /// No condition.
    Always,
    /// Every clause must hold.
    Clauses(Box<[Clause]>),
    /// Some operator or key kmscks does not evaluate (see the module doc: fail closed).
    Unsupported,
}

#[derive(Clone, Debug)]
struct Clause {
    /// `…Like`: the values are patterns with `*` and `?`.
    like: bool,
    /// `…Not…`: holds when no value matches.
    negated: bool,
    /// `…IfExists`: holds when the request has no value for the key.
    if_exists: bool,
    key: ConditionKey,
    /// Any one value may match.
    values: Box<[Box<str>]>,
}

#[derive(Clone, Copy, Debug)]
enum ConditionKey {
    /// `kms:CallerAccount`: the account id in the caller's ARN.
    CallerAccount,
    /// `aws:PrincipalArn`: the caller's ARN.
    PrincipalArn,
}

impl Condition {
    fn parse(value: &Value) -> std::result::Result<Condition, String> {
        let Value::Object(ops) = value else {
            return Err(format!("must be an object, not {value}"));
        };
        let mut clauses = Vec::new();
        let mut unsupported = false;
        for (op, keys) in ops {
            let Value::Object(keys) = keys else {
                return Err(format!("operator '{op}' must map to an object, not {keys}"));
            };
            let (base, if_exists) = match op.strip_suffix("IfExists") {
                Some(base) => (base, true),
                None => (op.as_str(), false),
            };
            // (like, negated)
            let like = match base {
                "StringEquals" => Some((false, false)),
                "StringLike" => Some((true, false)),
                "StringNotEquals" => Some((false, true)),
                "StringNotLike" => Some((true, true)),
                _ => None,
            };
            for (key, values) in keys {
                let values =
                    condition_values(values).map_err(|e| format!("'{op}' key '{key}' {e}"))?;
                let key = if key.eq_ignore_ascii_case("kms:CallerAccount") {
                    Some(ConditionKey::CallerAccount)
                } else if key.eq_ignore_ascii_case("aws:PrincipalArn") {
                    Some(ConditionKey::PrincipalArn)
                } else {
                    None
                };
                match (like, key) {
                    (Some((like, negated)), Some(key)) => clauses.push(Clause {
                        like,
                        negated,
                        if_exists,
                        key,
                        values: values.into(),
                    }),
                    _ => unsupported = true,
                }
            }
        }
        Ok(if unsupported {
            Condition::Unsupported
        } else if clauses.is_empty() {
            Condition::Always
        } else {
            Condition::Clauses(clauses.into())
        })
    }

    /// `Some(holds)` for an evaluable condition, `None` for an unsupported one.
    fn evaluate(&self, principal: &str) -> Option<bool> {
        match self {
            Condition::Always => Some(true),
            Condition::Unsupported => None,
            Condition::Clauses(clauses) => Some(clauses.iter().all(|c| {
                let actual = match c.key {
                    ConditionKey::PrincipalArn => Some(principal),
                    ConditionKey::CallerAccount => caller_account(principal),
                };
                let Some(actual) = actual else {
                    // No value (a caller that is no IAM ARN): as IAM reads a missing key, a
                    // negated operator holds, a positive one does not unless `IfExists`.
                    return c.negated || c.if_exists;
                };
                let matched = c.values.iter().any(|v| {
                    if c.like {
                        glob_match(v.as_bytes(), actual.as_bytes(), false)
                    } else {
                        **v == *actual
                    }
                });
                matched != c.negated
            })),
        }
    }
}

/// Condition values: a string, number or boolean, or a non-empty array of them.
fn condition_values(value: &Value) -> std::result::Result<Vec<Box<str>>, String> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.as_str().into()),
        Value::Number(n) => Ok(n.to_string().into()),
        Value::Bool(b) => Ok(b.to_string().into()),
        other => Err(format!("has a value that is not a string: {other}")),
    };
    match value {
        Value::Array(items) if items.is_empty() => Err("must not be an empty array".into()),
        Value::Array(items) => items.iter().map(one).collect(),
        v => Ok(vec![one(v)?]),
    }
}

/// The account id of an IAM principal ARN (`arn:<partition>:iam::<account>:...`).
fn caller_account(principal: &str) -> Option<&str> {
    let mut parts = principal.splitn(6, ':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("arn"), Some(_), Some(_), Some(_), Some(account), Some(_)) if !account.is_empty() => {
            Some(account)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
