//! Custom key store operations and the connection state machine (spec §1, §2).
//!
//! ConnectCustomKeyStore and DisconnectCustomKeyStore return at once with the store in
//! CONNECTING / DISCONNECTING; the service runs [`complete_connect`] / [`complete_disconnect`]
//! a moment later (the `epoch` guards against finishing a superseded attempt).

use crate::api::kms::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::Cluster;
use crate::hsm::{self, pki};
use crate::kms::model::KeyStore;
use crate::kms::paging;
use crate::kms::state::{KmsChange, KmsState};
use crate::kms::trail;
use crate::kms::tx::Tx;
use crate::kms::MASTER_KEY;
use crate::secret::Password;
use crate::types::limits::*;
use crate::types::*;
use crate::KmsError;

fn password_aad(store: &CustomKeyStoreId) -> Vec<u8> {
    format!("kmscks key store password {store}").into_bytes()
}

/// The store `id`, or CustomKeyStoreNotFoundException; ValidationException first when `id`
/// is not of the length the API accepts (spec §0, §9). Every caller's member is
/// `customKeyStoreId` (the six store operations, CreateKey, GenerateRandom).
pub fn store<'s>(state: &'s KmsState, id: &str) -> Result<&'s KeyStore> {
    check_text_len(id, "customKeyStoreId", CUSTOM_KEY_STORE_ID_LEN)?;
    CustomKeyStoreId::parse(id)
        .and_then(|sid| state.stores.get(&sid))
        .ok_or_else(|| {
            err!(
                CustomKeyStoreNotFoundException,
                "Custom key store ID {id} is not found"
            )
        })
}

/// Checks that `value`, the request member `member`, is `min..=max` characters long; AWS's
/// ValidationException, echoing the value, otherwise (spec §9).
fn check_text_len(value: &str, member: &str, (min, max): (usize, usize)) -> Result<()> {
    let n = value.chars().count();
    if !(min..=max).contains(&n) {
        return Err(KmsError::validation(
            value,
            member,
            crate::error::Constraint::LengthBetween(min, max),
        ));
    }
    Ok(())
}

fn check_name(name: &str, member: &str) -> Result<()> {
    check_text_len(name, member, STORE_NAME_LEN)
}

fn check_password(p: &Password) -> Result<()> {
    let n = p.char_len();
    if n < KEY_STORE_PASSWORD_LEN.0 || n > KEY_STORE_PASSWORD_LEN.1 {
        // The value is sensitive: AWS does not echo it, neither do we.
        return Err(KmsError::validation(
            "***",
            "keyStorePassword",
            crate::error::Constraint::LengthBetween(
                KEY_STORE_PASSWORD_LEN.0,
                KEY_STORE_PASSWORD_LEN.1,
            ),
        ));
    }
    Ok(())
}

fn check_trust_anchor(pem: &str) -> Result<()> {
    let n = pem.chars().count();
    if n < TRUST_ANCHOR_LEN.0 || n > TRUST_ANCHOR_LEN.1 {
        return Err(KmsError::validation(
            format!("{n} characters"),
            "trustAnchorCertificate",
            crate::error::Constraint::LengthBetween(TRUST_ANCHOR_LEN.0, TRUST_ANCHOR_LEN.1),
        ));
    }
    Ok(())
}

/// The cluster `id` in this account and Region, or CloudHsmClusterNotFoundException;
/// ValidationException first when `id` is not of a cluster id's length (spec §0, §9).
fn cluster<'s>(tx: &Tx<'s>, id: &str) -> Result<&'s Cluster> {
    check_cluster_id(id)?;
    let not_found = || {
        err!(
            CloudHsmClusterNotFoundException,
            "The specified CloudHSM cluster ID {id} is not found in this account and Region"
        )
    };
    let cid = ClusterId::parse_lenient(id).ok_or_else(not_found)?;
    tx.cloudhsm
        .clusters
        .get(&cid)
        .filter(|c| c.region == tx.scope.region)
        .ok_or_else(not_found)
}

/// The length check of a `cloudHsmClusterId` member (its pattern is left to the lookup,
/// which finds no cluster for a malformed id).
fn check_cluster_id(id: &str) -> Result<()> {
    check_text_len(id, "cloudHsmClusterId", CLUSTER_ID_LEN)
}

fn check_active(c: &Cluster) -> Result<()> {
    if c.state != ClusterState::Active {
        return Err(err!(
            CloudHsmClusterNotActiveException,
            "The CloudHSM cluster {} is not active. Its state is {}",
            c.id,
            c.state
        ));
    }
    Ok(())
}

/// §3.1: subnets in ≥2 zones, the security group rule, ≥2 active HSMs in different zones.
pub fn check_configuration(c: &Cluster) -> Result<()> {
    let zones = c.subnets.values().filter(|s| !s.deleted).count();
    if zones < 2 {
        return Err(err!(
            CloudHsmClusterInvalidConfigurationException,
            "The CloudHSM cluster {} must have private subnets in at least two Availability Zones",
            c.id
        ));
    }
    if !c.security_group_ok {
        return Err(err!(
            CloudHsmClusterInvalidConfigurationException,
            "The security group {} of CloudHSM cluster {} must allow TCP ports 2223-2225 inbound and outbound from itself",
            c.security_group,
            c.id
        ));
    }
    check_two_zones(c)
}

/// ≥2 active HSMs in different Availability Zones (CreateCustomKeyStore, Update, CreateKey).
pub fn check_two_zones(c: &Cluster) -> Result<()> {
    if c.active_zones() < 2 {
        return Err(err!(
            CloudHsmClusterInvalidConfigurationException,
            "The CloudHSM cluster {} must contain at least two active HSMs, each in a different Availability Zone",
            c.id
        ));
    }
    Ok(())
}

fn certificate(c: &Cluster) -> Option<&str> {
    c.pki.cluster_certificate.as_deref()
}

/// Whether `c` shares backup history with the store's cluster (spec §3.1: equal cluster
/// certificates), judged by the certificate the store recorded, so that it holds after the
/// store's cluster is deleted and when one customer CA signs several clusters.
fn shares_history(s: &KeyStore, c: &Cluster) -> bool {
    certificate(c).is_some_and(|cert| pki::same_certificate(cert, &s.cluster_certificate))
}

fn entry(s: &KeyStore) -> CustomKeyStoreEntry {
    CustomKeyStoreEntry {
        custom_key_store_id: s.id.to_string(),
        custom_key_store_name: s.name.clone(),
        cloud_hsm_cluster_id: s.cluster_id.to_string(),
        trust_anchor_certificate: s.trust_anchor.clone(),
        connection_state: s.state,
        connection_error_code: if s.state == ConnectionState::Failed {
            s.error_code
        } else {
            None
        },
        creation_date: s.created,
        custom_key_store_type: CustomKeyStoreType::AwsCloudhsm,
    }
}

/// CreateCustomKeyStore.
pub fn create(
    tx: &mut Tx<'_>,
    req: &CreateCustomKeyStoreRequest,
) -> Result<CreateCustomKeyStoreResponse> {
    if req.custom_key_store_type == Some(CustomKeyStoreType::ExternalKeyStore) {
        return Err(err!(
            UnsupportedOperationException,
            "kmscks supports only AWS_CLOUDHSM custom key stores"
        ));
    }
    check_name(&req.custom_key_store_name, "customKeyStoreName")?;
    let missing = |member: &str| {
        err!(
            ValidationException,
            "{member} is required for a custom key store of type AWS_CLOUDHSM"
        )
    };
    let cluster_id = req
        .cloud_hsm_cluster_id
        .as_deref()
        .ok_or_else(|| missing("CloudHsmClusterId"))?;
    let anchor = req
        .trust_anchor_certificate
        .as_deref()
        .ok_or_else(|| missing("TrustAnchorCertificate"))?;
    let password = req
        .key_store_password
        .as_ref()
        .ok_or_else(|| missing("KeyStorePassword"))?;
    check_cluster_id(cluster_id)?;
    check_trust_anchor(anchor)?;
    check_password(password)?;

    // Idempotent re-create: an identical DISCONNECTED store is returned as it is.
    if let Some(existing) = tx
        .state
        .stores
        .values()
        .find(|s| s.name == req.custom_key_store_name)
    {
        if existing.state == ConnectionState::Disconnected
            && existing.cluster_id.as_str() == cluster_id
            && pki::same_certificate(&existing.trust_anchor, anchor)
        {
            let known = tx.keys.unwrap_bytes(
                MASTER_KEY,
                &password_aad(&existing.id),
                &existing.wrapped_password,
            )?;
            if known.expose() == password.expose().as_bytes() {
                return Ok(CreateCustomKeyStoreResponse {
                    custom_key_store_id: existing.id.to_string(),
                });
            }
        }
        return Err(err!(
            CustomKeyStoreNameInUseException,
            "Custom key store name {} is already in use",
            req.custom_key_store_name
        ));
    }
    if let Some(max) = tx.max_custom_key_stores {
        if tx.state.stores.len() >= max {
            return Err(err!(
                LimitExceededException,
                "You have reached the limit of {max} custom key stores"
            ));
        }
    }
    let c = cluster(tx, cluster_id)?;
    for other in tx.state.stores.values() {
        let in_use = other.cluster_id == c.id || shares_history(other, c);
        if in_use {
            return Err(err!(
                CloudHsmClusterInUseException,
                "The CloudHSM cluster {} is already associated with custom key store {}, or shares backup history with its cluster",
                c.id,
                other.id
            ));
        }
    }
    check_active(c)?;
    check_configuration(c)?;
    let matches_anchor = c
        .pki
        .trust_anchor
        .as_deref()
        .is_some_and(|t| pki::same_certificate(t, anchor));
    if !matches_anchor {
        return Err(err!(
            IncorrectTrustAnchorException,
            "The trust anchor certificate does not match the trust anchor of CloudHSM cluster {}",
            c.id
        ));
    }
    let id = CustomKeyStoreId::generate();
    let wrapped_password =
        tx.keys
            .wrap_bytes(MASTER_KEY, &password_aad(&id), password.expose().as_bytes())?;
    let s = KeyStore {
        id: id.clone(),
        name: req.custom_key_store_name.clone(),
        cluster_id: c.id.clone(),
        trust_anchor: anchor.to_owned(),
        // An ACTIVE cluster (checked above) is initialised, so it has its certificate.
        cluster_certificate: certificate(c).unwrap_or_default().to_owned(),
        wrapped_password,
        state: ConnectionState::Disconnected,
        error_code: None,
        created: tx.now,
        epoch: 0,
    };
    let detail = serde_json::json!({
        "requestParameters": {"customKeyStoreName": s.name, "clusterId": s.cluster_id.as_str()},
        "responseElements": {"customKeyStoreId": id.as_str()},
    });
    trail::record(tx, "CreateCustomKeyStore", detail);
    tx.push(KmsChange::PutStore(Box::new(s)));
    Ok(CreateCustomKeyStoreResponse {
        custom_key_store_id: id.to_string(),
    })
}

/// DescribeCustomKeyStores.
pub fn describe(
    state: &KmsState,
    req: &DescribeCustomKeyStoresRequest,
) -> Result<DescribeCustomKeyStoresResponse> {
    const LIST: &str = "stores";
    if req.custom_key_store_id.is_some() && req.custom_key_store_name.is_some() {
        return Err(err!(
            ValidationException,
            "Specify either CustomKeyStoreId or CustomKeyStoreName, not both"
        ));
    }
    let limit = paging::limit(req.limit, LIST_LIMIT, LIST_LIMIT.1)?;
    let marker = req.marker.as_deref();
    // One store asked for: a list of one, still after the marker if one is given.
    let just = |one: &KeyStore| -> Result<paging::Page<CustomKeyStoreEntry>> {
        let after = paging::after::<CustomKeyStoreId>(LIST, marker)?;
        let selected = std::iter::once((&one.id, one))
            .filter(|(id, _)| after.as_ref().is_none_or(|a| a < *id));
        Ok(paging::take(LIST, selected, limit, |_, s| entry(s)))
    };
    let page = if let Some(id) = &req.custom_key_store_id {
        just(store(state, id)?)?
    } else if let Some(name) = &req.custom_key_store_name {
        check_name(name, "customKeyStoreName")?;
        let one = state
            .stores
            .values()
            .find(|s| &s.name == name)
            .ok_or_else(|| {
                err!(
                    CustomKeyStoreNotFoundException,
                    "Custom key store name {name} is not found"
                )
            })?;
        just(one)?
    } else {
        paging::page(LIST, &state.stores, limit, marker, |_, s| entry(s))?
    };
    Ok(DescribeCustomKeyStoresResponse {
        truncated: page.truncated(),
        next_marker: page.next_marker,
        custom_key_stores: page.items,
    })
}

fn invalid_state(s: &KeyStore, op: &str) -> KmsError {
    err!(
        CustomKeyStoreInvalidStateException,
        "Custom key store {} is {}; {op} is not allowed in that state",
        s.id,
        s.state
    )
}

/// UpdateCustomKeyStore.
pub fn update(tx: &mut Tx<'_>, req: &UpdateCustomKeyStoreRequest) -> Result<Empty> {
    let mut s = store(tx.state, &req.custom_key_store_id)?.clone();
    let disconnected = s.state == ConnectionState::Disconnected;
    if let Some(name) = &req.new_custom_key_store_name {
        check_name(name, "newCustomKeyStoreName")?;
        if !(disconnected || s.state == ConnectionState::Connected) {
            return Err(invalid_state(&s, "changing the name"));
        }
        if tx
            .state
            .stores
            .values()
            .any(|o| o.id != s.id && &o.name == name)
        {
            return Err(err!(
                CustomKeyStoreNameInUseException,
                "Custom key store name {name} is already in use"
            ));
        }
        s.name = name.clone();
    }
    if let Some(password) = &req.key_store_password {
        check_password(password)?;
        if !disconnected {
            return Err(invalid_state(&s, "changing the key store password"));
        }
        s.wrapped_password = tx.keys.wrap_bytes(
            MASTER_KEY,
            &password_aad(&s.id),
            password.expose().as_bytes(),
        )?;
    }
    if let Some(cluster_id) = &req.cloud_hsm_cluster_id {
        if !disconnected {
            return Err(invalid_state(&s, "changing the cluster"));
        }
        let new = cluster(tx, cluster_id)?;
        if new.id != s.cluster_id {
            let related_to_original = shares_history(&s, new);
            if !related_to_original {
                return Err(err!(
                    CloudHsmClusterNotRelatedException,
                    "The CloudHSM cluster {} does not share backup history with the custom key store's cluster {}",
                    new.id,
                    s.cluster_id
                ));
            }
            check_active(new)?;
            check_configuration(new)?;
            s.cluster_id = new.id.clone();
        }
    }
    let detail = serde_json::json!({
        "requestParameters": {"customKeyStoreId": s.id.as_str(), "clusterId": req.cloud_hsm_cluster_id},
        "additionalEventData": {"customKeyStoreName": s.name, "clusterId": s.cluster_id.as_str()},
    });
    trail::record(tx, "UpdateCustomKeyStore", detail);
    tx.push(KmsChange::PutStore(Box::new(s)));
    Ok(Empty {})
}

/// DeleteCustomKeyStore: DISCONNECTED and holding no keys (PendingDeletion ones count).
pub fn delete(tx: &mut Tx<'_>, req: &CustomKeyStoreIdRequest) -> Result<Empty> {
    let s = store(tx.state, &req.custom_key_store_id)?;
    if s.state != ConnectionState::Disconnected {
        return Err(invalid_state(s, "DeleteCustomKeyStore"));
    }
    let keys = tx
        .state
        .keys
        .values()
        .filter(|k| k.store() == Some(&s.id))
        .count();
    if keys > 0 {
        return Err(err!(
            CustomKeyStoreHasCMKsException,
            "Custom key store {} still contains {keys} KMS key(s); delete them first",
            s.id
        ));
    }
    let id = s.id.clone();
    trail_store_event(tx, "DeleteCustomKeyStore", s);
    tx.push(KmsChange::DeleteStore(id));
    Ok(Empty {})
}

fn trail_store_event(tx: &mut Tx<'_>, name: &str, s: &KeyStore) {
    let detail = serde_json::json!({
        "requestParameters": {"customKeyStoreId": s.id.as_str()},
        "additionalEventData": {"customKeyStoreName": s.name, "clusterId": s.cluster_id.as_str()},
    });
    trail::record(tx, name, detail);
}

/// What the caller must do after a Connect/Disconnect request was accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// Nothing (a no-op connect).
    None,
    /// Finish connecting this store at this epoch.
    Connect(CustomKeyStoreId, u64),
    /// Finish disconnecting this store at this epoch.
    Disconnect(CustomKeyStoreId, u64),
}

/// ConnectCustomKeyStore: fast checks, then CONNECTING.
pub fn connect(tx: &mut Tx<'_>, req: &CustomKeyStoreIdRequest) -> Result<FollowUp> {
    let s = store(tx.state, &req.custom_key_store_id)?;
    match s.state {
        ConnectionState::Connected | ConnectionState::Connecting => return Ok(FollowUp::None),
        ConnectionState::Failed | ConnectionState::Disconnecting => {
            return Err(invalid_state(s, "ConnectCustomKeyStore"))
        }
        ConnectionState::Disconnected => {}
    }
    if let Some(c) = tx
        .cloudhsm
        .clusters
        .get(&s.cluster_id)
        .filter(|c| c.region == tx.scope.region)
    {
        check_active(c)?;
        if c.active_hsms().next().is_none() {
            return Err(err!(
                CloudHsmClusterInvalidConfigurationException,
                "The CloudHSM cluster {} has no active HSM; ConnectCustomKeyStore needs at \
                 least one: add an HSM, or bring a lost one back",
                c.id
            ));
        }
        if !c.security_group_ok {
            return Err(check_configuration(c).expect_err("security group is broken"));
        }
    }
    let mut s = s.clone();
    s.state = ConnectionState::Connecting;
    s.error_code = None;
    s.epoch += 1;
    let follow = FollowUp::Connect(s.id.clone(), s.epoch);
    trail_store_event(tx, "ConnectCustomKeyStore", &s);
    tx.push(KmsChange::PutStore(Box::new(s)));
    Ok(follow)
}

/// The asynchronous half of Connect: log in as kmsuser, rotate its password; CONNECTED or FAILED.
pub fn complete_connect(tx: &mut Tx<'_>, id: &CustomKeyStoreId, epoch: u64) -> Result<()> {
    let Some(s) = tx.state.stores.get(id) else {
        return Ok(());
    };
    if s.state != ConnectionState::Connecting || s.epoch != epoch {
        return Ok(());
    }
    let mut s = s.clone();
    let known = tx
        .keys
        .unwrap_bytes(MASTER_KEY, &password_aad(&s.id), &s.wrapped_password)?;
    let known = Password::new(String::from_utf8_lossy(known.expose()).into_owned());
    let cluster_id = s.cluster_id.clone();
    match tx.in_hsm(|h| hsm::kms_connect(h, &cluster_id, &s.id, &known)) {
        Ok(rotated) => {
            s.wrapped_password = tx.keys.wrap_bytes(
                MASTER_KEY,
                &password_aad(&s.id),
                rotated.expose().as_bytes(),
            )?;
            s.state = ConnectionState::Connected;
            s.error_code = None;
        }
        Err(code) => {
            s.state = ConnectionState::Failed;
            s.error_code = Some(code);
        }
    }
    tx.push(KmsChange::PutStore(Box::new(s)));
    Ok(())
}

/// DisconnectCustomKeyStore: DISCONNECTING at once (keys become unusable at once).
pub fn disconnect(tx: &mut Tx<'_>, req: &CustomKeyStoreIdRequest) -> Result<FollowUp> {
    let s = store(tx.state, &req.custom_key_store_id)?;
    if matches!(
        s.state,
        ConnectionState::Disconnected | ConnectionState::Disconnecting
    ) {
        return Err(invalid_state(s, "DisconnectCustomKeyStore"));
    }
    let mut s = s.clone();
    s.state = ConnectionState::Disconnecting;
    s.error_code = None;
    s.epoch += 1;
    let follow = FollowUp::Disconnect(s.id.clone(), s.epoch);
    trail_store_event(tx, "DisconnectCustomKeyStore", &s);
    tx.push(KmsChange::PutStore(Box::new(s)));
    Ok(follow)
}

/// The asynchronous half of Disconnect: log kmsuser out; DISCONNECTED.
pub fn complete_disconnect(tx: &mut Tx<'_>, id: &CustomKeyStoreId, epoch: u64) -> Result<()> {
    let Some(s) = tx.state.stores.get(id) else {
        return Ok(());
    };
    if s.state != ConnectionState::Disconnecting || s.epoch != epoch {
        return Ok(());
    }
    let mut s = s.clone();
    tx.in_hsm(|h| hsm::kms_disconnect(h, &s.cluster_id, &s.id));
    s.state = ConnectionState::Disconnected;
    s.error_code = None;
    tx.push(KmsChange::PutStore(Box::new(s)));
    Ok(())
}
