//! Key policy parsing and evaluation: the grammar AWS accepts, what it refuses, and how
//! principals, actions, resources and conditions match.

use super::*;
use crate::types::KeyId;

/// Every `kms:` action of the op table, once each.
fn all_actions() -> Vec<&'static str> {
    let mut actions: Vec<&'static str> = crate::ops::Op::ALL
        .iter()
        .flat_map(|op| op.actions())
        .map(|a| a.as_str())
        .filter(|a| a.starts_with("kms:"))
        .collect();
    actions.sort_unstable();
    actions.dedup();
    actions
}

struct Fixture {
    scope: Scope,
    root: String,
    user: String,
    key: String,
}

fn fixture() -> Fixture {
    let scope = Scope::default();
    Fixture {
        root: scope.root_principal(),
        user: principal_for_uid(&scope, 1001, 500),
        key: scope.key_arn(&KeyId::generate()),
        scope,
    }
}

fn policy(statements: &str) -> KeyPolicy {
    let text = format!(r#"{{"Version": "2012-10-17", "Statement": {statements}}}"#);
    KeyPolicy::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn malformed_message(text: &str) -> String {
    let e = KeyPolicy::parse(text).expect_err(text);
    assert_eq!(e.kind(), ErrorKind::MalformedPolicyDocumentException, "{e}");
    e.message().to_owned()
}

#[test]
fn default_policy_allows_root_everything_and_no_one_else() {
    let f = fixture();
    let text = default_policy(&f.scope);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["Version"], "2012-10-17");
    assert_eq!(v["Id"], "key-default-1");
    assert_eq!(v["Statement"][0]["Sid"], "Enable IAM User Permissions");
    assert_eq!(v["Statement"][0]["Principal"]["AWS"], f.root.as_str());
    assert!(text.contains('\n'), "pretty-printed");

    let p = KeyPolicy::parse(&text).unwrap();
    for action in all_actions() {
        assert!(p.allows(&f.root, action, &f.key), "{action}");
        assert!(!p.allows(&f.user, action, &f.key), "{action}");
    }
    assert_eq!(
        p.action_mask(&f.root, &f.key, &all_actions()),
        (1u64 << all_actions().len()) - 1
    );
    assert_eq!(p.action_mask(&f.user, &f.key, &all_actions()), 0);
}

#[test]
fn uid_mapping() {
    let s = Scope::default();
    assert_eq!(principal_for_uid(&s, 0, 500), s.root_principal());
    assert_eq!(principal_for_uid(&s, 500, 500), s.root_principal());
    assert_eq!(
        principal_for_uid(&s, 1001, 500),
        "arn:aws:iam::111122223333:user/uid-1001"
    );
}

#[test]
fn grant_to_a_user_allows_exactly_those_actions() {
    let f = fixture();
    let p = policy(&format!(
        r#"[{{"Effect": "Allow", "Principal": {{"AWS": ["{}"]}},
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}}]"#,
        f.user
    ));
    for action in all_actions() {
        let expected = matches!(action, "kms:Encrypt" | "kms:Decrypt");
        assert_eq!(p.allows(&f.user, action, &f.key), expected, "{action}");
        assert!(!p.allows(&f.root, action, &f.key), "{action}");
    }
    // Action names are case-insensitive.
    assert!(p.allows(&f.user, "KMS:encrypt", &f.key));
    let other = principal_for_uid(&f.scope, 1002, 500);
    assert!(!p.allows(&other, "kms:Encrypt", &f.key));
    assert_eq!(
        p.action_mask(&f.user, &f.key, &["kms:Decrypt", "kms:Sign", "kms:Encrypt"]),
        0b101
    );
}

#[test]
fn explicit_deny_wins() {
    let f = fixture();
    let p = policy(&format!(
        r#"[{{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}},
            {{"Sid": "NoDecrypt", "Effect": "Deny", "Principal": {{"AWS": "{}"}},
              "Action": "kms:Decrypt", "Resource": "*"}}]"#,
        f.user
    ));
    assert!(p.allows(&f.user, "kms:Encrypt", &f.key));
    assert!(!p.allows(&f.user, "kms:Decrypt", &f.key));
    assert!(p.allows(&f.root, "kms:Decrypt", &f.key));
}

#[test]
fn wildcards_in_actions_and_resources() {
    let f = fixture();
    let p = policy(&format!(
        r#"{{"Effect": "Allow", "Principal": {{"AWS": "*"}},
             "Action": ["kms:generate*", "kms:?ecrypt"],
             "Resource": "arn:aws:kms:us-east-1:{}:key/*"}}"#,
        f.scope.account_id
    ));
    assert!(p.allows(&f.user, "kms:GenerateDataKey", &f.key));
    assert!(p.allows(&f.user, "kms:GenerateDataKeyWithoutPlaintext", &f.key));
    assert!(p.allows(&f.user, "kms:Decrypt", &f.key));
    assert!(!p.allows(&f.user, "kms:Encrypt", &f.key), "? is one char");
    assert!(!p.allows(&f.user, "kms:ReEncryptFrom", &f.key));
    let foreign = "arn:aws:kms:eu-west-1:111122223333:key/abc";
    assert!(!p.allows(&f.user, "kms:GenerateDataKey", foreign));
}

#[test]
fn glob_matcher_edge_cases() {
    assert!(glob_match(b"*", b"", false));
    assert!(glob_match(b"a*b*c", b"aXXbYYbc", false));
    assert!(!glob_match(b"a*b*c", b"aXXbYYbd", false));
    assert!(glob_match(b"a**", b"a", false));
    assert!(!glob_match(b"a?", b"a", false));
    assert!(glob_match(b"?", "é".as_bytes(), false));
    assert!(glob_match(b"KMS:*key", b"kms:DescribeKey", true));
    assert!(!glob_match(b"KMS:*key", b"kms:DescribeKey", false));
}

/// Reference matcher: plain recursion over chars.
fn glob_reference(p: &[char], t: &[char], ignore_case: bool) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob_reference(&p[1..], t, ignore_case)
                || (!t.is_empty() && glob_reference(p, &t[1..], ignore_case))
        }
        (Some('?'), Some(_)) => glob_reference(&p[1..], &t[1..], ignore_case),
        (Some(a), Some(b)) => {
            let same = if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            };
            same && glob_reference(&p[1..], &t[1..], ignore_case)
        }
        _ => false,
    }
}

proptest::proptest! {
    #[test]
    fn glob_agrees_with_reference(
        p in "[ab*?é]{0,8}",
        t in "[abAé]{0,10}",
        ignore_case: bool,
    ) {
        let pc: Vec<char> = p.chars().collect();
        let tc: Vec<char> = t.chars().collect();
        proptest::prop_assert_eq!(
            glob_match(p.as_bytes(), t.as_bytes(), ignore_case),
            glob_reference(&pc, &tc, ignore_case)
        );
    }
}

#[test]
fn not_action_and_not_principal() {
    let f = fixture();
    let p = policy(&format!(
        r#"[{{"Effect": "Allow", "Principal": {{"AWS": "{}"}},
              "NotAction": ["kms:PutKeyPolicy", "kms:Schedule*"], "Resource": "*"}},
            {{"Effect": "Deny", "NotPrincipal": {{"AWS": "{}"}},
              "Action": "kms:Decrypt", "Resource": "*"}}]"#,
        f.user, f.root
    ));
    assert!(p.allows(&f.user, "kms:Encrypt", &f.key));
    assert!(!p.allows(&f.user, "kms:PutKeyPolicy", &f.key));
    assert!(!p.allows(&f.user, "kms:ScheduleKeyDeletion", &f.key));
    assert!(
        !p.allows(&f.user, "kms:Decrypt", &f.key),
        "denied by NotPrincipal"
    );
}

#[test]
fn resource_mismatch_does_not_apply() {
    let f = fixture();
    let other = f.scope.key_arn(&KeyId::generate());
    let p = policy(&format!(
        r#"{{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "{}"}}"#,
        f.key
    ));
    assert!(p.allows(&f.user, "kms:Encrypt", &f.key));
    assert!(!p.allows(&f.user, "kms:Encrypt", &other));
}

#[test]
fn bare_account_id_is_the_root_only() {
    let f = fixture();
    let p = policy(&format!(
        r#"{{"Effect": "Allow", "Principal": {{"AWS": "{}"}}, "Action": "kms:*",
             "Resource": "*"}}"#,
        f.scope.account_id
    ));
    assert!(p.allows(&f.root, "kms:Encrypt", &f.key));
    assert!(
        !p.allows(&f.user, "kms:Encrypt", &f.key),
        "no IAM delegation"
    );
}

#[test]
fn supported_conditions_are_evaluated() {
    let f = fixture();
    let p = policy(&format!(
        r#"[{{"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
              "Condition": {{"StringEquals": {{"kms:CallerAccount": "{}"}}}}}},
            {{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
              "Condition": {{"StringLike": {{"aws:PrincipalArn": "*:user/uid-100?"}}}}}}]"#,
        f.scope.account_id
    ));
    assert!(p.allows(&f.user, "kms:Encrypt", &f.key));
    assert!(!p.allows("arn:aws:iam::444455556666:root", "kms:Encrypt", &f.key));
    assert!(p.allows(&f.user, "kms:Decrypt", &f.key));
    assert!(!p.allows(&f.root, "kms:Decrypt", &f.key));
}

#[test]
fn negated_conditions_hold_where_no_value_matches_as_in_deny_everyone_but_the_admin() {
    let f = fixture();
    let p = policy(&format!(
        r#"[{{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}},
            {{"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
              "Condition": {{"StringNotEquals": {{"aws:PrincipalArn": "{user}"}}}}}},
            {{"Effect": "Deny", "Principal": "*", "Action": "kms:Sign", "Resource": "*",
              "Condition": {{"StringNotLikeIfExists": {{"aws:PrincipalArn": ["*:user/uid-100?"]}}}}}},
            {{"Effect": "Deny", "Principal": "*", "Action": "kms:Verify", "Resource": "*",
              "Condition": {{"StringNotEqualsIfExists": {{"kms:CallerAccount": "{account}"}}}}}}]"#,
        user = f.user,
        account = f.scope.account_id
    ));
    // Only the named user escapes the first Deny: root is denied Decrypt, the user is not.
    assert_eq!(p.verdict(&f.user, "kms:Decrypt", &f.key), PolicyVerdict::Allow);
    assert_eq!(
        p.verdict(&f.root, "kms:Decrypt", &f.key),
        PolicyVerdict::ExplicitDeny
    );
    // A pattern: uid-1001 matches it, so is not denied; root does not.
    assert!(p.allows(&f.user, "kms:Sign", &f.key));
    assert!(!p.allows(&f.root, "kms:Sign", &f.key));
    // The account: everyone of this account passes, another account's root is denied.
    assert!(p.allows(&f.root, "kms:Verify", &f.key));
    assert!(!p.allows("arn:aws:iam::444455556666:root", "kms:Verify", &f.key));
    // Actions no Deny names are as the Allow says.
    assert!(p.allows(&f.root, "kms:Encrypt", &f.key));
}

#[test]
fn a_principal_with_a_wildcard_in_part_of_it_is_malformed_not_a_match_for_no_one() {
    for principal in [
        "arn:aws:iam::111122223333:user/uid-*",
        "arn:aws:iam::111122223333:user/uid-100?",
        "arn:aws:iam::*:root",
    ] {
        let text = format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Deny",
                 "Principal": {{"AWS": "{principal}"}}, "Action": "kms:*", "Resource": "*"}}]}}"#
        );
        let message = malformed_message(&text);
        assert!(message.contains(principal), "{message}");
        assert!(message.contains("wildcard"), "{message}");
    }
    // "*" alone is everyone, as before.
    let f = fixture();
    let p = policy(
        r#"[{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*"}]"#,
    );
    assert!(p.allows(&f.user, "kms:Encrypt", &f.key));
}

/// A policy stored by a build that took a partial wildcard (as the literal ARN it is) must stay
/// readable: unread, it would stop the data directory opening and lock the root out of the key.
#[test]
fn a_stored_policy_with_a_partial_wildcard_reads_as_it_was_stored_matching_no_one() {
    let f = fixture();
    let text = format!(
        r#"{{"Version": "2012-10-17", "Statement": [
             {{"Effect": "Allow", "Principal": {{"AWS": "{root}"}}, "Action": "kms:*",
               "Resource": "*"}},
             {{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::111122223333:user/uid-*"}},
               "Action": "kms:Encrypt", "Resource": "*"}},
             {{"Effect": "Deny", "Principal": {{"AWS": "arn:aws:iam::111122223333:user/*"}},
               "Action": "kms:Decrypt", "Resource": "*"}}]}}"#,
        root = f.root
    );
    assert!(KeyPolicy::parse(&text).is_err(), "given, it is refused");
    let p = KeyPolicy::parse_stored(&text).unwrap();
    assert_eq!(p.verdict(&f.root, "kms:PutKeyPolicy", &f.key), PolicyVerdict::Allow);
    assert_eq!(p.verdict(&f.root, "kms:Decrypt", &f.key), PolicyVerdict::Allow);
    assert_eq!(p.verdict(&f.user, "kms:Encrypt", &f.key), PolicyVerdict::ImplicitDeny);
    assert_eq!(p.verdict(&f.user, "kms:Decrypt", &f.key), PolicyVerdict::ImplicitDeny);
}

#[test]
fn unsupported_condition_fails_closed_both_ways() {
    let f = fixture();
    let p = policy(&format!(
        r#"[{{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}},
            {{"Effect": "Allow", "Principal": {{"AWS": "{user}"}}, "Action": "kms:Sign",
              "Resource": "*",
              "Condition": {{"Bool": {{"aws:SecureTransport": "true"}}}}}},
            {{"Effect": "Deny", "Principal": {{"AWS": "{user}"}}, "Action": "kms:Decrypt",
              "Resource": "*",
              "Condition": {{"StringEquals": {{"kms:EncryptionContext:team": "x"}}}}}}]"#,
        user = f.user
    ));
    // An Allow with an unsupported operator grants nothing...
    let q = policy(&format!(
        r#"{{"Effect": "Allow", "Principal": {{"AWS": "{}"}}, "Action": "kms:Sign",
             "Resource": "*",
             "Condition": {{"Bool": {{"aws:SecureTransport": "true"}}}}}}"#,
        f.user
    ));
    assert!(!q.allows(&f.user, "kms:Sign", &f.key));
    // ...and the Deny with an unsupported key always denies.
    assert!(!p.allows(&f.user, "kms:Decrypt", &f.key));
    assert!(p.allows(&f.user, "kms:Encrypt", &f.key));
    assert!(
        p.allows(&f.root, "kms:Decrypt", &f.key),
        "deny names only the user"
    );
    // A supported operator on an unsupported key in an Allow also grants nothing.
    let r = policy(&format!(
        r#"{{"Effect": "Allow", "Principal": {{"AWS": "{}"}}, "Action": "kms:Encrypt",
             "Resource": "*",
             "Condition": {{"StringEquals": {{"kms:ViaService": "s3.amazonaws.com"}}}}}}"#,
        f.user
    ));
    assert!(!r.allows(&f.user, "kms:Encrypt", &f.key));
}

#[test]
fn lockout_safety() {
    let f = fixture();
    let p = KeyPolicy::parse(&default_policy(&f.scope)).unwrap();
    p.check_lockout_safety(&f.root, &f.key).unwrap();
    let e = p.check_lockout_safety(&f.user, &f.key).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedPolicyDocumentException);

    let only_encrypt = policy(&format!(
        r#"{{"Effect": "Allow", "Principal": {{"AWS": "{}"}}, "Action": "kms:Encrypt",
             "Resource": "*"}}"#,
        f.root
    ));
    let e = only_encrypt
        .check_lockout_safety(&f.root, &f.key)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedPolicyDocumentException);
    assert_eq!(e.message(), LOCKOUT_MESSAGE);
}

#[test]
fn size_limit() {
    let f = fixture();
    let base = default_policy(&f.scope);
    let at_limit = format!(
        "{base}{}",
        " ".repeat(limits::MAX_POLICY_BYTES - base.len())
    );
    assert!(KeyPolicy::parse(&at_limit).is_ok());
    let big = format!("{base}{}", " ".repeat(33 * 1024 - base.len()));
    let e = KeyPolicy::parse(&big).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceededException);
    assert!(e.message().contains("33792"), "{e}");
}

#[test]
fn malformed_documents_name_the_problem() {
    let ok_stmt = r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}"#;
    let with = |extra: &str| {
        format!(
            r#"{{"Version": "2012-10-17", "Statement": [{ok_stmt}, {{"Sid": "S2", {extra}}}]}}"#
        )
    };
    let cases: Vec<(String, &[&str])> = vec![
        ("not json".into(), &["not valid JSON"]),
        ("[]".into(), &["JSON object"]),
        (r#"{"Version": "2012-10-17"}"#.into(), &["'Statement'"]),
        (r#"{"Statement": []}"#.into(), &["'Statement'", "empty"]),
        (r#"{"Statement": "x"}"#.into(), &["'Statement'"]),
        (
            format!(r#"{{"Version": "2012-10-17", "Statement": {ok_stmt}, "Foo": 1}}"#),
            &["'Foo'"],
        ),
        (
            format!(r#"{{"Version": "2020-01-01", "Statement": {ok_stmt}}}"#),
            &["'Version'", "2020-01-01"],
        ),
        (r#"{"Statement": [1]}"#.into(), &["Statement[0]", "object"]),
        (
            with(r#""Principal": "*", "Action": "kms:*", "Resource": "*""#),
            &["Statement[1]", "\"S2\"", "'Effect'", "missing"],
        ),
        (
            with(r#""Effect": "allow", "Principal": "*", "Action": "kms:*", "Resource": "*""#),
            &["Statement[1]", "'Effect'", "\"Allow\""],
        ),
        (
            with(r#""Effect": "Allow", "Action": "kms:*", "Resource": "*""#),
            &["Statement[1]", "'Principal'", "missing"],
        ),
        (
            with(r#""Effect": "Allow", "Principal": "*", "Resource": "*""#),
            &["Statement[1]", "'Action'", "missing"],
        ),
        (
            with(r#""Effect": "Allow", "Principal": "*", "Action": "kms:*""#),
            &["Statement[1]", "'Resource'", "missing"],
        ),
        (
            with(
                r#""Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
                   "Bogus": true"#,
            ),
            &["Statement[1]", "unknown member 'Bogus'"],
        ),
        (
            with(
                r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*""#,
            ),
            &["Statement[1]", "'Action'", "s3:GetObject"],
        ),
        (
            with(
                r#""Effect": "Allow", "Principal": "*", "Action": "kms:*",
                   "NotAction": "kms:Sign", "Resource": "*""#,
            ),
            &["'Action'", "'NotAction'", "both"],
        ),
        (
            with(r#""Effect": "Allow", "Principal": "*", "Action": [], "Resource": "*""#),
            &["'Action'", "empty"],
        ),
        (
            with(
                r#""Effect": "Allow", "Principal": {"Bad": "x"}, "Action": "kms:*", "Resource": "*""#,
            ),
            &["'Principal'", "'Bad'"],
        ),
        (
            with(
                r#""Effect": "Allow", "Principal": "someone", "Action": "kms:*", "Resource": "*""#,
            ),
            &["'Principal'"],
        ),
        (
            with(
                r#""Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
                   "Condition": {"StringEquals": "x"}"#,
            ),
            &["'Condition'", "StringEquals"],
        ),
        (
            r#"{"Statement": {"Sid": 3, "Effect": "Allow"}}"#.into(),
            &["Statement[0]", "'Sid'"],
        ),
    ];
    for (text, needles) in &cases {
        let message = malformed_message(text);
        for needle in *needles {
            assert!(
                message.contains(needle),
                "message {message:?} lacks {needle:?} for {text}"
            );
        }
    }
}

#[test]
fn accepted_forms() {
    let f = fixture();
    // Statement as a single object, Version 2008-10-17, string-or-array everywhere.
    let p = KeyPolicy::parse(&format!(
        r#"{{"Version": "2008-10-17", "Id": "x", "Statement": {{
             "Sid": "one", "Effect": "Allow",
             "Principal": {{"AWS": ["{}", "{}"], "Service": "logs.amazonaws.com"}},
             "Action": "kms:Encrypt", "Resource": ["{}"]}}}}"#,
        f.user, f.root, f.key
    ))
    .unwrap();
    assert!(p.allows(&f.user, "kms:Encrypt", &f.key));
    assert!(p.allows(&f.root, "kms:Encrypt", &f.key));
    assert!(!p.allows(&f.user, "kms:Decrypt", &f.key));
}
