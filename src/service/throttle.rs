//! AWS's request quotas, emulated when asked ([`crate::KmsConfig::quotas`], `kmscksd
//! --emulate-aws-quotas`), so that an application can rehearse `ThrottlingException` (spec §6).
//! Off by default, and then free: the service holds an `Option<Throttle>` and checks nothing
//! else on the hot path.
//!
//! Each quota is a token bucket on the instance's injectable clock: it holds one second's worth
//! of requests (at least one request, for a rate under one a second) and refills continuously
//! at its rate, so a test advancing a `ManualClock` decides exactly when a caller is back under
//! the rate. A bucket is one short mutex over two integers. AWS computes each request quota
//! independently, and so do the buckets: the account's symmetric cryptographic requests; its
//! requests on RSA keys and those on elliptic curve keys (Sign, Verify, DeriveSharedSecret, and
//! Encrypt, Decrypt and ReEncrypt with an asymmetric algorithm: a burst of Sign never throttles
//! Encrypt); GenerateDataKeyPair(WithoutPlaintext), one bucket per pair spec; one per custom
//! key store for the cryptographic requests on its keys (GenerateDataKey* and GenerateRandom
//! cost [`QuotaConfig::data_key_cost`]); and one per custom key store operation, so exhausting
//! DescribeCustomKeyStores leaves DisconnectCustomKeyStore its own five requests a second
//! (spec §1, §6). A request over any of them fails before the operation runs, with AWS's
//! answer ("Rate exceeded"), which names nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use super::{lock, Kms};
use crate::err;
use crate::error::{KmsError, Result};
use crate::kms::model::Key;
use crate::ops::Op;
use crate::types::limits;
use crate::types::{
    CustomKeyStoreId, DataKeyPairSpec, KeyId, KeyName, KeySpec, RequestRate, Timestamp,
};

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
    /// Requests per second for the whole account on RSA keys (Sign, Verify, and Encrypt,
    /// Decrypt and ReEncrypt with an RSAES-OAEP algorithm), apart from `account_crypto_rate`.
    pub rsa_crypto_rate: u32,
    /// Requests per second for the whole account on elliptic curve keys (Sign, Verify,
    /// DeriveSharedSecret), apart from the symmetric and RSA rates.
    pub ecc_crypto_rate: u32,
    /// GenerateDataKeyPair(WithoutPlaintext) requests per second of each pair spec, each spec
    /// counted on its own and apart from every other rate; a spec absent is not throttled.
    pub data_key_pair_rates: BTreeMap<DataKeyPairSpec, RequestRate>,
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
            rsa_crypto_rate: limits::RSA_CRYPTO_RATE,
            ecc_crypto_rate: limits::ECC_CRYPTO_RATE,
            data_key_pair_rates: DataKeyPairSpec::ALL
                .iter()
                .filter_map(|&spec| Some((spec, limits::data_key_pair_rate(spec)?)))
                .collect(),
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

/// Units of a bucket per request: the refill adds the rate in thousandths of a request per
/// second as units per millisecond, so integer arithmetic is exact at the clock's resolution.
const UNITS_PER_REQUEST: u64 = 1_000_000;

/// One token bucket: one second of requests (at least one request), refilled at its rate.
#[derive(Debug)]
struct Bucket {
    /// Units added per millisecond: the rate in thousandths of a request per second.
    refill: u64,
    /// Units held at most: one second's worth, and at least one request, so that a rate under
    /// one a second (AWS's 0.1 for an RSA_4096 data key pair) lets one request through, then
    /// the next after 1/rate seconds. 0 for a rate of 0, which refuses everything.
    capacity: u64,
    /// Units held, and the clock reading (ms) they were counted at.
    state: Mutex<(u64, i64)>,
}

impl Bucket {
    /// A full bucket of `millis` thousandths of a request per second.
    fn new(millis: u64, now: Timestamp) -> Bucket {
        let second = millis.saturating_mul(1000);
        let capacity = if millis == 0 {
            0
        } else {
            second.max(UNITS_PER_REQUEST)
        };
        Bucket {
            refill: millis,
            capacity,
            state: Mutex::new((capacity, now.millis())),
        }
    }

    /// A full bucket of `rate` requests per second.
    fn per_second(rate: u32, now: Timestamp) -> Bucket {
        Bucket::new(u64::from(rate) * 1000, now)
    }

    /// A full bucket of `rate`.
    fn at(rate: RequestRate, now: Timestamp) -> Bucket {
        Bucket::new(u64::from(rate.millis()), now)
    }

    /// Takes `cost` requests if the bucket holds them.
    fn take(&self, now: Timestamp, cost: u32) -> bool {
        let mut s = lock(&self.state);
        let (units, at) = *s;
        let elapsed = u64::try_from(now.millis().saturating_sub(at)).unwrap_or(0);
        let units = units
            .saturating_add(elapsed.saturating_mul(self.refill))
            .min(self.capacity);
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

/// The account-wide quota a request on a key counts against, by the key's type: AWS computes
/// each type's separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyQuota {
    /// [`QuotaConfig::account_crypto_rate`].
    Symmetric,
    /// [`QuotaConfig::rsa_crypto_rate`].
    Rsa,
    /// [`QuotaConfig::ecc_crypto_rate`].
    Ecc,
}

impl KeyQuota {
    /// The quota of a key of `spec`; `None` (a key not found, whose request then fails) counts
    /// as symmetric, as every request did before the key types had quotas of their own.
    const fn of(spec: Option<KeySpec>) -> KeyQuota {
        let Some(spec) = spec else {
            return KeyQuota::Symmetric;
        };
        match spec {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => KeyQuota::Rsa,
            KeySpec::EccNistP256
            | KeySpec::EccNistP384
            | KeySpec::EccNistP521
            | KeySpec::EccSecgP256k1
            | KeySpec::EccNistEdwards25519
            | KeySpec::Sm2 => KeyQuota::Ecc,
            // An HMAC key is symmetric to AWS's quotas (GenerateMac, VerifyMac); ML-DSA keys,
            // which have a rate of their own on AWS, kmscks does not make.
            KeySpec::SymmetricDefault
            | KeySpec::Hmac224
            | KeySpec::Hmac256
            | KeySpec::Hmac384
            | KeySpec::Hmac512
            | KeySpec::MlDsa44
            | KeySpec::MlDsa65
            | KeySpec::MlDsa87 => KeyQuota::Symmetric,
        }
    }
}

/// What the quotas need of a key: its custom key store (`None`: the default key store) and its
/// spec. Neither ever changes.
#[derive(Clone, Debug)]
pub(super) struct KeyFacts {
    store: Option<CustomKeyStoreId>,
    spec: KeySpec,
}

impl KeyFacts {
    fn of(key: &Key) -> KeyFacts {
        KeyFacts {
            store: key.store().cloned(),
            spec: key.spec,
        }
    }
}

/// The emulated quotas of one instance.
#[derive(Debug)]
pub(super) struct Throttle {
    config: QuotaConfig,
    /// The account's symmetric cryptographic requests.
    account: Bucket,
    /// The account's requests on RSA keys.
    rsa: Bucket,
    /// The account's requests on elliptic curve keys.
    ecc: Bucket,
    /// One bucket per data key pair spec, in [`DataKeyPairSpec::ALL`]'s order (`None`: the
    /// spec has no rate).
    data_key_pairs: Vec<Option<Bucket>>,
    /// One bucket per custom key store operation, in [`KEY_STORE_OPS`]'s order.
    key_store_api: [Bucket; KEY_STORE_OPS.len()],
    stores: Mutex<HashMap<CustomKeyStoreId, Arc<Bucket>>>,
    /// What the quotas need of each key seen. A key's store and spec never change and key ids
    /// are never reused, so an entry never goes stale.
    keys: RwLock<HashMap<KeyId, KeyFacts>>,
}

impl Throttle {
    pub(super) fn new(config: QuotaConfig, now: Timestamp) -> Throttle {
        Throttle {
            account: Bucket::per_second(config.account_crypto_rate, now),
            rsa: Bucket::per_second(config.rsa_crypto_rate, now),
            ecc: Bucket::per_second(config.ecc_crypto_rate, now),
            data_key_pairs: DataKeyPairSpec::ALL
                .iter()
                .map(|spec| {
                    let rate = config.data_key_pair_rates.get(spec)?;
                    Some(Bucket::at(*rate, now))
                })
                .collect(),
            key_store_api: std::array::from_fn(|_| {
                Bucket::per_second(config.key_store_api_rate, now)
            }),
            config,
            stores: Mutex::new(HashMap::new()),
            keys: RwLock::new(HashMap::new()),
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

    /// Charges one symmetric cryptographic request: to each store it uses (once per distinct
    /// store, at `cost`), then to the account.
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
        self.charge_stores(now, stores.iter(), cost)?;
        take(&self.account, now)
    }

    /// Charges one request on keys by their type (Sign, Verify, DeriveSharedSecret, and
    /// Encrypt, Decrypt and ReEncrypt with an asymmetric algorithm): to each store its keys
    /// use, once per distinct store, then to each distinct key type's account quota once (a
    /// ReEncrypt from a symmetric key to an RSA key counts against both).
    fn by_key_type(
        &self,
        now: Timestamp,
        keys: &[(Option<CustomKeyStoreId>, KeyQuota)],
    ) -> Result<()> {
        self.charge_stores(now, keys.iter().map(|(store, _)| store), 1)?;
        for (i, (_, quota)) in keys.iter().enumerate() {
            if keys[..i].iter().any(|(_, q)| q == quota) {
                continue;
            }
            take(
                match quota {
                    KeyQuota::Symmetric => &self.account,
                    KeyQuota::Rsa => &self.rsa,
                    KeyQuota::Ecc => &self.ecc,
                },
                now,
            )?;
        }
        Ok(())
    }

    /// Charges one GenerateDataKeyPair(WithoutPlaintext) request: to the store of its key, if
    /// any, then to its pair spec's own rate (not to the symmetric rate: AWS counts these
    /// operations apart).
    fn data_key_pair(
        &self,
        now: Timestamp,
        store: Option<CustomKeyStoreId>,
        spec: DataKeyPairSpec,
    ) -> Result<()> {
        self.charge_stores(now, std::iter::once(&store), 1)?;
        let i = DataKeyPairSpec::ALL.iter().position(|&s| s == spec);
        match i.and_then(|i| self.data_key_pairs[i].as_ref()) {
            Some(bucket) => take(bucket, now),
            None => Ok(()),
        }
    }

    /// Charges `cost` to each distinct store of `stores`.
    fn charge_stores<'s>(
        &self,
        now: Timestamp,
        stores: impl Iterator<Item = &'s Option<CustomKeyStoreId>> + Clone,
        cost: u32,
    ) -> Result<()> {
        for (i, store) in stores.clone().enumerate() {
            let Some(store) = store else { continue };
            if stores.clone().take(i).any(|s| s.as_ref() == Some(store)) {
                continue;
            }
            if !self.store_bucket(store, now).take(now, cost) {
                return Err(throttled());
            }
        }
        Ok(())
    }

    fn store_bucket(&self, store: &CustomKeyStoreId, now: Timestamp) -> Arc<Bucket> {
        lock(&self.stores)
            .entry(store.clone())
            .or_insert_with(|| Arc::new(Bucket::per_second(self.config.store_crypto_rate, now)))
            .clone()
    }

    /// What the quotas need of `key`, if it has been seen.
    pub(super) fn known_key(&self, key: &KeyId) -> Option<KeyFacts> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Remembers what the quotas need of `key`.
    pub(super) fn remember_key(&self, key: KeyId, facts: KeyFacts) {
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, facts);
    }
}

/// Takes one request from `bucket`, or AWS's throttling answer.
fn take(bucket: &Bucket, now: Timestamp) -> Result<()> {
    if bucket.take(now, 1) {
        Ok(())
    } else {
        Err(throttled())
    }
}

/// What a cryptographic request names, to find the stores and keys it uses.
pub(super) enum Uses<'r> {
    /// A key reference (key id, key ARN, alias).
    Key(KeyName<'r>),
    /// A ciphertext blob (the key id it carries).
    Blob(&'r [u8]),
    /// A custom key store by id (GenerateRandom).
    Store(&'r str),
}

impl Kms {
    /// Charges a symmetric cryptographic request to the emulated quotas, if they are on;
    /// `uses`: the keys, blobs or stores it names. Nothing it cannot resolve is charged to a
    /// store (the operation then answers the error).
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
        let stores: Vec<Option<CustomKeyStoreId>> = uses
            .iter()
            .map(|u| self.used(throttle, u).and_then(|f| f.store))
            .collect();
        throttle.crypto(self.shared.config.clock.now(), &stores, cost)
    }

    /// Charges a request whose quota is its keys' type's (Sign, Verify, DeriveSharedSecret,
    /// and Encrypt, Decrypt and ReEncrypt with an asymmetric algorithm) to the emulated
    /// quotas, if they are on: RSA keys to the RSA rate, elliptic curve keys to the ECC rate,
    /// any other (a symmetric source blob, a key not found) to the symmetric rate.
    pub(super) fn charge_by_key_type(&self, uses: &[Uses<'_>]) -> Result<()> {
        let Some(throttle) = &self.shared.throttle else {
            return Ok(());
        };
        let keys: Vec<(Option<CustomKeyStoreId>, KeyQuota)> = uses
            .iter()
            .map(|u| {
                let used = self.used(throttle, u);
                let (store, spec) = used.map_or((None, None), |f| (f.store, f.spec));
                (store, KeyQuota::of(spec))
            })
            .collect();
        throttle.by_key_type(self.shared.config.clock.now(), &keys)
    }

    /// Charges a GenerateDataKeyPair(WithoutPlaintext) request for a pair of `spec` sealed
    /// under `key` to the emulated quotas, if they are on.
    pub(super) fn charge_data_key_pair(
        &self,
        key: KeyName<'_>,
        spec: DataKeyPairSpec,
    ) -> Result<()> {
        let Some(throttle) = &self.shared.throttle else {
            return Ok(());
        };
        let store = self.used(throttle, &Uses::Key(key)).and_then(|f| f.store);
        throttle.data_key_pair(self.shared.config.clock.now(), store, spec)
    }

    /// Charges a request of the custom key store operation `op` to the emulated quotas (its
    /// own rate), if they are on.
    pub(super) fn charge_key_store_api(&self, op: Op) -> Result<()> {
        match &self.shared.throttle {
            None => Ok(()),
            Some(t) => t.key_store_api(op, self.shared.config.clock.now()),
        }
    }

    /// The store and spec of the key a request uses, if any (only with quotas on: aliases
    /// and keys seen for the first time are looked up in the control-plane state). A custom
    /// key store named by id (GenerateRandom) is a store and no key.
    fn used(&self, throttle: &Throttle, uses: &Uses<'_>) -> Option<Used> {
        let id = match uses {
            Uses::Store(text) => {
                return Some(Used {
                    store: CustomKeyStoreId::parse(text),
                    spec: None,
                })
            }
            Uses::Blob(blob) => crate::crypto::blob::parse(blob).ok()?.key_id,
            Uses::Key(KeyName::Id(id)) => *id,
            // In a forked child the core is refused (`Shared::core`): charged as no store's,
            // and the operation itself is refused after.
            Uses::Key(KeyName::Alias(name)) => {
                let core = self.shared.core().ok()?;
                let kms = &core.state.kms;
                let target = kms.aliases.get(name.as_ref())?.target;
                return kms.keys.get(&target).map(|k| KeyFacts::of(k).into());
            }
        };
        if let Some(known) = throttle.known_key(&id) {
            return Some(known.into());
        }
        let facts = {
            let core = self.shared.core().ok()?;
            core.state.kms.keys.get(&id).map(KeyFacts::of)?
        };
        throttle.remember_key(id, facts.clone());
        Some(facts.into())
    }
}

/// What a request uses, as [`Kms::used`] finds it.
struct Used {
    store: Option<CustomKeyStoreId>,
    /// `None` for a custom key store named by id.
    spec: Option<KeySpec>,
}

impl From<KeyFacts> for Used {
    fn from(f: KeyFacts) -> Used {
        Used {
            store: f.store,
            spec: Some(f.spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_one_second_and_refills_at_its_rate() {
        let b = Bucket::per_second(10, Timestamp(0));
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
        let b = Bucket::per_second(6, Timestamp(1000));
        assert!(b.take(Timestamp(1000), 3));
        assert!(b.take(Timestamp(1000), 3));
        assert!(!b.take(Timestamp(500), 1));
        assert!(!b.take(Timestamp(1000), 1));
    }

    #[test]
    fn a_rate_under_one_a_second_lets_one_request_through_per_interval() {
        // AWS's RSA_4096 data key pair rate: one request in each 10-second interval.
        let b = Bucket::at(RequestRate::from_millis(100), Timestamp(0));
        assert!(b.take(Timestamp(0), 1));
        assert!(!b.take(Timestamp(0), 1));
        assert!(!b.take(Timestamp(9_999), 1), "0.9999 requests refilled");
        assert!(b.take(Timestamp(10_000), 1));
        assert!(!b.take(Timestamp(10_000), 1));
        assert!(b.take(Timestamp(1_000_000), 1));
        assert!(!b.take(Timestamp(1_000_000), 1), "one request held at most");
        let zero = Bucket::at(RequestRate::ZERO, Timestamp(0));
        assert!(
            !zero.take(Timestamp(1_000_000), 1),
            "a rate of 0 refuses everything"
        );
    }

    #[test]
    fn each_key_type_is_charged_to_its_own_account_rate() {
        let config = QuotaConfig {
            account_crypto_rate: 1,
            rsa_crypto_rate: 2,
            ecc_crypto_rate: 1,
            ..QuotaConfig::default()
        };
        let t = Throttle::new(config, Timestamp(0));
        let now = Timestamp(0);
        let (rsa, ecc) = ([(None, KeyQuota::Rsa)], [(None, KeyQuota::Ecc)]);
        assert!(t.by_key_type(now, &rsa).is_ok());
        assert!(t.by_key_type(now, &rsa).is_ok());
        assert!(t.by_key_type(now, &rsa).is_err(), "the third RSA request");
        assert!(
            t.by_key_type(now, &ecc).is_ok(),
            "RSA's burst leaves ECC its rate"
        );
        assert!(t.by_key_type(now, &ecc).is_err());
        assert!(
            t.crypto(now, &[], CryptoCost::Plain).is_ok(),
            "and the symmetric rate"
        );
        assert!(t.crypto(now, &[], CryptoCost::Plain).is_err());
    }

    #[test]
    fn each_data_key_pair_spec_has_its_own_rate_and_sm2_none() {
        let t = Throttle::new(QuotaConfig::default(), Timestamp(0));
        let now = Timestamp(0);
        assert!(t.data_key_pair(now, None, DataKeyPairSpec::Rsa4096).is_ok());
        assert!(t
            .data_key_pair(now, None, DataKeyPairSpec::Rsa4096)
            .is_err());
        assert!(t.data_key_pair(now, None, DataKeyPairSpec::Rsa2048).is_ok());
        for _ in 0..25 {
            assert!(t
                .data_key_pair(now, None, DataKeyPairSpec::EccNistP256)
                .is_ok());
        }
        assert!(t
            .data_key_pair(now, None, DataKeyPairSpec::EccNistP256)
            .is_err());
        assert!(
            t.crypto(now, &[], CryptoCost::Plain).is_ok(),
            "apart from symmetric"
        );
        for _ in 0..100 {
            assert!(t.data_key_pair(now, None, DataKeyPairSpec::Sm2).is_ok());
        }
    }

    #[test]
    fn every_key_spec_falls_under_the_quota_of_its_type() {
        for &spec in KeySpec::ALL {
            let name = spec.as_str();
            let want = if name.starts_with("RSA_") {
                KeyQuota::Rsa
            } else if name.starts_with("ECC_") || name == "SM2" {
                KeyQuota::Ecc
            } else {
                KeyQuota::Symmetric
            };
            assert_eq!(KeyQuota::of(Some(spec)), want, "{spec}");
        }
        assert_eq!(KeyQuota::of(None), KeyQuota::Symmetric);
    }
}
