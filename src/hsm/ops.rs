//! Operations of the simulated CloudHSM: clusters, HSMs, initialisation, backups, users, key
//! objects, faults — and the narrow set of calls KMS makes as `kmsuser`.
//!
//! Every function reads the state through a [`Tx`] and records its changes there; nothing is
//! visible until the caller commits. Each command that reaches the HSMs is written to the audit
//! stream of every active HSM of the cluster, as CloudHSM replicates commands.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use crate::err;
use crate::error::Result;
use crate::hsm::api::*;
use crate::hsm::model::*;
use crate::hsm::pki::{self, CertificateAuthority, ClusterKey};
use crate::secret::{KeyMaterial, Password};
use crate::state::{Change, State};
use crate::tx::Tx;
use crate::types::limits::{
    HSM_PASSWORD_LEN, MAX_HSMS_PER_CLUSTER, MAX_KEYS_PER_CLUSTER, MAX_USERS_PER_CLUSTER,
};
use crate::types::*;

/// The user KMS logs in as.
pub const KMS_USER: &str = "kmsuser";
/// Default HSM type.
pub const DEFAULT_HSM_TYPE: &str = "hsm2m.medium";
/// First key handle handed out in a new cluster (CloudHSM handles look like 262162).
pub const FIRST_HANDLE: u64 = 262_145;
/// Free addresses in a fresh simulated subnet.
const SUBNET_ADDRESSES: u32 = 250;
/// PBKDF2 iterations for HSM user passwords.
const PASSWORD_ITERATIONS: u32 = 10_000;
/// Length of the password KMS sets when it rotates kmsuser's password on connect.
const ROTATED_PASSWORD_LEN: usize = 32;

/// Audit opcodes. The numbers of LOGIN, LOGOUT, CREATE_USER and DESTROY_OBJECT are
/// CloudHSM's; the others are kmscks's own.
mod opcode {
    pub const CREATE_USER: (&str, u32) = ("CN_CREATE_USER", 0x3);
    pub const DELETE_USER: (&str, u32) = ("CN_DELETE_USER", 0x4);
    pub const CHANGE_PSWD: (&str, u32) = ("CN_CHANGE_PSWD", 0x5);
    pub const LOGIN: (&str, u32) = ("CN_LOGIN", 0xd);
    pub const LOGOUT: (&str, u32) = ("CN_LOGOUT", 0xe);
    pub const DESTROY_OBJECT: (&str, u32) = ("CN_DESTROY_OBJECT", 0x11);
    pub const GENERATE_KEY: (&str, u32) = ("CN_GENERATE_KEY", 0x1a);
    pub const INIT_TOKEN: (&str, u32) = ("CN_INIT_TOKEN", 0x1);
}

// ---------------------------------------------------------------------------------------------
// Lookups

fn parse_cluster_id(text: &str) -> Result<ClusterId> {
    ClusterId::parse_lenient(text).ok_or_else(|| {
        KmsErrorExt::validation_cloudhsm(text, "ClusterId", "cluster-[2-7a-zA-Z]{11,16}")
    })
}

/// Helpers building CloudHSM-flavoured validation errors.
struct KmsErrorExt;
impl KmsErrorExt {
    fn validation_cloudhsm(value: &str, member: &str, pattern: &str) -> crate::KmsError {
        err!(CloudHsmInvalidRequestException, "Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}")
    }
}

/// The cluster `id`, or CloudHsmResourceNotFoundException.
pub fn cluster<'s>(state: &'s State, id: &str) -> Result<&'s Cluster> {
    let cid = parse_cluster_id(id)?;
    state.clusters.get(&cid).ok_or_else(|| {
        err!(
            CloudHsmResourceNotFoundException,
            "The cluster {id} does not exist."
        )
    })
}

fn audit_all(
    tx: &mut Tx<'_>,
    cluster: &Cluster,
    op: (&str, u32),
    response: &str,
    user: Option<&str>,
    handle: Option<u64>,
) {
    let hsms: Vec<HsmId> = cluster.active_hsms().map(|h| h.id.clone()).collect();
    for hsm in hsms {
        let event = AuditEvent {
            sequence: 0,
            time: tx.now,
            opcode: op.0.to_owned(),
            opcode_id: op.1,
            response: response.to_owned(),
            user: user.map(str::to_owned),
            key_handle: handle,
        };
        tx.push(Change::Audit(cluster.id.clone(), hsm, event));
    }
}

// ---------------------------------------------------------------------------------------------
// Descriptions

/// DescribeClusters view of a cluster.
pub fn describe(cluster: &Cluster) -> ClusterDescription {
    ClusterDescription {
        cluster_id: cluster.id.clone(),
        create_timestamp: cluster.created,
        hsms: cluster
            .hsms
            .values()
            .map(|h| describe_hsm(&cluster.id, h))
            .collect(),
        hsm_type: cluster.hsm_type.clone(),
        security_group: cluster.security_group.clone(),
        source_backup_id: cluster.source_backup.clone(),
        state: cluster.state,
        subnet_mapping: cluster
            .subnets
            .iter()
            .map(|(az, s)| (az.clone(), s.id.to_string()))
            .collect(),
        vpc_id: format!("vpc-{}", &cluster.id.as_str()["cluster-".len()..]),
        certificates: Certificates {
            cluster_csr: if cluster.state == ClusterState::Uninitialized {
                cluster.pki.csr.clone()
            } else {
                None
            },
            cluster_certificate: cluster.pki.cluster_certificate.clone(),
        },
        region: cluster.region.clone(),
    }
}

fn describe_hsm(cluster: &ClusterId, h: &Hsm) -> HsmDescription {
    HsmDescription {
        availability_zone: h.availability_zone.clone(),
        cluster_id: cluster.clone(),
        subnet_id: h.subnet_id.to_string(),
        eni_ip: h.eni_ip.clone(),
        hsm_id: h.id.clone(),
        state: h.state,
        state_message: h.state_message.clone(),
    }
}

/// DescribeClusters, with AWS's `clusterIds` and `states` filters.
pub fn describe_clusters(
    state: &State,
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
    let wanted = |name: &str, value: &str| {
        req.filters
            .get(name)
            .is_none_or(|vals| vals.iter().any(|v| v == value))
    };
    let clusters = state
        .clusters
        .values()
        .filter(|c| wanted("clusterIds", c.id.as_str()) && wanted("states", c.state.as_str()))
        .map(describe)
        .filter(|d| wanted("vpcIds", &d.vpc_id))
        .collect();
    Ok(DescribeClustersResponse { clusters })
}

// ---------------------------------------------------------------------------------------------
// Clusters and HSMs

/// CreateCluster: a new cluster (UNINITIALIZED), or one restored from a backup (ACTIVE, with the
/// backup's certificates, users and key objects).
pub fn create_cluster(tx: &mut Tx<'_>, req: &CreateClusterRequest) -> Result<ClusterDescription> {
    let id = ClusterId::generate();
    let hsm_type = req
        .hsm_type
        .clone()
        .unwrap_or_else(|| DEFAULT_HSM_TYPE.to_owned());
    if !hsm_type.starts_with("hsm") {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Unsupported HsmType {hsm_type}"
        ));
    }
    let backup = match &req.source_backup_id {
        Some(bid) => Some(
            tx.state
                .backups
                .get(bid)
                .filter(|b| b.state == BackupState::Ready)
                .ok_or_else(|| {
                    err!(
                        CloudHsmResourceNotFoundException,
                        "The backup {bid} does not exist."
                    )
                })?,
        ),
        None => None,
    };
    let region = match backup {
        Some(b) => b.region.clone(),
        None => req
            .region
            .clone()
            .unwrap_or_else(|| tx.scope.region.clone()),
    };
    let zones: Vec<String> = if req.availability_zones.is_empty() {
        vec![format!("{region}a"), format!("{region}b")]
    } else {
        req.availability_zones.clone()
    };
    let distinct: BTreeSet<&String> = zones.iter().collect();
    if distinct.len() != zones.len() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Each subnet must be in a different availability zone"
        ));
    }
    for az in &zones {
        if !az.starts_with(&region) || az.len() != region.len() + 1 {
            return Err(err!(
                CloudHsmInvalidRequestException,
                "Availability zone {az} is not in Region {region}"
            ));
        }
    }
    let subnets = zones
        .into_iter()
        .map(|az| {
            (
                az,
                Subnet {
                    id: SubnetId::generate(),
                    deleted: false,
                    free_addresses: SUBNET_ADDRESSES,
                },
            )
        })
        .collect();
    let mut cluster = Cluster {
        id: id.clone(),
        region,
        state: ClusterState::Uninitialized,
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
    };
    if let Some(b) = backup {
        cluster.state = ClusterState::Active;
        cluster.pki = b.pki.clone();
        cluster.wrapping_key = b.wrapping_key.clone();
        cluster.next_handle = b.next_handle;
        cluster.source_backup = Some(b.id.clone());
        for u in &b.users {
            tx.push(Change::PutUser(id.clone(), u.clone()));
        }
        for o in &b.objects {
            tx.push(Change::PutObject(id.clone(), o.clone()));
        }
    } else {
        // Create the lineage's wrapping key now, so the first object wrap finds it.
        tx.keys.key(&cluster.wrapping_key, true)?;
    }
    let description = describe(&cluster);
    tx.push(Change::PutCluster(Box::new(cluster)));
    Ok(description)
}

/// DeleteCluster: only once every HSM is deleted. As on AWS, a final backup is taken of an
/// initialised cluster.
pub fn delete_cluster(tx: &mut Tx<'_>, cluster_id: &str) -> Result<ClusterDescription> {
    let c = cluster(tx.state, cluster_id)?.clone();
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
    let mut description = describe(&c);
    description.state = ClusterState::Deleted;
    tx.push(Change::DeleteCluster(c.id.clone()));
    Ok(description)
}

/// CreateHsm in one of the cluster's zones. The first HSM of an uninitialised cluster makes the
/// cluster's key and CSR; a later HSM receives the cluster's users and key objects.
pub fn create_hsm(tx: &mut Tx<'_>, req: &CreateHsmRequest) -> Result<HsmDescription> {
    let mut c = cluster(tx.state, &req.cluster_id)?.clone();
    if matches!(
        c.state,
        ClusterState::Deleted | ClusterState::DeleteInProgress
    ) {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Cluster {} is {}",
            c.id,
            c.state
        ));
    }
    if c.hsms.len() >= MAX_HSMS_PER_CLUSTER {
        return Err(err!(
            CloudHsmServiceException,
            "Cluster {} already has {} HSMs, the maximum",
            c.id,
            MAX_HSMS_PER_CLUSTER
        ));
    }
    let az = req.availability_zone.clone();
    let subnet = c.subnets.get_mut(&az).ok_or_else(|| {
        err!(
            CloudHsmInvalidRequestException,
            "Cluster {} has no subnet in availability zone {az}",
            req.cluster_id
        )
    })?;
    if subnet.deleted {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "The subnet {} in {az} no longer exists",
            subnet.id
        ));
    }
    if subnet.free_addresses == 0 {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "The subnet {} in {az} has no free IP addresses",
            subnet.id
        ));
    }
    subnet.free_addresses -= 1;
    let subnet_id = subnet.id.clone();
    let used = SUBNET_ADDRESSES - subnet.free_addresses;
    let zone_index = c.subnets.keys().position(|k| *k == az).unwrap_or(0);
    let hsm = Hsm {
        id: HsmId::generate(),
        availability_zone: az,
        subnet_id,
        eni_ip: format!("10.0.{}.{}", zone_index, 10 + used),
        state: HsmState::Active,
        state_message: None,
    };
    if c.state == ClusterState::Uninitialized && c.pki.csr.is_none() {
        let key = ClusterKey::generate();
        let csr = pki::cluster_csr_pem(&key, c.id.as_str())
            .map_err(|e| err!(CloudHsmInternalFailureException, "{e}"))?;
        let aad = identity_aad(&c.id);
        c.pki.wrapped_identity_key = Some(tx.keys.wrap_bytes(
            &c.wrapping_key,
            &aad,
            key.pkcs8().expose(),
        )?);
        c.pki.csr = Some(csr);
    }
    let description = describe_hsm(&c.id, &hsm);
    let hsm_id = hsm.id.clone();
    c.hsms.insert(hsm.id.clone(), hsm);
    if c.state == ClusterState::Active {
        // The new HSM is cloned from the cluster: its stream starts with the sync.
        let event = AuditEvent {
            sequence: 0,
            time: tx.now,
            opcode: opcode::INIT_TOKEN.0.into(),
            opcode_id: opcode::INIT_TOKEN.1,
            response: "SUCCESS".into(),
            user: None,
            key_handle: None,
        };
        tx.push(Change::Audit(c.id.clone(), hsm_id, event));
    }
    tx.push(Change::PutCluster(Box::new(c)));
    Ok(description)
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

fn identity_aad(cluster: &ClusterId) -> Vec<u8> {
    format!("kmscks cluster identity {cluster}").into_bytes()
}

/// DeleteHsm.
pub fn delete_hsm(tx: &mut Tx<'_>, req: &DeleteHsmRequest) -> Result<DeleteHsmResponse> {
    let mut c = cluster(tx.state, &req.cluster_id)?.clone();
    let hsm_id = HsmId::parse(&req.hsm_id)
        .filter(|h| c.hsms.contains_key(h))
        .ok_or_else(|| {
            err!(
                CloudHsmResourceNotFoundException,
                "The HSM {} does not exist in cluster {}",
                req.hsm_id,
                c.id
            )
        })?;
    let hsm = c.hsms.remove(&hsm_id).expect("presence checked above");
    if let Some(s) = c.subnets.get_mut(&hsm.availability_zone) {
        s.free_addresses = (s.free_addresses + 1).min(SUBNET_ADDRESSES);
    }
    tx.push(Change::PutCluster(Box::new(c)));
    Ok(DeleteHsmResponse { hsm_id })
}

/// InitializeCluster: verifies that `SignedCert` is the cluster's CSR signed by `TrustAnchor`,
/// keeps both, creates the admin user, and activates the cluster (ACTIVE).
pub fn initialize_cluster(
    tx: &mut Tx<'_>,
    req: &InitializeClusterRequest,
) -> Result<InitializeClusterResponse> {
    let mut c = cluster(tx.state, &req.cluster_id)?.clone();
    if c.state != ClusterState::Uninitialized {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Cluster {} is {}, not UNINITIALIZED",
            c.id,
            c.state
        ));
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
    c.state = ClusterState::Active;
    let admin = HsmUser {
        username: "admin".into(),
        role: HsmUserRole::Admin,
        password: hash_password(&Password::generate(ROTATED_PASSWORD_LEN)),
        failed_logins: 0,
        session: None,
    };
    tx.push(Change::PutUser(c.id.clone(), admin));
    audit_all(tx, &c, opcode::INIT_TOKEN, "SUCCESS", Some("admin"), None);
    tx.push(Change::PutCluster(Box::new(c)));
    Ok(InitializeClusterResponse {
        state: ClusterState::Active,
        state_message: "Cluster initialized and activated".into(),
        trust_anchor: None,
    })
}

/// The convenience variant: makes a CA, signs the cluster's CSR with it, initialises the
/// cluster, and returns the CA certificate as `TrustAnchor`.
pub fn initialize_cluster_with_new_ca(
    tx: &mut Tx<'_>,
    cluster_id: &str,
) -> Result<InitializeClusterResponse> {
    let c = cluster(tx.state, cluster_id)?;
    let csr = pending_csr(c)?;
    let ca = CertificateAuthority::generate(&format!("kmscks customer CA for {}", c.id))
        .map_err(|e| err!(CloudHsmInternalFailureException, "{e}"))?;
    let signed = ca
        .sign_csr(&csr)
        .map_err(|e| err!(CloudHsmInternalFailureException, "{e}"))?;
    let req = InitializeClusterRequest {
        cluster_id: cluster_id.to_owned(),
        signed_cert: signed,
        trust_anchor: ca.certificate_pem().to_owned(),
    };
    let mut resp = initialize_cluster(tx, &req)?;
    resp.trust_anchor = Some(req.trust_anchor);
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Backups

fn take_backup(tx: &mut Tx<'_>, c: &Cluster) -> BackupDescription {
    let users = tx
        .state
        .cluster_users(&c.id)
        .map(|u| HsmUser {
            session: None,
            ..u.clone()
        })
        .collect();
    let objects = tx.state.cluster_objects(&c.id).cloned().collect();
    let backup = Backup {
        id: BackupId::generate(),
        state: BackupState::Ready,
        region: c.region.clone(),
        cluster_id: c.id.clone(),
        created: tx.now,
        hsm_type: c.hsm_type.clone(),
        pki: ClusterPki {
            csr: None,
            ..c.pki.clone()
        },
        wrapping_key: c.wrapping_key.clone(),
        users,
        objects,
        next_handle: c.next_handle,
        copied_from: None,
    };
    let d = describe_backup(&backup);
    tx.push(Change::PutBackup(Box::new(backup)));
    d
}

/// Takes a backup of an initialised cluster now (AWS takes them on a schedule).
pub fn create_backup(tx: &mut Tx<'_>, cluster_id: &str) -> Result<BackupDescription> {
    let c = cluster(tx.state, cluster_id)?.clone();
    if c.pki.cluster_certificate.is_none() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Cluster {} is not initialized; nothing to back up",
            c.id
        ));
    }
    Ok(take_backup(tx, &c))
}

/// DescribeBackups view of a backup.
pub fn describe_backup(b: &Backup) -> BackupDescription {
    BackupDescription {
        backup_id: b.id.clone(),
        backup_state: b.state,
        cluster_id: b.cluster_id.clone(),
        create_timestamp: b.created,
        region: b.region.clone(),
        source_backup: b.copied_from.as_ref().map(|(id, _)| id.clone()),
        source_region: b.copied_from.as_ref().map(|(_, r)| r.clone()),
    }
}

fn backup<'s>(state: &'s State, id: &str) -> Result<&'s Backup> {
    BackupId::parse(id)
        .and_then(|b| state.backups.get(&b))
        .ok_or_else(|| {
            err!(
                CloudHsmResourceNotFoundException,
                "The backup {id} does not exist."
            )
        })
}

/// CopyBackupToRegion: the copy is a new backup in the destination Region; a cluster restored
/// from it is related to (shares backup history with) the source cluster.
pub fn copy_backup_to_region(
    tx: &mut Tx<'_>,
    req: &CopyBackupToRegionRequest,
) -> Result<BackupDescription> {
    let b = backup(tx.state, &req.backup_id)?.clone();
    if req.destination_region == b.region {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "The backup {} is already in {}",
            b.id,
            b.region
        ));
    }
    if !is_region_name(&req.destination_region) {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Invalid DestinationRegion '{}'",
            req.destination_region
        ));
    }
    let copy = Backup {
        id: BackupId::generate(),
        region: req.destination_region.clone(),
        created: tx.now,
        copied_from: Some((b.id.clone(), b.region.clone())),
        ..b
    };
    let d = describe_backup(&copy);
    tx.push(Change::PutBackup(Box::new(copy)));
    Ok(d)
}

fn is_region_name(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// DeleteBackup.
pub fn delete_backup(tx: &mut Tx<'_>, backup_id: &str) -> Result<BackupDescription> {
    let b = backup(tx.state, backup_id)?.clone();
    let mut d = describe_backup(&b);
    d.backup_state = BackupState::Deleted;
    tx.push(Change::DeleteBackup(b.id));
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// Users

/// A salted hash of `password`.
pub fn hash_password(password: &Password) -> PasswordHash {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).expect("system randomness unavailable");
    let mut hash = [0u8; 32];
    let iterations = NonZeroU32::new(PASSWORD_ITERATIONS).expect("nonzero constant");
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.expose().as_bytes(),
        &mut hash,
    );
    PasswordHash {
        salt,
        iterations: PASSWORD_ITERATIONS,
        hash,
    }
}

/// Whether `password` matches `hash` (constant time).
pub fn password_matches(hash: &PasswordHash, password: &Password) -> bool {
    let Some(iterations) = NonZeroU32::new(hash.iterations) else {
        return false;
    };
    aws_lc_rs::pbkdf2::verify(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &hash.salt,
        password.expose().as_bytes(),
        &hash.hash,
    )
    .is_ok()
}

fn check_hsm_password(p: &Password) -> Result<()> {
    let n = p.char_len();
    let ok = (HSM_PASSWORD_LEN.0..=HSM_PASSWORD_LEN.1).contains(&n)
        && p.expose().chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(err!(
            CloudHsmInvalidRequestException,
            "Password must be {} to {} alphanumeric characters",
            HSM_PASSWORD_LEN.0,
            HSM_PASSWORD_LEN.1
        ))
    }
}

fn check_username(u: &str) -> Result<()> {
    let ok =
        (1..=31).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(err!(
            CloudHsmInvalidRequestException,
            "Invalid username '{u}': 1 to 31 letters, digits or underscores"
        ))
    }
}

fn active_cluster<'s>(state: &'s State, id: &str) -> Result<&'s Cluster> {
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

fn user<'s>(state: &'s State, c: &Cluster, username: &str) -> Result<&'s HsmUser> {
    state.user(&c.id, username).ok_or_else(|| {
        err!(
            CloudHsmResourceNotFoundException,
            "User {username} does not exist in cluster {}",
            c.id
        )
    })
}

/// `user create`.
pub fn create_user(tx: &mut Tx<'_>, req: &UserRequest) -> Result<UserDescription> {
    let c = active_cluster(tx.state, &req.cluster_id)?.clone();
    check_username(&req.username)?;
    check_hsm_password(&req.password)?;
    if tx.state.user(&c.id, &req.username).is_some() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "User {} already exists in cluster {}",
            req.username,
            c.id
        ));
    }
    if tx.state.cluster_users(&c.id).count() >= MAX_USERS_PER_CLUSTER {
        return Err(err!(
            CloudHsmServiceException,
            "Cluster {} already has {} users",
            c.id,
            MAX_USERS_PER_CLUSTER
        ));
    }
    let u = HsmUser {
        username: req.username.clone(),
        role: req.role.unwrap_or(HsmUserRole::CryptoUser),
        password: hash_password(&req.password),
        failed_logins: 0,
        session: None,
    };
    let d = describe_user(&u);
    audit_all(
        tx,
        &c,
        opcode::CREATE_USER,
        "SUCCESS",
        Some(&req.username),
        None,
    );
    tx.push(Change::PutUser(c.id.clone(), u));
    Ok(d)
}

/// `user delete`. A crypto user that still owns key objects cannot be deleted.
pub fn delete_user(tx: &mut Tx<'_>, cluster_id: &str, username: &str) -> Result<()> {
    let c = active_cluster(tx.state, cluster_id)?.clone();
    let u = user(tx.state, &c, username)?;
    if u.session.is_some() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "User {username} is logged in; log out first"
        ));
    }
    if let Some(o) = tx
        .state
        .cluster_objects(&c.id)
        .find(|o| o.owner == username)
    {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "User {username} still owns key {}; delete its keys first",
            o.handle
        ));
    }
    audit_all(tx, &c, opcode::DELETE_USER, "SUCCESS", Some(username), None);
    tx.push(Change::DeleteUser(c.id.clone(), username.to_owned()));
    Ok(())
}

/// `user change-password` (by an admin: also unlocks the user, as on CloudHSM).
pub fn change_password(tx: &mut Tx<'_>, req: &UserRequest) -> Result<()> {
    let c = active_cluster(tx.state, &req.cluster_id)?.clone();
    check_hsm_password(&req.password)?;
    let mut u = user(tx.state, &c, &req.username)?.clone();
    u.password = hash_password(&req.password);
    u.failed_logins = 0;
    audit_all(
        tx,
        &c,
        opcode::CHANGE_PSWD,
        "SUCCESS",
        Some(&req.username),
        None,
    );
    tx.push(Change::PutUser(c.id.clone(), u));
    Ok(())
}

/// `user list`.
pub fn list_users(state: &State, cluster_id: &str) -> Result<Vec<UserDescription>> {
    let c = cluster(state, cluster_id)?;
    Ok(state.cluster_users(&c.id).map(describe_user).collect())
}

fn describe_user(u: &HsmUser) -> UserDescription {
    UserDescription {
        username: u.username.clone(),
        role: u.role,
        locked: u.locked_out(),
        mfa: false,
        logged_in: u.session.as_ref().map(|s| match s {
            SessionHolder::Kms(store) => format!("kms:{store}"),
            SessionHolder::External => "external".to_owned(),
        }),
    }
}

/// How a login attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Logged in.
    Ok,
    /// No such user.
    NoSuchUser,
    /// The user is locked out.
    LockedOut,
    /// Somebody is logged in as the user already.
    AlreadyLoggedIn,
    /// Wrong password (counted towards the lockout).
    WrongPassword,
}

/// A login as `username` by `holder`: records the attempt (audit, failure count, session).
fn login(
    tx: &mut Tx<'_>,
    c: &Cluster,
    username: &str,
    password: &Password,
    holder: SessionHolder,
) -> LoginOutcome {
    let Some(u) = tx.state.user(&c.id, username) else {
        return LoginOutcome::NoSuchUser;
    };
    let mut u = u.clone();
    if u.locked_out() {
        audit_all(
            tx,
            c,
            opcode::LOGIN,
            "RET_USER_LOCKED_OUT",
            Some(username),
            None,
        );
        return LoginOutcome::LockedOut;
    }
    if u.session.is_some() {
        audit_all(
            tx,
            c,
            opcode::LOGIN,
            "RET_USER_ALREADY_LOGGED_IN",
            Some(username),
            None,
        );
        return LoginOutcome::AlreadyLoggedIn;
    }
    if !password_matches(&u.password, password) {
        u.failed_logins += 1;
        audit_all(
            tx,
            c,
            opcode::LOGIN,
            "RET_USER_LOGIN_FAILURE",
            Some(username),
            None,
        );
        tx.push(Change::PutUser(c.id.clone(), u));
        return LoginOutcome::WrongPassword;
    }
    u.failed_logins = 0;
    u.session = Some(holder);
    audit_all(tx, c, opcode::LOGIN, "SUCCESS", Some(username), None);
    tx.push(Change::PutUser(c.id.clone(), u));
    LoginOutcome::Ok
}

/// `login` from the CloudHSM CLI (an external session).
pub fn login_external(
    tx: &mut Tx<'_>,
    cluster_id: &str,
    username: &str,
    password: &Password,
) -> Result<()> {
    let c = active_cluster(tx.state, cluster_id)?.clone();
    match login(tx, &c, username, password, SessionHolder::External) {
        LoginOutcome::Ok => Ok(()),
        LoginOutcome::NoSuchUser => Err(err!(
            CloudHsmResourceNotFoundException,
            "User {username} does not exist in cluster {}",
            c.id
        )),
        LoginOutcome::LockedOut => Err(err!(
            CloudHsmAccessDeniedException,
            "User {username} is locked out"
        )),
        LoginOutcome::AlreadyLoggedIn => Err(err!(
            CloudHsmAccessDeniedException,
            "User {username} is already logged in"
        )),
        LoginOutcome::WrongPassword => Err(err!(
            CloudHsmAccessDeniedException,
            "Login failed for user {username}: wrong password"
        )),
    }
}

/// `logout` of an external session.
pub fn logout_external(tx: &mut Tx<'_>, cluster_id: &str, username: &str) -> Result<()> {
    let c = cluster(tx.state, cluster_id)?.clone();
    let mut u = user(tx.state, &c, username)?.clone();
    if u.session != Some(SessionHolder::External) {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "User {username} has no CLI session to log out"
        ));
    }
    u.session = None;
    audit_all(tx, &c, opcode::LOGOUT, "SUCCESS", Some(username), None);
    tx.push(Change::PutUser(c.id.clone(), u));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Key objects

/// `key list`: metadata of every key object, never the key bytes.
pub fn list_key_objects(state: &State, cluster_id: &str) -> Result<Vec<KeyObjectDescription>> {
    let c = cluster(state, cluster_id)?;
    let hsms: Vec<HsmId> = c.active_hsms().map(|h| h.id.clone()).collect();
    Ok(state
        .cluster_objects(&c.id)
        .map(|o| KeyObjectDescription {
            key_reference: o.handle,
            label: o.label.clone(),
            owner: o.owner.clone(),
            key_type: "aes".into(),
            key_length_bits: 256,
            extractable: false,
            token: true,
            hsms: hsms.clone(),
        })
        .collect())
}

/// `key delete` as the owner (the manual clean-up of an orphaned KMS key).
pub fn delete_key_object(
    tx: &mut Tx<'_>,
    cluster_id: &str,
    handle: u64,
    username: &str,
    password: &Password,
) -> Result<()> {
    let c = active_cluster(tx.state, cluster_id)?.clone();
    let o = tx
        .state
        .objects
        .get(&(c.id.clone(), handle))
        .ok_or_else(|| {
            err!(
                CloudHsmResourceNotFoundException,
                "Key {handle} does not exist in cluster {}",
                c.id
            )
        })?;
    let u = user(tx.state, &c, username)?;
    if u.locked_out() || !password_matches(&u.password, password) {
        return Err(err!(
            CloudHsmAccessDeniedException,
            "Login failed for user {username}"
        ));
    }
    if o.owner != username {
        return Err(err!(
            CloudHsmAccessDeniedException,
            "Only the owner {} may delete key {handle}",
            o.owner
        ));
    }
    audit_all(
        tx,
        &c,
        opcode::DESTROY_OBJECT,
        "SUCCESS",
        Some(username),
        Some(handle),
    );
    tx.push(Change::DeleteObject(c.id.clone(), handle));
    Ok(())
}

/// The audit stream of one HSM (or of every HSM of the cluster, in HSM id order).
pub fn audit_log(
    state: &State,
    cluster_id: &str,
    hsm: Option<&str>,
) -> Result<Vec<(HsmId, Vec<AuditEvent>)>> {
    let cid = parse_cluster_id(cluster_id)?;
    let streams: Vec<(HsmId, Vec<AuditEvent>)> = state
        .audit
        .iter()
        .filter(|((c, h), _)| *c == cid && hsm.is_none_or(|want| h.as_str() == want))
        .map(|((_, h), events)| (h.clone(), events.clone()))
        .collect();
    if streams.is_empty() && !state.clusters.contains_key(&cid) {
        return Err(err!(
            CloudHsmResourceNotFoundException,
            "No audit log for cluster {cluster_id}"
        ));
    }
    Ok(streams)
}

// ---------------------------------------------------------------------------------------------
// Faults

/// Injects a fault.
pub fn inject_fault(tx: &mut Tx<'_>, cluster_id: &str, fault: &Fault) -> Result<()> {
    let mut c = cluster(tx.state, cluster_id)?.clone();
    match fault {
        Fault::HsmLost(hsm) => {
            let h = c.hsms.get_mut(hsm).ok_or_else(|| {
                err!(
                    CloudHsmResourceNotFoundException,
                    "The HSM {hsm} does not exist in cluster {}",
                    cluster_id
                )
            })?;
            h.state = HsmState::Degraded;
            h.state_message = Some("HSM lost (injected fault)".into());
        }
        Fault::NetworkDown => c.faults.network_down = true,
        Fault::NetworkRestored => c.faults.network_down = false,
        Fault::InternalError(on) => c.faults.internal_error = *on,
        Fault::PasswordChanged { username } => {
            let mut u = user(tx.state, &c, username)?.clone();
            u.password = hash_password(&Password::generate(ROTATED_PASSWORD_LEN));
            audit_all(tx, &c, opcode::CHANGE_PSWD, "SUCCESS", Some(username), None);
            tx.push(Change::PutUser(c.id.clone(), u));
        }
        Fault::UserLockedOut { username } => {
            let mut u = user(tx.state, &c, username)?.clone();
            u.failed_logins = u.failed_logins.max(limits::MAX_FAILED_LOGINS);
            tx.push(Change::PutUser(c.id.clone(), u));
        }
        Fault::UserLoggedInElsewhere { username } => {
            let mut u = user(tx.state, &c, username)?.clone();
            if matches!(u.session, Some(SessionHolder::Kms(_))) {
                return Err(err!(
                    CloudHsmInvalidRequestException,
                    "User {username} is logged in by KMS"
                ));
            }
            u.session = Some(SessionHolder::External);
            audit_all(tx, &c, opcode::LOGIN, "SUCCESS", Some(username), None);
            tx.push(Change::PutUser(c.id.clone(), u));
        }
        Fault::SubnetDeleted { availability_zone } | Fault::SubnetFull { availability_zone } => {
            let s = c.subnets.get_mut(availability_zone).ok_or_else(|| {
                err!(
                    CloudHsmResourceNotFoundException,
                    "Cluster {cluster_id} has no subnet in {availability_zone}"
                )
            })?;
            if matches!(fault, Fault::SubnetDeleted { .. }) {
                s.deleted = true;
            } else {
                s.free_addresses = 0;
            }
        }
        Fault::SecurityGroupBroken => c.security_group_ok = false,
        Fault::KeyObjectDeleted { handle } => {
            if !tx.state.objects.contains_key(&(c.id.clone(), *handle)) {
                return Err(err!(
                    CloudHsmResourceNotFoundException,
                    "Key {handle} does not exist in cluster {cluster_id}"
                ));
            }
            audit_all(
                tx,
                &c,
                opcode::DESTROY_OBJECT,
                "SUCCESS",
                None,
                Some(*handle),
            );
            tx.push(Change::DeleteObject(c.id.clone(), *handle));
        }
    }
    tx.push(Change::PutCluster(Box::new(c)));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What KMS does as kmsuser

/// Whether KMS can talk to the cluster right now; the reason if not, as a connection error code.
pub fn reachability<'s>(
    state: &'s State,
    cluster_id: &ClusterId,
    region: &str,
) -> Result<&'s Cluster, ConnectionErrorCode> {
    let c = state
        .clusters
        .get(cluster_id)
        .filter(|c| c.region == region && c.state != ClusterState::Deleted)
        .ok_or(ConnectionErrorCode::ClusterNotFound)?;
    if c.faults.network_down {
        return Err(ConnectionErrorCode::NetworkErrors);
    }
    if c.faults.internal_error {
        return Err(ConnectionErrorCode::InternalError);
    }
    if c.subnets.values().any(|s| s.deleted) {
        return Err(ConnectionErrorCode::SubnetNotFound);
    }
    Ok(c)
}

/// ConnectCustomKeyStore's work inside the cluster: log in as kmsuser with the password KMS
/// knows, then rotate it to a fresh one only KMS knows, which is returned.
pub fn kms_connect(
    tx: &mut Tx<'_>,
    cluster_id: &ClusterId,
    store: &CustomKeyStoreId,
    password: &Password,
) -> Result<Password, ConnectionErrorCode> {
    let c = reachability(tx.state, cluster_id, &tx.scope.region.clone())?.clone();
    if c.subnets.values().any(|s| s.free_addresses == 0) {
        return Err(ConnectionErrorCode::InsufficientFreeAddressesInSubnet);
    }
    if c.active_hsms().next().is_none() {
        return Err(ConnectionErrorCode::InsufficientCloudhsmHsms);
    }
    if let Some(u) = tx.state.user(&c.id, KMS_USER) {
        // KMS logged in already for this very store (e.g. a reconnect after a crash).
        if u.session == Some(SessionHolder::Kms(store.to_string())) {
            return Ok(password.duplicate());
        }
    }
    match login(
        tx,
        &c,
        KMS_USER,
        password,
        SessionHolder::Kms(store.to_string()),
    ) {
        LoginOutcome::Ok => {}
        LoginOutcome::NoSuchUser => return Err(ConnectionErrorCode::UserNotFound),
        LoginOutcome::LockedOut => return Err(ConnectionErrorCode::UserLockedOut),
        LoginOutcome::AlreadyLoggedIn => return Err(ConnectionErrorCode::UserLoggedIn),
        LoginOutcome::WrongPassword => return Err(ConnectionErrorCode::InvalidCredentials),
    }
    let rotated = Password::generate(ROTATED_PASSWORD_LEN);
    // `login` pushed the logged-in user last; rotate on top of that value.
    let mut u = match tx.changes().last() {
        Some(Change::PutUser(_, u)) => u.clone(),
        _ => return Err(ConnectionErrorCode::InternalError),
    };
    u.password = hash_password(&rotated);
    audit_all(tx, &c, opcode::CHANGE_PSWD, "SUCCESS", Some(KMS_USER), None);
    tx.push(Change::PutUser(c.id.clone(), u));
    Ok(rotated)
}

/// DisconnectCustomKeyStore's work inside the cluster: log kmsuser out, if KMS holds the
/// session. Nothing to do when the cluster is gone or unreachable.
pub fn kms_disconnect(tx: &mut Tx<'_>, cluster_id: &ClusterId, store: &CustomKeyStoreId) {
    let Some(c) = tx.state.clusters.get(cluster_id).cloned() else {
        return;
    };
    if let Some(u) = tx.state.user(&c.id, KMS_USER) {
        if u.session == Some(SessionHolder::Kms(store.to_string())) {
            let mut u = u.clone();
            u.session = None;
            if !c.faults.network_down {
                audit_all(tx, &c, opcode::LOGOUT, "SUCCESS", Some(KMS_USER), None);
            }
            tx.push(Change::PutUser(c.id.clone(), u));
        }
    }
}

/// Whether KMS holds kmsuser's session in this cluster on behalf of `store`.
pub fn kms_logged_in(state: &State, cluster_id: &ClusterId, store: &CustomKeyStoreId) -> bool {
    state
        .user(cluster_id, KMS_USER)
        .and_then(|u| u.session.as_ref())
        == Some(&SessionHolder::Kms(store.to_string()))
}

/// CreateKey's work inside the cluster: generate a persistent, non-extractable AES-256 key
/// owned by kmsuser, labelled `label`; returns its handle and material (for the data plane).
pub fn kms_generate_key(
    tx: &mut Tx<'_>,
    cluster_id: &ClusterId,
    label: &str,
) -> Result<(u64, KeyMaterial)> {
    let mut c = tx
        .state
        .clusters
        .get(cluster_id)
        .cloned()
        .ok_or_else(|| err!(KMSInternalException, "cluster {cluster_id} disappeared"))?;
    if tx.state.cluster_objects(&c.id).count() >= MAX_KEYS_PER_CLUSTER {
        return Err(err!(
            LimitExceededException,
            "Cluster {} holds {} keys, the CloudHSM maximum",
            c.id,
            MAX_KEYS_PER_CLUSTER
        ));
    }
    let handle = c.next_handle;
    c.next_handle += 1;
    let material = KeyMaterial::generate();
    let wrapped = tx.keys.wrap_key(
        &c.wrapping_key,
        &KeyObject::wrap_aad(&c.wrapping_key, handle),
        &material,
    )?;
    let object = KeyObject {
        handle,
        label: label.to_owned(),
        owner: KMS_USER.to_owned(),
        wrapped,
        created: tx.now,
    };
    audit_all(
        tx,
        &c,
        opcode::GENERATE_KEY,
        "SUCCESS",
        Some(KMS_USER),
        Some(handle),
    );
    tx.push(Change::PutObject(c.id.clone(), object));
    tx.push(Change::PutCluster(Box::new(c)));
    Ok((handle, material))
}

/// The key object labelled `label` in the cluster (`findKey -l <key ARN>`).
pub fn find_key<'s>(
    state: &'s State,
    cluster_id: &ClusterId,
    label: &str,
) -> Option<&'s KeyObject> {
    state.object_by_label(cluster_id, label)
}

/// The deletion's best-effort removal of the backing key; true when it was deleted.
pub fn kms_delete_key(
    tx: &mut Tx<'_>,
    cluster_id: &ClusterId,
    store: &CustomKeyStoreId,
    label: &str,
) -> bool {
    if !kms_logged_in(tx.state, cluster_id, store) {
        return false;
    }
    let Ok(c) = reachability(tx.state, cluster_id, &tx.scope.region.clone()) else {
        return false;
    };
    let c = c.clone();
    if c.active_hsms().next().is_none() {
        return false;
    }
    let Some(o) = find_key(tx.state, &c.id, label) else {
        return false;
    };
    let handle = o.handle;
    audit_all(
        tx,
        &c,
        opcode::DESTROY_OBJECT,
        "SUCCESS",
        Some(KMS_USER),
        Some(handle),
    );
    tx.push(Change::DeleteObject(c.id.clone(), handle));
    true
}
