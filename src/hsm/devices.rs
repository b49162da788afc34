//! The HSMs of a cluster: CreateHsm (the first one makes the cluster's identity key and CSR)
//! and DeleteHsm, with the subnet addresses they take and give back.

use super::audit::{opcode, record};
use super::backup::take_backup;
use super::cluster::{cluster_in, describe_hsm};
use super::{HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::*;
use crate::hsm::pki::{self, ClusterKey};
use crate::types::limits::MAX_HSMS_PER_CLUSTER;
use crate::types::*;

/// Free addresses in a fresh simulated subnet.
pub(super) const SUBNET_ADDRESSES: u32 = 250;

/// CreateHsm in one of the cluster's zones. The first HSM of an uninitialised cluster makes the
/// cluster's key and CSR; a later HSM receives the cluster's users and key objects.
pub fn create_hsm(tx: &mut HsmTx<'_>, req: &CreateHsmRequest) -> Result<HsmDescription> {
    let region = tx.scope.region_or(req.region.as_deref());
    let mut c = cluster_in(tx.state, region, &req.cluster_id)?.clone();
    if !matches!(
        c.state,
        ClusterState::Uninitialized | ClusterState::Initialized | ClusterState::Active
    ) {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "CreateHsm: cluster {} is {}, not UNINITIALIZED, INITIALIZED or ACTIVE",
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
    if let Some(max) = tx.settings.max_hsms_per_cluster {
        if c.hsms.len() >= max {
            return Err(err!(
                CloudHsmResourceLimitExceededException,
                "CreateHsm: cluster {} already has {} HSMs, the quota of HSMs per cluster ({max})",
                c.id,
                c.hsms.len()
            ));
        }
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
        // An HSM of a restored cluster boots from the backup's image: its first boot is a
        // come-back (see `Hsm::reboot_counter`).
        reboot_counter: u32::from(c.source_backup.is_some()),
        latency_ms: 0,
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
    let description = describe_hsm(&c, &hsm);
    let hsm_id = hsm.id.clone();
    c.hsms.insert(hsm.id.clone(), hsm);
    if c.pki.cluster_certificate.is_some() {
        // The new HSM is cloned from the cluster: its stream starts with the sync.
        let hsm = &c.hsms[&hsm_id];
        let event = record(tx, hsm, opcode::INIT_TOKEN, "SUCCESS", None, None);
        tx.push(HsmChange::Audit(c.id.clone(), hsm_id, event));
    }
    // As on AWS, adding an HSM to an ACTIVE cluster takes a backup.
    if c.state == ClusterState::Active {
        take_backup(tx, &c);
    }
    tx.push(HsmChange::PutCluster(Box::new(c)));
    Ok(description)
}

/// The HSM of `c` a DeleteHsm names by `HsmId`, `EniId` or `EniIp` (each one given must
/// match it), or CloudHsmResourceNotFoundException; none given is a validation error.
fn named_hsm(c: &Cluster, req: &DeleteHsmRequest) -> Result<HsmId> {
    let given = [
        (!req.hsm_id.is_empty()).then_some(req.hsm_id.as_str()),
        req.eni_id.as_deref(),
        req.eni_ip.as_deref(),
    ];
    if given.iter().all(Option::is_none) {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "DeleteHsm needs one of HsmId, EniId and EniIp"
        ));
    }
    let names = |h: &Hsm| {
        let d = describe_hsm(c, h);
        let [id, eni_id, eni_ip] = given;
        id.is_none_or(|v| v == d.hsm_id.as_str())
            && eni_id.is_none_or(|v| v == d.eni_id)
            && eni_ip.is_none_or(|v| v == d.eni_ip)
    };
    c.hsms
        .values()
        .find(|h| names(h))
        .map(|h| h.id.clone())
        .ok_or_else(|| {
            let named: Vec<&str> = given.into_iter().flatten().collect();
            err!(
                CloudHsmResourceNotFoundException,
                "The HSM {} does not exist in cluster {}",
                named.join(" / "),
                c.id
            )
        })
}

fn identity_aad(cluster: &ClusterId) -> Vec<u8> {
    format!("kmscks cluster identity {cluster}").into_bytes()
}

/// DeleteHsm.
pub fn delete_hsm(tx: &mut HsmTx<'_>, req: &DeleteHsmRequest) -> Result<DeleteHsmResponse> {
    let region = tx.scope.region_or(req.region.as_deref());
    let mut c = cluster_in(tx.state, region, &req.cluster_id)?.clone();
    let hsm_id = named_hsm(&c, req)?;
    let hsm = c.hsms.remove(&hsm_id).expect("presence checked above");
    if let Some(s) = c.subnets.get_mut(&hsm.availability_zone) {
        s.free_addresses = (s.free_addresses + 1).min(SUBNET_ADDRESSES);
    }
    // As on AWS, removing an HSM from an ACTIVE cluster takes a backup.
    if c.state == ClusterState::Active {
        take_backup(tx, &c);
    }
    tx.push(HsmChange::PutCluster(Box::new(c)));
    Ok(DeleteHsmResponse { hsm_id })
}
