//! The range each operation holds its integer request members to: what the AWS JSON decoder
//! states when a body's integer does not even fit the member's Rust type (`"NumberOfBytes":
//! -5` or `"Limit": 5000000000` into a `u32`).
//!
//! Why a table here: AWS reads such a value as the integer it is and refuses it in validation,
//! naming the bound it crosses. kmscks's service never sees it — serde refuses it while
//! decoding — and the service's own checks (in `kms`, `engine`, `hsm`, `service`) sit in layers
//! the protocol may not name (`tests/layering.rs`). So the decoder holds each member's range
//! itself. The bounds are the `types::limits` (or `api`) constants the service checks against,
//! named here and never written out again; which constant an operation's member is held to is
//! stated both here and at the service's check, and `tests/aws_json_ranges.rs` holds the two
//! together: for every integer member of every request, the service refuses the value just
//! past each bound this table gives, for that bound. A member not listed has no range but its
//! type's (a timeout, a key handle).

use crate::api::kms::LOOKUP_EVENTS_MAX_RESULTS_RANGE;
use crate::ops::Op;
use crate::types::limits::{
    DESCRIBE_BACKUPS_MAX_RESULTS, DESCRIBE_CLUSTERS_MAX_RESULTS, FAULT_DURATION_MS,
    LIST_ALIASES_LIMIT, LIST_GRANTS_LIMIT, LIST_LIMIT, LIST_ROTATIONS_LIMIT, LIST_TAGS_LIMIT,
    LIST_TAGS_MAX_RESULTS, MAX_HSM_LATENCY_MS, NUMBER_OF_BYTES, PENDING_WINDOW_MODEL_DAYS,
    ROTATION_PERIOD_DAYS,
};

/// One operation's member and its range.
struct Range {
    op: Op,
    /// The member as AWS names it.
    member: &'static str,
    /// `(min, max)`, inclusive.
    range: (u64, u64),
}

/// The table, from rows `<operation> "<member>" <range>;`: those of `u32` members, then those
/// of `u64` members.
macro_rules! ranges {
    (
        u32: { $($op:ident $member:literal $range:expr;)* }
        u64: { $($op64:ident $member64:literal $range64:expr;)* }
    ) => {
        const TABLE: &[Range] = &[
            $(Range { op: Op::$op, member: $member, range: ($range.0 as u64, $range.1 as u64) },)*
            $(Range { op: Op::$op64, member: $member64, range: $range64 },)*
        ];
    };
}

ranges! {
    u32: {
        DescribeCustomKeyStores "Limit" LIST_LIMIT;
        ListKeys "Limit" LIST_LIMIT;
        ListKeyPolicies "Limit" LIST_LIMIT;
        ListResourceTags "Limit" LIST_TAGS_LIMIT;
        ListAliases "Limit" LIST_ALIASES_LIMIT;
        ListGrants "Limit" LIST_GRANTS_LIMIT;
        ListRetirableGrants "Limit" LIST_GRANTS_LIMIT;
        ListKeyRotations "Limit" LIST_ROTATIONS_LIMIT;
        // The model's range: a value inside it and outside 7–30 is the service's own refusal.
        ScheduleKeyDeletion "PendingWindowInDays" PENDING_WINDOW_MODEL_DAYS;
        EnableKeyRotation "RotationPeriodInDays" ROTATION_PERIOD_DAYS;
        GenerateDataKey "NumberOfBytes" NUMBER_OF_BYTES;
        GenerateDataKeyWithoutPlaintext "NumberOfBytes" NUMBER_OF_BYTES;
        GenerateRandom "NumberOfBytes" NUMBER_OF_BYTES;
        // A batch's items are the single operation's requests.
        GenerateDataKeyBatch "NumberOfBytes" NUMBER_OF_BYTES;
        GenerateDataKeyWithoutPlaintextBatch "NumberOfBytes" NUMBER_OF_BYTES;
        LookupEvents "MaxResults" LOOKUP_EVENTS_MAX_RESULTS_RANGE;
        DescribeClusters "MaxResults" DESCRIBE_CLUSTERS_MAX_RESULTS;
        DescribeBackups "MaxResults" DESCRIBE_BACKUPS_MAX_RESULTS;
        ListHsmTags "MaxResults" LIST_TAGS_MAX_RESULTS;
        // A fault's variant's member. The service checks no least latency: 0 clears it.
        InjectFault "LatencyMs" (u32::MIN, MAX_HSM_LATENCY_MS);
    }
    u64: {
        InjectFault "DurationMs" FAULT_DURATION_MS;
    }
}

/// The range `op` holds its integer member `member` (AWS's name, e.g. `Limit`) to, if any.
pub(super) fn of(op: Op, member: &str) -> Option<(u64, u64)> {
    TABLE
        .iter()
        .find(|r| r.op == op && r.member == member)
        .map(|r| r.range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_member_has_its_operations_range_and_another_none() {
        assert_eq!(of(Op::ListKeys, "Limit"), Some((1, 1000)));
        assert_eq!(of(Op::ListAliases, "Limit"), Some((1, 100)));
        assert_eq!(of(Op::GenerateRandom, "NumberOfBytes"), Some((1, 1024)));
        assert_eq!(of(Op::InjectFault, "DurationMs"), Some(FAULT_DURATION_MS));
        assert_eq!(of(Op::WaitForConnection, "TimeoutMillis"), None);
        assert_eq!(of(Op::ListKeys, "NumberOfBytes"), None);
    }

    #[test]
    fn every_member_is_listed_once_per_operation_and_is_a_member_of_its_request() {
        for (i, &Range { op, member, range }) in TABLE.iter().enumerate() {
            assert!(
                !TABLE[..i].iter().any(|r| r.op == op && r.member == member),
                "{op:?} {member} twice"
            );
            assert!(range.0 <= range.1, "{op:?} {member}");
            // A batch's member is its items', a fault's its variant's; every other is the
            // request's own.
            let (members, _) = super::super::aws_json::request_members(op);
            let nested = op.name().ends_with("Batch") || op == Op::InjectFault;
            assert!(
                nested || members.contains(&member),
                "{op:?} has no {member}"
            );
        }
    }
}
