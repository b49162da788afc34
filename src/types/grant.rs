//! A grant's constraints (`GrantConstraints`) and the one rule that decides whether they hold
//! for a request's encryption context: the control plane (CreateGrant's own checks) and the
//! data-plane engine (every Encrypt, Decrypt, ReEncrypt and GenerateDataKey a grant allows)
//! both ask here, so the two cannot disagree. It lives in `types` because the engine, below
//! `api`, must read it.
//!
//! AWS's rule: in a constraint, the key of each pair is compared without regard to case, the
//! value case-sensitively. `EncryptionContextSubset` holds when every pair of the constraint
//! is in the request's context; `EncryptionContextEquals` when the request's context is exactly
//! the constraint's pairs.

use serde::{Deserialize, Serialize};

use super::EncryptionContext;

/// CreateGrant's `Constraints`: at most one of the two is given in practice; when both are,
/// both must hold.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct GrantConstraints {
    /// Pairs the request's encryption context must include.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_context_subset: Option<EncryptionContext>,
    /// Pairs the request's encryption context must be, exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_context_equals: Option<EncryptionContext>,
}

/// Whether two encryption context keys are the same for a constraint (case folded, without
/// allocating).
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.eq_ignore_ascii_case(b)
        || a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
}

/// Whether `context` holds the pair (`key` folded, `value` exact).
fn has_pair(context: &EncryptionContext, key: &str, value: &str) -> bool {
    // The exact key first: the common case costs a map lookup.
    context.get(key).is_some_and(|v| v == value)
        || context.iter().any(|(k, v)| v == value && same_key(k, key))
}

/// Two keys of a constraint's `map` that differ only in case, if any: a constraint compares
/// keys without regard to case, so such a map cannot say what it means (CreateGrant refuses it).
pub fn keys_differing_only_in_case(map: &EncryptionContext) -> Option<(&str, &str)> {
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.iter().enumerate().find_map(|(i, a)| {
        keys[i + 1..]
            .iter()
            .find(|b| same_key(a, b))
            .map(|b| (*a, *b))
    })
}

/// Whether every pair of `part` is in `whole`.
fn included(part: &EncryptionContext, whole: &EncryptionContext) -> bool {
    part.iter().all(|(k, v)| has_pair(whole, k, v))
}

impl GrantConstraints {
    /// Whether neither constraint is given (an empty map counts as not given, as on AWS).
    pub fn is_empty(&self) -> bool {
        self.encryption_context_subset
            .as_ref()
            .is_none_or(|c| c.is_empty())
            && self
                .encryption_context_equals
                .as_ref()
                .is_none_or(|c| c.is_empty())
    }

    /// Whether the constraints hold for a request with this encryption context.
    pub fn hold_for(&self, context: &EncryptionContext) -> bool {
        let subset = self
            .encryption_context_subset
            .as_ref()
            .is_none_or(|s| included(s, context));
        // As many pairs, and each way: with keys folded, the count alone proves nothing (a
        // constraint with two keys differing only in case would let one pair of the
        // request's go unchecked).
        let equals = self.encryption_context_equals.as_ref().is_none_or(|e| {
            e.len() == context.len() && included(e, context) && included(context, e)
        });
        subset && equals
    }

    /// Whether a grant with these constraints allows no more than one with `parent`'s: what
    /// AWS asks of a grant created through a constrained grant's CreateGrant permission.
    pub fn at_least_as_strict_as(&self, parent: &GrantConstraints) -> bool {
        let empty = EncryptionContext::new();
        let mine_equals = self.encryption_context_equals.as_ref();
        if let Some(p) = parent.encryption_context_equals.as_ref() {
            let same =
                mine_equals.is_some_and(|m| m.len() == p.len() && included(p, m) && included(m, p));
            if !same {
                return false;
            }
        }
        if let Some(p) = parent.encryption_context_subset.as_ref() {
            // Every context this grant allows must include the parent's pairs.
            let mine_subset = self.encryption_context_subset.as_ref().unwrap_or(&empty);
            let covered = included(p, mine_subset) || mine_equals.is_some_and(|m| included(p, m));
            if !covered {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn subset(pairs: &[(&str, &str)]) -> GrantConstraints {
        GrantConstraints {
            encryption_context_subset: Some(ctx(pairs)),
            ..GrantConstraints::default()
        }
    }

    fn equals(pairs: &[(&str, &str)]) -> GrantConstraints {
        GrantConstraints {
            encryption_context_equals: Some(ctx(pairs)),
            ..GrantConstraints::default()
        }
    }

    #[test]
    fn a_subset_constraint_holds_when_the_request_includes_its_pairs_keys_folded_values_exact() {
        let c = subset(&[("Dept", "IT")]);
        assert!(c.hold_for(&ctx(&[("Dept", "IT")])));
        assert!(c.hold_for(&ctx(&[("dept", "IT"), ("Project", "x")])));
        assert!(
            !c.hold_for(&ctx(&[("Dept", "it")])),
            "values are case-sensitive"
        );
        assert!(!c.hold_for(&ctx(&[])));
        assert!(!c.hold_for(&ctx(&[("Other", "IT")])));
    }

    #[test]
    fn an_equals_constraint_holds_for_exactly_its_pairs() {
        let c = equals(&[("Dept", "IT"), ("Env", "prod")]);
        assert!(c.hold_for(&ctx(&[("Env", "prod"), ("DEPT", "IT")])));
        assert!(!c.hold_for(&ctx(&[("Dept", "IT")])));
        assert!(!c.hold_for(&ctx(&[("Dept", "IT"), ("Env", "prod"), ("More", "x")])));
    }

    #[test]
    fn an_equals_constraint_with_keys_differing_only_in_case_admits_no_pair_it_does_not_name() {
        // Such a map is refused at CreateGrant; one stored before still means no more than its
        // pairs: both of its pairs matching the request's one `tenant` must not leave the
        // request's second pair unchecked.
        let c = equals(&[("tenant", "a"), ("Tenant", "a")]);
        assert!(!c.hold_for(&ctx(&[("tenant", "a"), ("purpose", "anything")])));
        assert!(c.hold_for(&ctx(&[("tenant", "a"), ("Tenant", "a")])));
        assert_eq!(
            keys_differing_only_in_case(&ctx(&[("tenant", "a"), ("Tenant", "a")])),
            Some(("Tenant", "tenant"))
        );
        assert_eq!(
            keys_differing_only_in_case(&ctx(&[("a", "1"), ("b", "1")])),
            None
        );
    }

    #[test]
    fn no_constraint_holds_for_any_context_and_empty_maps_count_as_none() {
        assert!(GrantConstraints::default().hold_for(&ctx(&[("a", "b")])));
        assert!(subset(&[]).is_empty());
        assert!(!subset(&[("a", "b")]).is_empty());
    }

    #[test]
    fn a_derived_grant_must_be_at_least_as_strict_as_the_grant_that_allowed_it() {
        let parent = subset(&[("Dept", "IT")]);
        assert!(subset(&[("dept", "IT"), ("x", "y")]).at_least_as_strict_as(&parent));
        assert!(equals(&[("Dept", "IT")]).at_least_as_strict_as(&parent));
        assert!(!subset(&[("x", "y")]).at_least_as_strict_as(&parent));
        assert!(!GrantConstraints::default().at_least_as_strict_as(&parent));

        let parent = equals(&[("Dept", "IT")]);
        assert!(equals(&[("DEPT", "IT")]).at_least_as_strict_as(&parent));
        assert!(!subset(&[("Dept", "IT")]).at_least_as_strict_as(&parent));
        assert!(GrantConstraints::default().at_least_as_strict_as(&GrantConstraints::default()));
    }
}
