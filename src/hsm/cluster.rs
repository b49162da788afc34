//! Clusters: lookups, the DescribeClusters view (AWS's members, paged), CreateCluster (new or
//! restored from a backup), DeleteCluster, InitializeCluster (checking the customer's signed
//! certificate), `cluster activate`, ModifyCluster, and the passing states AWS shows on the
//! way (CREATE_IN_PROGRESS, INITIALIZE_IN_PROGRESS, DELETE_IN_PROGRESS: they last
//! [`HsmSettings::transition`](super::HsmSettings::transition), and the background worker ends
//! them with [`settle_cluster`]).
//!
//! A cluster's life from creation to activation is one subject; HSMs inside it, users, and key
//! objects are the sibling modules'.
//!
//! Clusters are regional, as on AWS: a cloudhsmv2 verb naming one (`cluster_in`) finds it only
//! in the request's Region, else the configured one.

use std::collections::{BTreeMap, BTreeSet};

use super::audit::{audit_all, opcode};
use super::backup::{ready_backup, take_backup};
use super::devices::SUBNET_ADDRESSES;
use super::paging::page;
use super::password::{check_hsm_password, hash_password, ROTATED_PASSWORD_LEN};
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::*;
use crate::hsm::pki::{self, CertificateAuthority};
use crate::secret::Password;
use crate::types::*;

/// First key handle handed out in a new cluster (CloudHSM handles look like 262162).
pub(super) const FIRST_HANDLE: u64 = 262_145;

// ---------------------------------------------------------------------------------------------
// Lookups

pub(super) fn parse_cluster_id(text: &str) -> Result<ClusterId> {
    ClusterId::parse_lenient(text).ok_or_else(|| {
        KmsErrorExt::validation_cloudhsm(text, "ClusterId", "cluster-[2-7a-zA-Z]{11,16}")
    })
}

/// Helpers building CloudHSM-flavoured validation errors.
struct KmsErrorExt;
impl KmsErrorExt {
    fn validation_cloudhsm(value: &str, member: &str, pattern: &'static str) -> crate::KmsError {
        let constraint = crate::error::Constraint::Pattern(pattern);
        err!(
            CloudHsmInvalidRequestException,
            "Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        )
    }
}

/// The cluster `id` in any Region, or CloudHsmResourceNotFoundException: what the CloudHSM
/// CLI's verbs and kmscks's extras find (they name a cluster by its id alone; the cloudhsmv2
/// verbs use [`cluster_in`]).
pub(super) fn cluster<'s>(state: &'s CloudHsmState, id: &str) -> Result<&'s Cluster> {
    let cid = parse_cluster_id(id)?;
    state.clusters.get(&cid).ok_or_else(|| {
        err!(
            CloudHsmResourceNotFoundException,
            "The cluster {id} does not exist."
        )
    })
}

/// The cluster `id` in `region`, or CloudHsmResourceNotFoundException naming both: what every
/// cloudhsmv2 verb naming a cluster finds (AWS's endpoint searches its own Region only; the
/// request's `Region` is that endpoint's, else the configured one).
pub(super) fn cluster_in<'s>(
    state: &'s CloudHsmState,
    region: &str,
    id: &str,
) -> Result<&'s Cluster> {
    let cid = parse_cluster_id(id)?;
    state
        .clusters
        .get(&cid)
        .filter(|c| c.region == region)
        .ok_or_else(|| {
            err!(
                CloudHsmResourceNotFoundException,
                "The cluster {id} does not exist in {region}."
            )
        })
}

/// The cluster `id`, which must be ACTIVE with an active HSM.
pub(super) fn active_cluster<'s>(state: &'s CloudHsmState, id: &str) -> Result<&'s Cluster> {
    let c = cluster(state, id)?;
    if c.state != ClusterState::Active {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Cluster {} is {}, not ACTIVE",
            c.id,
            c.state
        ));
    }
    if c.active_hsms().next().is_none() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Cluster {} has no active HSM",
            c.id
        ));
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// Descriptions

/// DescribeClusters view of a cluster.
pub(super) fn describe(cluster: &Cluster) -> ClusterDescription {
    let state = cluster.state;
    ClusterDescription {
        cluster_id: cluster.id.clone(),
        create_timestamp: cluster.created,
        hsms: cluster
            .hsms
            .values()
            .map(|h| describe_hsm(cluster, h))
            .collect(),
        hsm_type: cluster.hsm_type.clone(),
        security_group: cluster.security_group.clone(),
        source_backup_id: cluster.source_backup.clone(),
        state,
        subnet_mapping: cluster
            .subnets
            .iter()
            .map(|(az, s)| (az.clone(), s.id.to_string()))
            .collect(),
        vpc_id: format!("vpc-{}", &cluster.id.as_str()["cluster-".len()..]),
        certificates: Certificates {
            cluster_csr: cluster.pki.csr.clone(),
            cluster_certificate: cluster.pki.cluster_certificate.clone(),
        },
        backup_policy: BACKUP_POLICY.to_owned(),
        backup_retention_policy: BackupRetentionPolicy {
            kind: "DAYS".to_owned(),
            value: cluster.backup_retention_days.to_string(),
        },
        network_type: NETWORK_TYPE.to_owned(),
        mode: CLUSTER_MODE.to_owned(),
        state_message: state_message(state).to_owned(),
        tag_list: tag_list(&cluster.tags),
    }
}

/// The `StateMessage` of a cluster in `state`.
fn state_message(state: ClusterState) -> &'static str {
    match state {
        ClusterState::CreateInProgress => "The cluster is being created.",
        ClusterState::Uninitialized => {
            "The cluster is not initialized: create an HSM, sign the cluster CSR, then InitializeCluster."
        }
        ClusterState::InitializeInProgress => "The cluster is being initialized.",
        ClusterState::Initialized => {
            "The cluster is initialized: activate it by setting the admin password (cluster activate)."
        }
        ClusterState::Active => "The cluster is active.",
        ClusterState::DeleteInProgress => "The cluster is being deleted.",
        ClusterState::Deleted => "The cluster is deleted.",
        ClusterState::Degraded => "The cluster is degraded.",
        ClusterState::UpdateInProgress
        | ClusterState::ModifyInProgress
        | ClusterState::RollbackInProgress => "The cluster is being changed.",
    }
}

/// A tag map as cloudhsmv2's `TagList`.
pub(super) fn tag_list(tags: &BTreeMap<String, String>) -> Vec<HsmTag> {
    tags.iter()
        .map(|(key, value)| HsmTag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(super) fn describe_hsm(cluster: &Cluster, h: &Hsm) -> HsmDescription {
    HsmDescription {
        availability_zone: h.availability_zone.clone(),
        cluster_id: cluster.id.clone(),
        subnet_id: h.subnet_id.to_string(),
        eni_id: format!("eni-{}", &h.id.as_str()["hsm-".len()..]),
        eni_ip: h.eni_ip.clone(),
        hsm_id: h.id.clone(),
        hsm_type: cluster.hsm_type.clone(),
        state: h.state,
        state_message: h.state_message.clone().unwrap_or_else(|| match h.state {
            HsmState::Active => "The HSM is active.".to_owned(),
            other => format!("The HSM is {other}."),
        }),
    }
}

/// DescribeClusters: the clusters of one Region (the request's, else the configured one), with
/// AWS's `clusterIds`, `states` and `vpcIds` filters, a page at a time (`MaxResults`,
/// `NextToken`).
pub fn describe_clusters(
    state: &CloudHsmState,
    scope: &Scope,
    req: &DescribeClustersRequest,
) -> Result<DescribeClustersResponse> {
    for name in req.filters.keys() {
        if !matches!(name.as_str(), "clusterIds" | "states" | "vpcIds") {
            return Err(err!(
                CloudHsmInvalidRequestException,
                "Unknown filter {name}; use clusterIds, states or vpcIds"
            ));
        }
    }
    let region = scope.region_or(req.region.as_deref());
    let wanted = |name: &str, value: &str| {
        req.filters
            .get(name)
            .is_none_or(|vals| vals.iter().any(|v| v == value))
    };
    let (clusters, next_token) = page(
        "clusters",
        &state.clusters,
        req.max_results,
        limits::DESCRIBE_CLUSTERS_MAX_RESULTS,
        req.next_token.as_deref(),
        (ClusterId::as_str, ClusterId::parse),
        |_, c| {
            (c.region == region
                && wanted("clusterIds", c.id.as_str())
                && wanted("states", c.state.as_str()))
            .then(|| describe(c))
            .filter(|d| wanted("vpcIds", &d.vpc_id))
        },
    )?;
    Ok(DescribeClustersResponse {
        clusters,
        next_token,
    })
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

/// The zone of the `index`-th subnet given to CreateCluster: `<region>a`, `<region>b`, …
fn nth_zone(region: &str, index: usize) -> Result<String> {
    let letter = u8::try_from(index)
        .ok()
        .filter(|i| *i < 26)
        .map(|i| char::from(b'a' + i))
        .ok_or_else(|| {
            err!(
                CloudHsmInvalidRequestException,
                "Too many subnets: a Region has at most 26 availability zones"
            )
        })?;
    Ok(format!("{region}{letter}"))
}

/// The zone a subnet id already has in kmscks (it is a subnet of some cluster), if any.
fn known_zone<'s>(state: &'s CloudHsmState, id: &SubnetId) -> Option<&'s str> {
    state.clusters.values().find_map(|c| {
        c.subnets
            .iter()
            .find(|(_, s)| s.id == *id)
            .map(|(az, _)| az.as_str())
    })
}

/// The subnet `id` as a new cluster takes it from `SubnetIds`. On AWS a subnet is an object of
/// the VPC, shared by every cluster given it; kmscks keeps a copy of it in each cluster that
/// names it (`subnet-deleted` and `subnet-full` mark every copy, `fault::inject_fault`), and
/// CreateCluster reads the copies together (a deleted cluster's copy is gone with it): a subnet
/// deleted in any cluster no longer exists (refused, as AWS refuses an unknown subnet: the
/// remedy is new subnets), and one known from other clusters has the fewest free addresses any
/// copy has (a full subnet is full for every cluster). An id no cluster holds is a new subnet
/// with [`SUBNET_ADDRESSES`] free.
fn shared_subnet(state: &CloudHsmState, id: SubnetId) -> Result<Subnet> {
    let mut free_addresses = SUBNET_ADDRESSES;
    for copy in state
        .clusters
        .values()
        .flat_map(|c| c.subnets.values())
        .filter(|s| s.id == id)
    {
        if copy.deleted {
            return Err(err!(
                CloudHsmInvalidRequestException,
                "The subnet {id} does not exist (it was deleted): give CreateCluster new subnets"
            ));
        }
        free_addresses = free_addresses.min(copy.free_addresses);
    }
    Ok(Subnet {
        id,
        deleted: false,
        free_addresses,
    })
}

/// CreateCluster's private subnets, one per zone: from `SubnetIds` (each in a zone of the
/// Region: the one kmscks knows it in, else `<region>a`, `<region>b`, … in the order given;
/// each as other clusters left it, [`shared_subnet`]), from kmscks's `AvailabilityZones`, or
/// by default in the Region's `a` and `b` zones.
fn subnets(
    state: &CloudHsmState,
    region: &str,
    req: &CreateClusterRequest,
) -> Result<BTreeMap<String, Subnet>> {
    let fresh = |id: SubnetId| Subnet {
        id,
        deleted: false,
        free_addresses: SUBNET_ADDRESSES,
    };
    let placed: Vec<(String, Subnet)> = if !req.subnet_ids.is_empty() {
        if !req.availability_zones.is_empty() {
            return Err(err!(
                CloudHsmInvalidRequestException,
                "Give SubnetIds or AvailabilityZones, not both"
            ));
        }
        let mut given: Vec<Subnet> = Vec::with_capacity(req.subnet_ids.len());
        for text in &req.subnet_ids {
            let id = SubnetId::parse_lenient(text).ok_or_else(|| {
                KmsErrorExt::validation_cloudhsm(text, "subnetIds", SubnetId::PATTERN)
            })?;
            if given.iter().any(|s| s.id == id) {
                return Err(err!(
                    CloudHsmInvalidRequestException,
                    "Subnet {text} is given twice"
                ));
            }
            given.push(shared_subnet(state, id)?);
        }
        // Subnets kmscks knows keep their zone; the others take the Region's zones in order,
        // skipping those the known ones hold.
        let known: Vec<Option<String>> = given
            .iter()
            .map(|s| known_zone(state, &s.id).map(str::to_owned))
            .collect();
        let mut next = 0;
        let mut out = Vec::with_capacity(given.len());
        for (subnet, zone) in given.into_iter().zip(&known) {
            let zone = match zone {
                Some(z) => z.clone(),
                None => loop {
                    let z = nth_zone(region, next)?;
                    next += 1;
                    if !known.iter().flatten().any(|k| *k == z) {
                        break z;
                    }
                },
            };
            out.push((zone, subnet));
        }
        out
    } else if req.availability_zones.is_empty() {
        vec![
            (format!("{region}a"), fresh(SubnetId::generate())),
            (format!("{region}b"), fresh(SubnetId::generate())),
        ]
    } else {
        req.availability_zones
            .iter()
            .map(|az| (az.clone(), fresh(SubnetId::generate())))
            .collect()
    };
    let distinct: BTreeSet<&String> = placed.iter().map(|(az, _)| az).collect();
    if distinct.len() != placed.len() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Each subnet must be in a different availability zone"
        ));
    }
    for (az, subnet) in &placed {
        if !az.starts_with(region) || az.len() != region.len() + 1 {
            // A subnet kmscks knows keeps its zone: name it, or the zone seems made up.
            let of = if req.subnet_ids.is_empty() {
                String::new()
            } else {
                format!(" (of subnet {})", subnet.id.as_str())
            };
            return Err(err!(
                CloudHsmInvalidRequestException,
                "Availability zone {az}{of} is not in Region {region}"
            ));
        }
    }
    Ok(placed.into_iter().collect())
}

/// Puts `c` into the passing state `passing`: for [`HsmSettings::transition`] on the clock
/// (the background worker ends it, [`settle_cluster`]), or, with no transition, straight into
/// the state it leads to. Returns the description the operation answers: in `passing`, as on
/// AWS.
///
/// [`HsmSettings::transition`]: super::HsmSettings::transition
fn enter_passing(tx: &mut HsmTx<'_>, mut c: Cluster, passing: ClusterState) -> ClusterDescription {
    c.state = passing;
    let mut answer = describe(&c);
    answer.state = passing;
    if tx.settings.transition.is_zero() {
        c.state = c.settled_state();
        c.settles_at = None;
    } else {
        c.settles_at = Some(tx.now.plus(tx.settings.transition));
    }
    if c.state == ClusterState::Deleted {
        tx.push(HsmChange::DeleteCluster(c.id.clone()));
    } else {
        tx.push(HsmChange::PutCluster(Box::new(c)));
    }
    answer
}

/// Ends the passing state of cluster `id` if its time has come (the background worker's
/// task; doing nothing for a cluster that is gone, settled already, or not yet due).
pub fn settle_cluster(tx: &mut HsmTx<'_>, id: &ClusterId) {
    let Some(c) = tx.state.clusters.get(id) else {
        return;
    };
    if c.settles_at.is_none_or(|at| at > tx.now) {
        return;
    }
    let mut c = c.clone();
    c.state = c.settled_state();
    c.settles_at = None;
    if c.state == ClusterState::Deleted {
        tx.push(HsmChange::DeleteCluster(c.id.clone()));
    } else {
        tx.push(HsmChange::PutCluster(Box::new(c)));
    }
}

/// The clusters in a passing state and when each ends (what the background worker resumes
/// when an instance opens).
pub fn passing_clusters(state: &CloudHsmState) -> Vec<(ClusterId, Timestamp)> {
    state
        .clusters
        .values()
        .filter_map(|c| c.settles_at.map(|at| (c.id.clone(), at)))
        .collect()
}

/// The error for an operation that the cluster's state does not allow.
fn wrong_state(op: &str, c: &Cluster, wanted: &str) -> crate::KmsError {
    err!(
        CloudHsmInvalidRequestException,
        "{op}: cluster {} is {}, not {wanted}",
        c.id,
        c.state
    )
}

/// CreateCluster: a new cluster (CREATE_IN_PROGRESS, then UNINITIALIZED), or one restored from
/// a backup (CREATE_IN_PROGRESS, then ACTIVE, with the backup's certificates, users and key
/// objects).
pub fn create_cluster(
    tx: &mut HsmTx<'_>,
    req: &CreateClusterRequest,
) -> Result<ClusterDescription> {
    let id = ClusterId::generate();
    // The cluster's Region is the request's, else the configured one, as on AWS (where it is
    // the endpoint's); a source backup must be in it (backups are regional).
    let region = tx.scope.region_or(req.region.as_deref()).to_owned();
    let backup = match &req.source_backup_id {
        Some(bid) => Some(ready_backup(
            tx.state,
            tx.now,
            &region,
            bid.as_str(),
            "CreateCluster",
        )?),
        None => None,
    };
    let hsm_type = req
        .hsm_type
        .clone()
        .or_else(|| backup.map(|b| b.hsm_type.clone()))
        .unwrap_or_else(|| DEFAULT_HSM_TYPE.to_owned());
    if !HSM_TYPES.contains(&hsm_type.as_str()) {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Unsupported HsmType {hsm_type}: use one of {}",
            HSM_TYPES.join(", ")
        ));
    }
    if let Some(max) = tx.settings.max_clusters_per_region {
        let have = tx
            .state
            .clusters
            .values()
            .filter(|c| c.region == region)
            .count();
        if have >= max {
            return Err(err!(
                CloudHsmResourceLimitExceededException,
                "CreateCluster: {region} already has {have} clusters, the quota of clusters \
                 per Region ({max})"
            ));
        }
    }
    let subnets = subnets(tx.state, &region, req)?;
    let mut cluster = Cluster {
        id: id.clone(),
        region,
        state: ClusterState::CreateInProgress,
        hsm_type,
        created: tx.now,
        subnets,
        security_group: format!("sg-{}", &id.as_str()["cluster-".len()..]),
        security_group_ok: true,
        hsms: BTreeMap::new(),
        pki: ClusterPki::default(),
        wrapping_key: format!("cluster-{}", &id.as_str()["cluster-".len()..]),
        next_handle: FIRST_HANDLE,
        source_backup: None,
        faults: ClusterFaults::default(),
        settles_at: None,
        backup_retention_days: limits::DEFAULT_BACKUP_RETENTION_DAYS,
        tags: tag_map(&req.tag_list)?,
    };
    if let Some(b) = backup {
        cluster.pki = b.pki.clone();
        cluster.wrapping_key = b.wrapping_key.clone();
        cluster.next_handle = b.next_handle;
        cluster.source_backup = Some(b.id.clone());
        for u in &b.users {
            tx.push(HsmChange::PutUser(id.clone(), u.clone()));
        }
        for o in &b.objects {
            tx.push(HsmChange::PutObject(id.clone(), o.clone()));
        }
    } else {
        // A new lineage: its wrapping key must exist before the cluster does, so that the
        // first object wrap finds it. The committer creates it (outside this transaction).
        tx.create_key(cluster.wrapping_key.clone());
    }
    Ok(enter_passing(tx, cluster, ClusterState::CreateInProgress))
}

/// The tags of a TagList, checked as AWS checks them (at most [`limits::MAX_HSM_TAGS`], keys
/// 1–128 characters, values at most 256, no key twice).
pub(super) fn tag_map(list: &[HsmTag]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in list {
        if t.key.is_empty() || t.key.chars().count() > 128 || t.value.chars().count() > 256 {
            return Err(err!(
                CloudHsmInvalidRequestException,
                "Tag '{}': keys are 1-128 characters, values at most 256",
                t.key
            ));
        }
        if out.insert(t.key.clone(), t.value.clone()).is_some() {
            return Err(err!(
                CloudHsmInvalidRequestException,
                "Tag key '{}' is given twice",
                t.key
            ));
        }
    }
    if out.len() > limits::MAX_HSM_TAGS {
        return Err(err!(
            CloudHsmTagException,
            "A resource has at most {} tags",
            limits::MAX_HSM_TAGS
        ));
    }
    Ok(out)
}

/// DeleteCluster: only once every HSM is deleted. As on AWS, a final backup is taken of an
/// initialised cluster; the cluster is DELETE_IN_PROGRESS, then gone.
pub fn delete_cluster(tx: &mut HsmTx<'_>, req: &ClusterIdRequest) -> Result<ClusterDescription> {
    let region = tx.scope.region_or(req.region.as_deref());
    let c = cluster_in(tx.state, region, &req.cluster_id)?.clone();
    if matches!(
        c.state,
        ClusterState::CreateInProgress
            | ClusterState::InitializeInProgress
            | ClusterState::DeleteInProgress
    ) {
        return Err(wrong_state(
            "DeleteCluster",
            &c,
            "UNINITIALIZED, INITIALIZED or ACTIVE",
        ));
    }
    if !c.hsms.is_empty() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Cluster {} still has {} HSM(s); delete them before deleting the cluster",
            c.id,
            c.hsms.len()
        ));
    }
    if c.pki.cluster_certificate.is_some() {
        take_backup(tx, &c);
    }
    Ok(enter_passing(tx, c, ClusterState::DeleteInProgress))
}

/// The CSR an uninitialised cluster offers once its first HSM exists.
fn pending_csr(c: &Cluster) -> Result<String> {
    c.pki.csr.clone().ok_or_else(|| {
        err!(
            CloudHsmInvalidRequestException,
            "Cluster {} has no CSR yet: create an HSM first",
            c.id
        )
    })
}

/// What InitializeCluster checks and records: `SignedCert` must be the cluster's CSR signed by
/// `TrustAnchor`; both are kept, and the admin user is created with a password nobody knows
/// (`cluster activate` sets it). Returns the cluster with its certificates.
fn initialize(tx: &mut HsmTx<'_>, req: &InitializeClusterRequest) -> Result<Cluster> {
    let region = tx.scope.region_or(req.region.as_deref());
    let mut c = cluster_in(tx.state, region, &req.cluster_id)?.clone();
    if c.state != ClusterState::Uninitialized {
        return Err(wrong_state("InitializeCluster", &c, "UNINITIALIZED"));
    }
    let csr = pending_csr(&c)?;
    if req.trust_anchor.len() > limits::TRUST_ANCHOR_LEN.1 {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "TrustAnchor is longer than {} characters",
            limits::TRUST_ANCHOR_LEN.1
        ));
    }
    pki::verify_cluster_certificate(&csr, &req.signed_cert, &req.trust_anchor).map_err(|e| {
        err!(
            CloudHsmInvalidRequestException,
            "SignedCert is not the cluster CSR signed by TrustAnchor: {e}"
        )
    })?;
    c.pki.cluster_certificate = Some(req.signed_cert.clone());
    c.pki.trust_anchor = Some(req.trust_anchor.clone());
    let admin = HsmUser {
        username: ADMIN.into(),
        role: HsmUserRole::Admin,
        password: hash_password(
            tx,
            &c,
            ADMIN,
            &Password::generate(ROTATED_PASSWORD_LEN),
        )?,
        failed_logins: 0,
        session: None,
    };
    tx.push(HsmChange::PutUser(c.id.clone(), admin));
    audit_all(tx, &c, opcode::INIT_TOKEN, "SUCCESS", Some(ADMIN), None);
    Ok(c)
}

/// The admin user `cluster activate` gives a password.
const ADMIN: &str = "admin";

/// InitializeCluster, as on AWS: verifies that `SignedCert` is the cluster's CSR signed by
/// `TrustAnchor` and keeps both; the cluster is INITIALIZE_IN_PROGRESS, then INITIALIZED, and
/// `cluster activate` (setting the admin password) makes it ACTIVE.
pub fn initialize_cluster(
    tx: &mut HsmTx<'_>,
    req: &InitializeClusterRequest,
) -> Result<InitializeClusterResponse> {
    let c = initialize(tx, req)?;
    let answer = enter_passing(tx, c, ClusterState::InitializeInProgress);
    Ok(InitializeClusterResponse {
        state: answer.state,
        state_message: answer.state_message,
        trust_anchor: None,
    })
}

/// kmscks's one-step shortcut: makes a CA, signs the cluster's CSR with it, initialises and
/// activates the cluster (ACTIVE at once), and returns the CA certificate as `TrustAnchor`.
pub fn initialize_cluster_with_new_ca(
    tx: &mut HsmTx<'_>,
    req: &ClusterIdRequest,
) -> Result<InitializeClusterResponse> {
    let region = tx.scope.region_or(req.region.as_deref());
    let c = cluster_in(tx.state, region, &req.cluster_id)?;
    if c.state != ClusterState::Uninitialized {
        return Err(wrong_state("InitializeCluster", c, "UNINITIALIZED"));
    }
    let csr = pending_csr(c)?;
    let ca = CertificateAuthority::generate(&format!("kmscks customer CA for {}", c.id))
        .map_err(|e| err!(CloudHsmInternalFailureException, "{e}"))?;
    let signed = ca
        .sign_csr(&csr)
        .map_err(|e| err!(CloudHsmInternalFailureException, "{e}"))?;
    let req = InitializeClusterRequest {
        cluster_id: req.cluster_id.clone(),
        signed_cert: signed,
        trust_anchor: ca.certificate_pem().to_owned(),
        region: req.region.clone(),
    };
    let mut c = initialize(tx, &req)?;
    c.state = ClusterState::Active;
    c.settles_at = None;
    // As on AWS, activating a cluster takes a backup.
    take_backup(tx, &c);
    tx.push(HsmChange::PutCluster(Box::new(c)));
    Ok(InitializeClusterResponse {
        state: ClusterState::Active,
        state_message: state_message(ClusterState::Active).to_owned(),
        trust_anchor: Some(req.trust_anchor),
    })
}

/// `cluster activate` (CloudHSM CLI): sets the admin password of an INITIALIZED cluster, which
/// makes it ACTIVE.
pub fn activate_cluster(
    tx: &mut HsmTx<'_>,
    req: &ActivateClusterRequest,
) -> Result<ClusterDescription> {
    let mut c = cluster(tx.state, &req.cluster_id)?.clone();
    if c.state != ClusterState::Initialized {
        return Err(wrong_state("cluster activate", &c, "INITIALIZED"));
    }
    check_hsm_password(&req.password)?;
    let admin = HsmUser {
        username: ADMIN.into(),
        role: HsmUserRole::Admin,
        password: hash_password(tx, &c, ADMIN, &req.password)?,
        failed_logins: 0,
        session: None,
    };
    tx.push(HsmChange::PutUser(c.id.clone(), admin));
    audit_all(tx, &c, opcode::CHANGE_PSWD, "SUCCESS", Some(ADMIN), None);
    c.state = ClusterState::Active;
    c.settles_at = None;
    // As on AWS, activating a cluster takes a backup.
    take_backup(tx, &c);
    let answer = describe(&c);
    tx.push(HsmChange::PutCluster(Box::new(c)));
    Ok(answer)
}

/// ModifyCluster: the cluster's backup retention policy (`DAYS`, 7 to 379).
pub fn modify_cluster(tx: &mut HsmTx<'_>, req: &ModifyClusterRequest) -> Result<ClusterDescription> {
    let region = tx.scope.region_or(req.region.as_deref());
    let mut c = cluster_in(tx.state, region, &req.cluster_id)?.clone();
    let policy = &req.backup_retention_policy;
    let (lo, hi) = limits::BACKUP_RETENTION_DAYS;
    let days = policy
        .value
        .parse::<u32>()
        .ok()
        .filter(|d| policy.kind == "DAYS" && (lo..=hi).contains(d))
        .ok_or_else(|| {
            err!(
                CloudHsmInvalidRequestException,
                "BackupRetentionPolicy {{Type: {}, Value: {}}}: the type is DAYS and the value \
                 {lo} to {hi}",
                policy.kind,
                policy.value
            )
        })?;
    c.backup_retention_days = days;
    let answer = describe(&c);
    tx.push(HsmChange::PutCluster(Box::new(c)));
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsm::Wrapper;
    use crate::secret::{KeyMaterial, SecretBytes};

    /// A wrapper holding no key: any use of it is a test failure.
    struct NoKeys;

    impl Wrapper for NoKeys {
        fn wrap_key(&self, name: &str, _: &[u8], _: &KeyMaterial) -> Result<Vec<u8>> {
            panic!("wrap_key({name}) inside CreateCluster")
        }
        fn unwrap_key(&self, name: &str, _: &[u8], _: &[u8]) -> Result<KeyMaterial> {
            panic!("unwrap_key({name}) inside CreateCluster")
        }
        fn wrap_bytes(&self, name: &str, _: &[u8], _: &[u8]) -> Result<Vec<u8>> {
            panic!("wrap_bytes({name}) inside CreateCluster")
        }
        fn unwrap_bytes(&self, name: &str, _: &[u8], _: &[u8]) -> Result<SecretBytes> {
            panic!("unwrap_bytes({name}) inside CreateCluster")
        }
    }

    #[test]
    fn create_cluster_names_its_new_lineage_key_for_the_committer_to_create() {
        let state = CloudHsmState::default();
        let scope = Scope::default();
        let mut tx = HsmTx::new(&state, Timestamp(0), &scope, &NoKeys);
        let d = create_cluster(&mut tx, &CreateClusterRequest::default()).unwrap();
        let done = tx.finish();
        let Some(HsmChange::PutCluster(c)) = done.changes.last() else {
            panic!("no PutCluster in {:?}", done.changes)
        };
        assert_eq!(c.id, d.cluster_id);
        assert_eq!(done.new_keys, std::slice::from_ref(&c.wrapping_key));
    }

    fn created(state: &CloudHsmState, req: &CreateClusterRequest) -> Result<Cluster> {
        let scope = Scope::default();
        let mut tx = HsmTx::new(state, Timestamp(0), &scope, &NoKeys);
        create_cluster(&mut tx, req)?;
        let done = tx.finish();
        match done.changes.into_iter().last() {
            Some(HsmChange::PutCluster(c)) => Ok(*c),
            other => panic!("no PutCluster: {other:?}"),
        }
    }

    fn with_subnets(ids: &[&str]) -> CreateClusterRequest {
        CreateClusterRequest {
            subnet_ids: ids.iter().map(|s| s.to_string()).collect(),
            ..CreateClusterRequest::default()
        }
    }

    fn mapping(c: &Cluster) -> Vec<(String, String)> {
        describe(c).subnet_mapping.into_iter().collect()
    }

    #[test]
    fn subnet_ids_are_placed_in_the_regions_zones_in_the_order_given() {
        let state = CloudHsmState::default();
        let c = created(
            &state,
            &with_subnets(&["subnet-0f0f0f0f", "subnet-0123456789abcdef0", "subnet-ABCDEF12"]),
        )
        .unwrap();
        assert_eq!(
            mapping(&c),
            [
                ("us-east-1a".to_owned(), "subnet-0f0f0f0f".to_owned()),
                ("us-east-1b".to_owned(), "subnet-0123456789abcdef0".to_owned()),
                ("us-east-1c".to_owned(), "subnet-ABCDEF12".to_owned()),
            ]
        );
    }

    #[test]
    fn a_subnet_kmscks_knows_keeps_its_zone_and_the_others_fill_the_rest_in_order() {
        let mut state = CloudHsmState::default();
        let first = created(&state, &with_subnets(&["subnet-aaaaaaaa", "subnet-bbbbbbbb"])).unwrap();
        state.apply(HsmChange::PutCluster(Box::new(first)));
        // subnet-bbbbbbbb is us-east-1b's already; the new one takes us-east-1a.
        let c = created(&state, &with_subnets(&["subnet-bbbbbbbb", "subnet-cccccccc"])).unwrap();
        assert_eq!(
            mapping(&c),
            [
                ("us-east-1a".to_owned(), "subnet-cccccccc".to_owned()),
                ("us-east-1b".to_owned(), "subnet-bbbbbbbb".to_owned()),
            ]
        );
    }

    #[test]
    fn a_subnet_of_another_regions_zone_is_refused_naming_the_subnet_and_its_zone() {
        let mut state = CloudHsmState::default();
        let east = created(&state, &with_subnets(&["subnet-aaaaaaaa", "subnet-bbbbbbbb"])).unwrap();
        state.apply(HsmChange::PutCluster(Box::new(east)));
        let e = created(
            &state,
            &CreateClusterRequest {
                region: Some("us-west-2".into()),
                ..with_subnets(&["subnet-aaaaaaaa", "subnet-cccccccc"])
            },
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::CloudHsmInvalidRequestException);
        assert!(
            e.message().contains(
                "Availability zone us-east-1a (of subnet subnet-aaaaaaaa) is not in Region \
                 us-west-2"
            ),
            "{e}"
        );
        // Subnets kmscks does not know take the Region's own zones.
        let west = CreateClusterRequest {
            region: Some("us-west-2".into()),
            ..with_subnets(&["subnet-dddddddd", "subnet-cccccccc"])
        };
        assert_eq!(mapping(&created(&state, &west).unwrap())[0].0, "us-west-2a");
    }

    /// `state` with `c` recorded in it, as a committed CreateCluster leaves it.
    fn recorded(state: &mut CloudHsmState, c: Cluster) {
        state.apply(HsmChange::PutCluster(Box::new(c)));
    }

    #[test]
    fn a_cluster_is_found_only_in_its_own_region_and_a_miss_names_the_region_searched() {
        let mut state = CloudHsmState::default();
        let west = created(
            &state,
            &CreateClusterRequest {
                region: Some("us-west-2".into()),
                ..CreateClusterRequest::default()
            },
        )
        .unwrap();
        let id = west.id.to_string();
        recorded(&mut state, west);
        assert_eq!(cluster_in(&state, "us-west-2", &id).unwrap().id.as_str(), id);
        let e = cluster_in(&state, "us-east-1", &id).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::CloudHsmResourceNotFoundException);
        assert!(e.message().contains(&id) && e.message().contains("us-east-1"), "{e}");
        // A malformed id is still the validation error, whatever the Region.
        let e = cluster_in(&state, "us-west-2", "cluster-!").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::CloudHsmInvalidRequestException);
    }

    #[test]
    fn a_subnet_deleted_in_any_cluster_is_refused_by_create_cluster_naming_it() {
        let mut state = CloudHsmState::default();
        let mut first = created(
            &state,
            &with_subnets(&["subnet-aaaaaaaa", "subnet-bbbbbbbb"]),
        )
        .unwrap();
        // What `fault subnet-deleted` does to the first cluster's copy of the subnet.
        first
            .subnets
            .get_mut("us-east-1a")
            .expect("subnet-aaaaaaaa, given first, is in the Region's first zone")
            .deleted = true;
        recorded(&mut state, first);
        let e = created(
            &state,
            &with_subnets(&["subnet-cccccccc", "subnet-aaaaaaaa"]),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::CloudHsmInvalidRequestException);
        assert!(e.message().contains("subnet-aaaaaaaa"), "{e}");
        // The remedy AWS gives, new subnets (beside one that still exists), works.
        let c = created(
            &state,
            &with_subnets(&["subnet-bbbbbbbb", "subnet-cccccccc"]),
        )
        .unwrap();
        assert!(c.subnets.values().all(|s| !s.deleted), "{:?}", c.subnets);
    }

    #[test]
    fn a_subnet_known_from_other_clusters_has_the_fewest_free_addresses_any_of_them_holds() {
        let mut state = CloudHsmState::default();
        let mut first = created(
            &state,
            &with_subnets(&["subnet-aaaaaaaa", "subnet-bbbbbbbb"]),
        )
        .unwrap();
        // What `fault subnet-full` does to the first cluster's copy of subnet-bbbbbbbb.
        first
            .subnets
            .get_mut("us-east-1b")
            .expect("subnet-bbbbbbbb, given second, is in the Region's second zone")
            .free_addresses = 0;
        recorded(&mut state, first);
        let mut second = created(&state, &with_subnets(&["subnet-aaaaaaaa"])).unwrap();
        // A second cluster whose HSMs took addresses in subnet-aaaaaaaa.
        second
            .subnets
            .get_mut("us-east-1a")
            .expect("subnet-aaaaaaaa keeps its zone, us-east-1a")
            .free_addresses = 7;
        recorded(&mut state, second);
        let c = created(
            &state,
            &with_subnets(&["subnet-aaaaaaaa", "subnet-bbbbbbbb", "subnet-cccccccc"]),
        )
        .unwrap();
        let free: Vec<(&str, u32)> = c
            .subnets
            .values()
            .map(|s| (s.id.as_str(), s.free_addresses))
            .collect();
        assert_eq!(
            free,
            [
                ("subnet-aaaaaaaa", 7),
                ("subnet-bbbbbbbb", 0),
                ("subnet-cccccccc", SUBNET_ADDRESSES)
            ]
        );
    }

    #[test]
    fn a_subnet_id_not_shaped_as_aws_requires_is_refused_naming_it() {
        let state = CloudHsmState::default();
        for bad in ["subnet-xyz12345", "subnet-1234567", "sub-12345678", "subnet-0123456789abcdef01"] {
            let e = created(&state, &with_subnets(&["subnet-aaaaaaaa", bad])).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::CloudHsmInvalidRequestException, "{bad}");
            assert!(e.message().contains(bad), "{bad}: {e}");
            assert!(e.message().contains(SubnetId::PATTERN), "{e}");
        }
    }

    #[test]
    fn subnet_ids_given_twice_or_with_availability_zones_are_refused() {
        let state = CloudHsmState::default();
        let twice = created(&state, &with_subnets(&["subnet-aaaaaaaa", "subnet-aaaaaaaa"]));
        assert!(twice.unwrap_err().message().contains("twice"));
        let mut both = with_subnets(&["subnet-aaaaaaaa"]);
        both.availability_zones = vec!["us-east-1a".into()];
        assert!(created(&state, &both).unwrap_err().message().contains("not both"));
    }

    #[test]
    fn without_subnet_ids_the_cluster_has_the_regions_a_and_b_zones() {
        let c = created(&CloudHsmState::default(), &CreateClusterRequest::default()).unwrap();
        let zones: Vec<String> = c.subnets.keys().cloned().collect();
        assert_eq!(zones, ["us-east-1a", "us-east-1b"]);
    }

    #[test]
    fn a_refused_create_cluster_asks_for_no_key() {
        let state = CloudHsmState::default();
        let scope = Scope::default();
        let mut tx = HsmTx::new(&state, Timestamp(0), &scope, &NoKeys);
        let req = CreateClusterRequest {
            hsm_type: Some("not-an-hsm".into()),
            ..CreateClusterRequest::default()
        };
        create_cluster(&mut tx, &req).unwrap_err();
        let done = tx.finish();
        assert!(done.new_keys.is_empty() && done.changes.is_empty());
    }

    #[test]
    fn a_passing_state_ends_when_due_and_not_before() {
        let scope = Scope::default();
        let mut state = CloudHsmState::default();
        let mut tx = HsmTx::new(&state, Timestamp(0), &scope, &NoKeys);
        tx.settings.transition = std::time::Duration::from_millis(100);
        let d = create_cluster(&mut tx, &CreateClusterRequest::default()).unwrap();
        for change in tx.finish().changes {
            state.apply(change);
        }
        assert_eq!(state.clusters[&d.cluster_id].state, ClusterState::CreateInProgress);
        assert_eq!(passing_clusters(&state), [(d.cluster_id.clone(), Timestamp(100))]);

        let mut early = HsmTx::new(&state, Timestamp(99), &scope, &NoKeys);
        settle_cluster(&mut early, &d.cluster_id);
        assert!(early.finish().changes.is_empty());

        let mut due = HsmTx::new(&state, Timestamp(100), &scope, &NoKeys);
        settle_cluster(&mut due, &d.cluster_id);
        for change in due.finish().changes {
            state.apply(change);
        }
        let c = &state.clusters[&d.cluster_id];
        assert_eq!((c.state, c.settles_at), (ClusterState::Uninitialized, None));
        assert!(passing_clusters(&state).is_empty());
    }

    #[test]
    fn without_a_transition_the_stored_cluster_is_already_past_its_passing_state() {
        let c = created(&CloudHsmState::default(), &CreateClusterRequest::default()).unwrap();
        assert_eq!((c.state, c.settles_at), (ClusterState::Uninitialized, None));
    }
}
