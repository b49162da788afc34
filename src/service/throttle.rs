//! AWS's request quotas, emulated when asked ([`crate::KmsConfig::quotas`], `kmscksd
//! --emulate-aws-quotas`), so that an application can rehearse `ThrottlingException` (spec §6).
//! Off by default, and then free: the service holds an `Option<Throttle>` and checks nothing
//! else on the hot path.
//!
//! Each quota is a token bucket on the instance's injectable clock: it holds at most one
//! second's worth of requests and refills continuously at its rate, so a test advancing a
//! `ManualClock` decides exactly when a caller is back under the rate. A bucket is one short
//! mutex over two integers. The buckets: one for the account's cryptographic requests, one per
//! custom key store for the cryptographic requests on its keys (GenerateDataKey* and
//! GenerateRandom cost [`QuotaConfig::data_key_cost`]), and one per custom key store operation:
//! AWS computes each request quota independently, so exhausting DescribeCustomKeyStores
//! leaves DisconnectCustomKeyStore its own five requests a second (spec §1, §6).
//! A request over any of them fails before the operation runs, with AWS's answer
//! ("Rate exceeded"), which names nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::{lock, Kms};
use crate::err;
use crate::error::{KmsError, Result};
use crate::kms::model::{Backing, Key};
use crate::ops::Op;
use crate::types::limits;
use crate::types::{CustomKeyStoreId, KeyId, KeyName, Timestamp};

/// The quotas kmscks emulates when asked; [`QuotaConfig::default`] has AWS's numbers (spec
/// §6). A rate of 0 refuses every request it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    /// Custom key stores per account and Region (CreateCustomKeyStore beyond it:
    /// `LimitExceededException`).
    pub max_custom_key_stores: usize,
    /// Cryptographic requests per second on the keys of one custom key store.
    pub store_crypto_rate: u32,
    /// What GenerateDataKey(WithoutPlaintext) and GenerateRandom cost against
    /// `store_crypto_rate`, in Encrypt/Decrypt/ReEncrypt requests.
    pub data_key_cost: u32,
    /// Symmetric cryptographic requests per second for the whole account, any key store.
    pub account_crypto_rate: u32,
    /// Requests per second of each custom key store operation (Create, Describe, Update,
    /// Delete, Connect, Disconnect), each counted on its own.
    pub key_store_api_rate: u32,
    /// AWS CloudHSM's clusters per account and Region (CreateCluster beyond it:
    /// `CloudHsmResourceLimitExceededException`).
    pub max_clusters_per_region: usize,
    /// AWS CloudHSM's HSMs per cluster (CreateHsm beyond it:
    /// `CloudHsmResourceLimitExceededException`); at most CloudHSM's hard limit,
    /// [`limits::MAX_HSMS_PER_CLUSTER`].
    pub max_hsms_per_cluster: usize,
}

impl Default for QuotaConfig {
    fn default() -> QuotaConfig {
        QuotaConfig {
            max_custom_key_stores: limits::MAX_CUSTOM_KEY_STORES,
            store_crypto_rate: limits::STORE_CRYPTO_RATE,
            data_key_cost: limits::STORE_DATA_KEY_COST,
            account_crypto_rate: limits::ACCOUNT_CRYPTO_RATE,
            key_store_api_rate: limits::KEY_STORE_API_RATE,
            max_clusters_per_region: limits::CLUSTERS_PER_REGION_QUOTA,
            max_hsms_per_cluster: limits::HSMS_PER_CLUSTER_QUOTA,
        }
    }
}

/// What AWS answers a request over a rate.
pub(super) fn throttled() -> KmsError {
    err!(ThrottlingException, "Rate exceeded")
}

/// Units of a bucket per request: the refill adds `rate` units per millisecond, so integer
/// arithmetic is exact at the clock's resolution.
const UNITS_PER_REQUEST: u64 = 1000;

/// One token bucket: at most one second of requests, refilled at `rate` per second.
#[derive(Debug)]
struct Bucket {
    rate: u64,
    /// Units held, and the clock reading (ms) they were counted at.
    state: Mutex<(u64, i64)>,
}

impl Bucket {
    fn new(rate: u32, now: Timestamp) -> Bucket {
        let rate = u64::from(rate);
        Bucket {
            rate,
            state: Mutex::new((rate * UNITS_PER_REQUEST, now.millis())),
        }
    }

    /// Takes `cost` requests if the bucket holds them.
    fn take(&self, now: Timestamp, cost: u32) -> bool {
        let mut s = lock(&self.state);
        let (units, at) = *s;
        let elapsed = u64::try_from(now.millis().saturating_sub(at)).unwrap_or(0);
        let capacity = self.rate * UNITS_PER_REQUEST;
        let units = units
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(capacity);
        let need = u64::from(cost) * UNITS_PER_REQUEST;
        let (units, ok) = match units.checked_sub(need) {
            Some(left) => (left, true),
            None => (units, false),
        };
        *s = (units, at.max(now.millis()));
        ok
    }
}

/// The custom key store operations, each with its own request quota at
/// [`QuotaConfig::key_store_api_rate`] (spec §1: "5 req/s each"): [`Throttle`]'s buckets, in
/// this order.
const KEY_STORE_OPS: [Op; 6] = [
    Op::CreateCustomKeyStore,
    Op::DescribeCustomKeyStores,
    Op::UpdateCustomKeyStore,
    Op::DeleteCustomKeyStore,
    Op::ConnectCustomKeyStore,
    Op::DisconnectCustomKeyStore,
];

/// How a cryptographic request is charged to its store's bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CryptoCost {
    /// Encrypt, Decrypt, ReEncrypt: one request.
    Plain,
    /// GenerateDataKey(WithoutPlaintext), GenerateRandom: [`QuotaConfig::data_key_cost`].
    DataKey,
}

/// The emulated quotas of one instance.
#[derive(Debug)]
pub(super) struct Throttle {
    config: QuotaConfig,
    account: Bucket,
    /// One bucket per custom key store operation, in [`KEY_STORE_OPS`]'s order.
    key_store_api: [Bucket; KEY_STORE_OPS.len()],
    stores: Mutex<HashMap<CustomKeyStoreId, Arc<Bucket>>>,
    /// The store of each key seen (`None`: the default key store). A key's store never
    /// changes and key ids are never reused, so an entry never goes stale.
    key_stores: RwLock<HashMap<KeyId, Option<CustomKeyStoreId>>>,
}

impl Throttle {
    pub(super) fn new(config: QuotaConfig, now: Timestamp) -> Throttle {
        Throttle {
            account: Bucket::new(config.account_crypto_rate, now),
            key_store_api: std::array::from_fn(|_| Bucket::new(config.key_store_api_rate, now)),
            config,
            stores: Mutex::new(HashMap::new()),
            key_stores: RwLock::new(HashMap::new()),
        }
    }

    pub(super) fn config(&self) -> &QuotaConfig {
        &self.config
    }

    /// Charges one request of the custom key store operation `op`, to its own bucket.
    pub(super) fn key_store_api(&self, op: Op, now: Timestamp) -> Result<()> {
        let Some(i) = KEY_STORE_OPS.iter().position(|&o| o == op) else {
            return Err(err!(
                KMSInternalException,
                "{} has no custom key store request quota",
                op.name()
            ));
        };
        if self.key_store_api[i].take(now, 1) {
            Ok(())
        } else {
            Err(throttled())
        }
    }

    /// Charges one cryptographic request: to each store it uses (once per distinct store, at
    /// `cost`), then to the account.
    pub(super) fn crypto(
        &self,
        now: Timestamp,
        stores: &[Option<CustomKeyStoreId>],
        cost: CryptoCost,
    ) -> Result<()> {
        let cost = match cost {
            CryptoCost::Plain => 1,
            CryptoCost::DataKey => self.config.data_key_cost,
        };
        for (i, store) in stores.iter().enumerate() {
            let Some(store) = store else { continue };
            if stores[..i].iter().any(|s| s.as_ref() == Some(store)) {
                continue;
            }
            if !self.store_bucket(store, now).take(now, cost) {
                return Err(throttled());
            }
        }
        if self.account.take(now, 1) {
            Ok(())
        } else {
            Err(throttled())
        }
    }

    fn store_bucket(&self, store: &CustomKeyStoreId, now: Timestamp) -> Arc<Bucket> {
        lock(&self.stores)
            .entry(store.clone())
            .or_insert_with(|| Arc::new(Bucket::new(self.config.store_crypto_rate, now)))
            .clone()
    }

    /// The store of `key`, if it has been seen.
    pub(super) fn known_store(&self, key: &KeyId) -> Option<Option<CustomKeyStoreId>> {
        self.key_stores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Remembers the store of `key`.
    pub(super) fn remember_store(&self, key: KeyId, store: Option<CustomKeyStoreId>) {
        self.key_stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, store);
    }
}

/// What a cryptographic request names, to find the stores it uses.
pub(super) enum Uses<'r> {
    /// A key reference (key id, key ARN, alias).
    Key(KeyName<'r>),
    /// A ciphertext blob (the key id it carries).
    Blob(&'r [u8]),
    /// A custom key store by id (GenerateRandom).
    Store(&'r str),
}

impl Kms {
    /// Charges a cryptographic request to the emulated quotas, if they are on; `uses`: the
    /// keys, blobs or stores it names. Nothing it cannot resolve is charged to a store (the
    /// operation then answers the error).
    #[inline]
    pub(super) fn charge_crypto(&self, uses: &[Uses<'_>], cost: CryptoCost) -> Result<()> {
        match &self.shared.throttle {
            None => Ok(()),
            Some(throttle) => self.charge_crypto_to(throttle, uses, cost),
        }
    }

    fn charge_crypto_to(
        &self,
        throttle: &Throttle,
        uses: &[Uses<'_>],
        cost: CryptoCost,
    ) -> Result<()> {
        let stores: Vec<Option<CustomKeyStoreId>> =
            uses.iter().map(|u| self.store_used(throttle, u)).collect();
        throttle.crypto(self.shared.config.clock.now(), &stores, cost)
    }

    /// Charges a request of the custom key store operation `op` to the emulated quotas (its
    /// own rate), if they are on.
    pub(super) fn charge_key_store_api(&self, op: Op) -> Result<()> {
        match &self.shared.throttle {
            None => Ok(()),
            Some(t) => t.key_store_api(op, self.shared.config.clock.now()),
        }
    }

    /// The custom key store a request uses, if any (only with quotas on: aliases and keys
    /// seen for the first time are looked up in the control-plane state).
    fn store_used(&self, throttle: &Throttle, uses: &Uses<'_>) -> Option<CustomKeyStoreId> {
        let id = match uses {
            Uses::Store(text) => return CustomKeyStoreId::parse(text),
            Uses::Blob(blob) => crate::crypto::blob::parse(blob).ok()?.key_id,
            Uses::Key(KeyName::Id(id)) => *id,
            Uses::Key(KeyName::Alias(name)) => {
                let core = lock(&self.shared.core);
                let kms = &core.state.kms;
                let target = kms.aliases.get(name.as_ref())?.target;
                return kms.keys.get(&target).and_then(store_of);
            }
        };
        if let Some(known) = throttle.known_store(&id) {
            return known;
        }
        let store = {
            let core = lock(&self.shared.core);
            core.state.kms.keys.get(&id).map(store_of)?
        };
        throttle.remember_store(id, store.clone());
        store
    }
}

/// The custom key store a key lives in (`None`: the default key store).
fn store_of(key: &Key) -> Option<CustomKeyStoreId> {
    match &key.backing {
        Backing::CloudHsm { store, .. } => Some(store.clone()),
        Backing::Default { .. } | Backing::External(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_one_second_and_refills_at_its_rate() {
        let b = Bucket::new(10, Timestamp(0));
        assert!((0..10).all(|_| b.take(Timestamp(0), 1)));
        assert!(!b.take(Timestamp(0), 1), "the eleventh request in a second");
        assert!(!b.take(Timestamp(99), 1), "0.99 requests refilled");
        assert!(
            b.take(Timestamp(100), 1),
            "one request refilled after 100 ms"
        );
        assert!(!b.take(Timestamp(100), 1));
        assert!(b.take(Timestamp(10_000), 10), "refilled to its capacity");
        assert!(!b.take(Timestamp(10_000), 1), "and never beyond it");
    }

    #[test]
    fn each_custom_key_store_operation_has_a_bucket_of_its_own_and_no_other_operation_has_one() {
        let config = QuotaConfig {
            key_store_api_rate: 1,
            ..QuotaConfig::default()
        };
        let t = Throttle::new(config, Timestamp(1000));
        for op in KEY_STORE_OPS {
            assert!(t.key_store_api(op, Timestamp(1000)).is_ok(), "{op:?}");
            assert!(t.key_store_api(op, Timestamp(1000)).is_err(), "{op:?}");
        }
        let e = t.key_store_api(Op::CreateKey, Timestamp(1000)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::KMSInternalException);
    }

    #[test]
    fn a_costly_request_takes_its_cost_and_a_clock_going_back_adds_nothing() {
        let b = Bucket::new(6, Timestamp(1000));
        assert!(b.take(Timestamp(1000), 3));
        assert!(b.take(Timestamp(1000), 3));
        assert!(!b.take(Timestamp(500), 1));
        assert!(!b.take(Timestamp(1000), 1));
    }
}
