//! `kmscks cloudhsm …`: the simulated CloudHSM side, with `aws cloudhsmv2`'s verbs, flag names
//! and output shapes where a counterpart exists, and the CloudHSM CLI's user and key verbs.
//!
//! | verb | counterpart |
//! |---|---|
//! | `create-cluster [--hsm-type] [--subnet-ids S1 S2…] [--source-backup-id] [--region] [--tag-list Key=k,Value=v…] [--mode] [--network-type] [--backup-retention-policy]` | cloudhsmv2 (`--availability-zones A B…` is kmscks's: simulated subnets in those zones; `--mode`, `--network-type` and `--backup-retention-policy` are refused unless AWS's default) |
//! | `describe-clusters [--filters clusterIds=ID,…] [--region] [--max-results N] [--next-token T]`, `delete-cluster --cluster-id [--region]` | cloudhsmv2; a cluster is found only in its own Region, `--region`'s (default: the configured one) |
//! | `create-hsm --cluster-id [--region] --availability-zone [--ip-address]`, `delete-hsm --cluster-id [--region] --hsm-id` (or `--eni-id`, `--eni-ip`) | cloudhsmv2 (`--ip-address` is refused: kmscks assigns the address) |
//! | `initialize-cluster --cluster-id [--region] [--signed-cert file://] [--trust-anchor file://ca.pem]` | cloudhsmv2 (INITIALIZE_IN_PROGRESS, then INITIALIZED until its admin password is set, see below); without `--trust-anchor` kmscks makes a CA, signs the cluster's CSR, activates the cluster and returns the CA's PEM as `TrustAnchor` |
//! | `describe-backups [--filters] [--region] [--max-results N] [--next-token T] [--shared] [--sort-ascending]`, `copy-backup-to-region --backup-id [--region] --destination-region [--tag-list]`, `delete-backup --backup-id [--region]`, `restore-backup --backup-id [--region]` | cloudhsmv2; a backup is found only in its own Region, `--region`'s (default: the configured one) (`--shared` and `--sort-ascending` are refused; `--no-…` taken) |
//! | `cluster activate --cluster-id --password` | CloudHSM CLI: sets the admin password of an INITIALIZED cluster, which makes it ACTIVE |
//! | `modify-cluster --cluster-id [--region] --backup-retention-policy Type=DAYS,Value=N`, `modify-backup-attributes --backup-id [--region] --never-expires` | cloudhsmv2 |
//! | `tag-resource --resource-id [--region] --tag-list Key=k,Value=v…`, `untag-resource --resource-id [--region] --tag-key-list K…`, `list-tags --resource-id [--region] [--max-results] [--next-token]` | cloudhsmv2, on a cluster or a backup in `--region`'s Region |
//! | `create-backup --cluster-id` | kmscks extra: a backup now (this verb and the CloudHSM CLI's below find a cluster by its id alone) |
//! | `user create\|delete\|change-password\|list --cluster-id --username --role --password` | CloudHSM CLI |
//! | `login --cluster-id --username [--role] --password`, `logout --cluster-id --username` | CloudHSM CLI |
//! | `key list --cluster-id`, `key delete --cluster-id --key-reference --username --password` | CloudHSM CLI |
//! | `audit-log --cluster-id [--hsm-id]` | kmscks extra: the HSMs' audit logs (raw, hashes included) |
//! | `audit verify --cluster-id [--hsm-id]` / `--file F` `[--expect-hsm ID…]`, `audit export --cluster-id --hsm-id` | kmscks extra: the audit streams' hash chains checked by the client (`audit.rs`) |
//! | `fault KIND --cluster-id [--hsm-id] [--availability-zone] [--username] [--key-handle] [--latency-ms] [--duration-ms]` | kmscks extra: rehearse a failure and take it back; the kinds and their flags are the table in `fault.rs` (`kmscks cloudhsm fault --help`) |
//! | `fault list --cluster-id` | kmscks extra: every fault in force, each as the `Fault` that injects it |
//! | `inject-fault --cluster-id --fault JSON` | kmscks extra, the raw form: e.g. `--fault NetworkDown`, `--fault '{"HsmLost":"hsm-…"}'` |

use super::args::{opt, req, specs, ArgSpec, Kind::*};
use kmscks::ops::Op;

const CLUSTER_ID: ArgSpec = req("cluster-id", Str, "The cluster's id");
const USERNAME: ArgSpec = req("username", Str, "The HSM user");
const PASSWORD: ArgSpec = req("password", Password, "The user's password");
const BACKUP_ID: ArgSpec = req("backup-id", Str, "The backup's id");
/// `--region` (the global flag fills it) on the cloudhsmv2 verbs naming one cluster or backup:
/// both are regional, found only in their own Region, as on AWS.
const RESOURCE_REGION: ArgSpec = opt(
    "region",
    Str,
    "The cluster's or backup's Region (default: the configured one)",
);
const RESOURCE_ID: ArgSpec = req(
    "resource-id",
    Str,
    "A cluster (cluster-…) or a backup (backup-…)",
);
const NEXT_TOKEN: ArgSpec = opt("next-token", Str, "The previous page's NextToken");
/// `--hsm-type`'s help: AWS's types, and kmscks's default (a test holds it to
/// [`kmscks::api::hsm::HSM_TYPES`] and [`kmscks::api::hsm::DEFAULT_HSM_TYPE`]).
pub(crate) const HSM_TYPE_HELP: &str = "hsm1.medium or hsm2m.medium (default: hsm2m.medium)";

/// A cloudhsm verb: its path under `kmscks cloudhsm` and its flags.
pub(crate) type Verb = (&'static [&'static str], &'static [ArgSpec]);

/// The verb of a simulated-CloudHSM operation; `None` for the KMS operations.
pub(crate) fn verb(op: Op) -> Option<Verb> {
    Some(match op {
        Op::CreateCluster => (
            &["create-cluster"],
            specs![
                opt("hsm-type", Str, HSM_TYPE_HELP),
                opt(
                    "subnet-ids",
                    List,
                    "The cluster's subnets (subnet-<hex>), placed in <region>a, <region>b, … in order",
                ),
                opt(
                    "availability-zones",
                    List,
                    "kmscks: zones for simulated subnets (default: <region>a and <region>b)",
                ),
                opt("source-backup-id", Str, "Restore from this backup (READY, in --region)"),
                opt("region", Str, "The cluster's Region (default: the configured one)"),
                opt("tag-list", HsmTags, "Key=k,Value=v …"),
                // AWS's members kmscks does not honour: refused by name unless AWS's default.
                opt("mode", Str, "FIPS (the only mode simulated)"),
                opt("network-type", Str, "IPV4 (the only network type simulated)"),
                opt(
                    "backup-retention-policy",
                    Map,
                    "Not at creation: set it with modify-cluster",
                ),
            ],
        ),
        Op::ActivateCluster => (
            &["cluster", "activate"],
            specs![
                CLUSTER_ID,
                req("password", Password, "The admin password to set"),
            ],
        ),
        Op::DescribeClusters => (
            &["describe-clusters"],
            specs![
                opt(
                    "filters",
                    Filters,
                    "clusterIds=ID1,ID2 states=ACTIVE vpcIds=… or JSON",
                ),
                opt("region", Str, "The Region whose clusters to list (default: the configured one)"),
                opt("max-results", Int, "Page size, 1-25 (default: every cluster)"),
                NEXT_TOKEN,
            ],
        ),
        Op::DeleteCluster => (&["delete-cluster"], specs![CLUSTER_ID, RESOURCE_REGION]),
        Op::CreateHsm => (
            &["create-hsm"],
            specs![
                CLUSTER_ID,
                RESOURCE_REGION,
                req("availability-zone", Str, "One of the cluster's zones"),
                opt("ip-address", Str, "Not simulated: kmscks assigns every HSM's address"),
            ],
        ),
        Op::DeleteHsm => (
            &["delete-hsm"],
            specs![
                CLUSTER_ID,
                RESOURCE_REGION,
                opt("hsm-id", Str, "The HSM's id (or --eni-id, or --eni-ip)"),
                opt("eni-id", Str, "The HSM's network interface"),
                opt("eni-ip", Str, "The IP address of the HSM's network interface"),
            ],
        ),
        // One verb for both: without --trust-anchor kmscks makes the CA (see `choose_op`).
        Op::InitializeCluster | Op::InitializeClusterWithNewCa => (
            &["initialize-cluster"],
            specs![
                CLUSTER_ID,
                RESOURCE_REGION,
                opt(
                    "signed-cert",
                    Str,
                    "The cluster certificate signed by your CA (file://)",
                ),
                opt(
                    "trust-anchor",
                    Str,
                    "Your CA's certificate (file://ca.pem); absent: kmscks makes a CA",
                ),
            ],
        ),
        Op::ModifyCluster => (
            &["modify-cluster"],
            specs![
                CLUSTER_ID,
                RESOURCE_REGION,
                req(
                    "backup-retention-policy",
                    Map,
                    "Type=DAYS,Value=N (7-379) or JSON",
                ),
            ],
        ),
        Op::ModifyBackupAttributes => (
            &["modify-backup-attributes"],
            specs![
                BACKUP_ID,
                RESOURCE_REGION,
                opt("never-expires", Bool, "Exempt the backup from the retention policy (--no-never-expires: not)"),
            ],
        ),
        Op::TagHsmResource => (
            &["tag-resource"],
            specs![RESOURCE_ID, RESOURCE_REGION, req("tag-list", HsmTags, "Key=k,Value=v …")],
        ),
        Op::UntagHsmResource => (
            &["untag-resource"],
            specs![
                RESOURCE_ID,
                RESOURCE_REGION,
                req("tag-key-list", List, "The keys of the tags to remove"),
            ],
        ),
        Op::ListHsmTags => (
            &["list-tags"],
            specs![
                RESOURCE_ID,
                RESOURCE_REGION,
                opt("max-results", Int, "Page size, 1-100 (default: every tag)"),
                NEXT_TOKEN,
            ],
        ),
        Op::CreateBackup => (&["create-backup"], specs![CLUSTER_ID]),
        Op::DescribeBackups => (
            &["describe-backups"],
            specs![
                opt(
                    "filters",
                    Filters,
                    "backupIds=… sourceBackupIds=… clusterIds=… states=READY,PENDING_DELETION neverExpires=true … or JSON",
                ),
                opt("region", Str, "The Region whose backups to list (default: the configured one)"),
                opt("max-results", Int, "Page size, 1-50 (default: every backup)"),
                NEXT_TOKEN,
                opt("shared", Bool, "Not simulated: only this account's backups (--no-shared)"),
                opt("sort-ascending", Bool, "Not simulated: newest first (--no-sort-ascending)"),
            ],
        ),
        Op::CopyBackupToRegion => (
            &["copy-backup-to-region"],
            specs![
                BACKUP_ID,
                RESOURCE_REGION,
                req("destination-region", Str, "The Region to copy to"),
                opt("tag-list", HsmTags, "Tags for the copy: Key=k,Value=v …"),
            ],
        ),
        Op::DeleteBackup => (&["delete-backup"], specs![BACKUP_ID, RESOURCE_REGION]),
        Op::RestoreBackup => (&["restore-backup"], specs![BACKUP_ID, RESOURCE_REGION]),
        Op::CreateUser => (
            &["user", "create"],
            specs![
                CLUSTER_ID,
                USERNAME,
                opt("role", Str, "crypto-user or admin"),
                PASSWORD,
            ],
        ),
        Op::DeleteUser => (&["user", "delete"], specs![CLUSTER_ID, USERNAME]),
        Op::ChangePassword => (
            &["user", "change-password"],
            specs![
                CLUSTER_ID,
                USERNAME,
                opt("role", Str, "crypto-user or admin"),
                PASSWORD,
            ],
        ),
        Op::ListUsers => (&["user", "list"], specs![CLUSTER_ID]),
        Op::Login => (
            &["login"],
            specs![
                CLUSTER_ID,
                USERNAME,
                opt("role", Str, "crypto-user or admin"),
                PASSWORD,
            ],
        ),
        Op::Logout => (&["logout"], specs![CLUSTER_ID, USERNAME]),
        Op::ListKeyObjects => (&["key", "list"], specs![CLUSTER_ID]),
        Op::DeleteKeyObject => (
            &["key", "delete"],
            specs![
                CLUSTER_ID,
                req("key-reference", Int, "The key object's reference"),
                USERNAME,
                PASSWORD,
            ],
        ),
        Op::AuditLog => (
            &["audit-log"],
            specs![CLUSTER_ID, opt("hsm-id", Str, "Only this HSM")],
        ),
        Op::ListFaults => (&["fault", "list"], specs![CLUSTER_ID]),
        Op::InjectFault => (
            &["inject-fault"],
            specs![
                CLUSTER_ID,
                req(
                    "fault",
                    Json,
                    "NetworkDown, NetworkRestored, SecurityGroupBroken, or JSON such as {\"HsmLost\":\"hsm-…\"}",
                ),
            ],
        ),
        _ => return None,
    })
}

/// The operation a verb sends, given which flags were present: `initialize-cluster` without
/// `--trust-anchor` makes a CA ([`Op::InitializeClusterWithNewCa`]).
pub(crate) fn choose_op(op: Op, present: &dyn Fn(&str) -> bool) -> Op {
    match op {
        Op::InitializeCluster | Op::InitializeClusterWithNewCa if !present("trust-anchor") => {
            Op::InitializeClusterWithNewCa
        }
        Op::InitializeClusterWithNewCa => Op::InitializeCluster,
        other => other,
    }
}
