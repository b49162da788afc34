//! In-process load generator: drives a [`Kms`] (or the raw aws-lc-rs baseline) from N
//! threads for a fixed time and reports throughput and latency percentiles.
//!
//! The baseline is what the engine is measured against: the same operation written directly
//! against aws-lc-rs with a cached expanded key, counter nonces and pooled randomness, on the
//! same number of threads, returning freshly allocated buffers like the engine does. Latency
//! is per call (a batch call counts once); throughput counts items.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::agreement::{self, UnparsedPublicKey, ECDH_P256};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use hdrhistogram::Histogram;
use serde::Serialize;

use kmscks::api::kms::{
    CreateKeyRequest, DecryptRequest, DeriveSharedSecretRequest, EncryptRequest,
    GenerateDataKeyPairRequest, GenerateDataKeyRequest, GenerateMacRequest, GenerateRandomRequest,
    SignRequest, VerifyRequest,
};
use kmscks::engine::{counter_nonce, RandomPool};
use kmscks::err;
use kmscks::error::Result;
use kmscks::secret::SecretBytes;
use kmscks::types::limits::{MESSAGE_LEN, NUMBER_OF_BYTES, PLAINTEXT_LEN};
use kmscks::types::{
    DataKeyPairSpec, DataKeySpec, KeyAgreementAlgorithm, KeySpec, KeyUsage, MacAlgorithm,
    SigningAlgorithm,
};
use kmscks::{BatchScratch, Kms};

/// The operation to drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum LoadOp {
    /// Encrypt `payload` bytes.
    Encrypt,
    /// Decrypt a `payload`-byte ciphertext.
    Decrypt,
    /// GenerateDataKey with `payload` bytes (`NumberOfBytes`; 32 = AES_256).
    GenerateDataKey,
    /// GenerateRandom of `payload` bytes.
    GenerateRandom,
    /// GenerateMac of a `payload`-byte message under an HMAC_256 key made for the run.
    GenerateMac,
    /// Sign (ECDSA_SHA_256) of a `payload`-byte message under an ECC_NIST_P256 key made for
    /// the run.
    Sign,
    /// Verify of such a signature.
    Verify,
    /// GenerateDataKeyPair of an ECC_NIST_P256 pair under a symmetric key of the default key
    /// store made for the run (`payload` is not used).
    GenerateDataKeyPair,
    /// DeriveSharedSecret (ECDH) under an ECC_NIST_P256 KEY_AGREEMENT key made for the run,
    /// with a peer public key made for the run ([`peer_public_key`]); the payload is not used.
    DeriveSharedSecret,
}

impl LoadOp {
    /// The AWS operation name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LoadOp::Encrypt => "Encrypt",
            LoadOp::Decrypt => "Decrypt",
            LoadOp::GenerateDataKey => "GenerateDataKey",
            LoadOp::GenerateRandom => "GenerateRandom",
            LoadOp::GenerateMac => "GenerateMac",
            LoadOp::Sign => "Sign",
            LoadOp::Verify => "Verify",
            LoadOp::GenerateDataKeyPair => "GenerateDataKeyPair",
            LoadOp::DeriveSharedSecret => "DeriveSharedSecret",
        }
    }

    /// Parses an operation name (AWS spelling, case-insensitive).
    pub(crate) fn parse(s: &str) -> Option<LoadOp> {
        [
            LoadOp::Encrypt,
            LoadOp::Decrypt,
            LoadOp::GenerateDataKey,
            LoadOp::GenerateRandom,
            LoadOp::GenerateMac,
            LoadOp::Sign,
            LoadOp::Verify,
            LoadOp::GenerateDataKeyPair,
            LoadOp::DeriveSharedSecret,
        ]
        .into_iter()
        .find(|o| o.name().eq_ignore_ascii_case(s))
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub(crate) struct LoadOpts {
    /// The operation.
    pub op: LoadOp,
    /// Caller threads.
    pub threads: usize,
    /// Items per call (1 = one-at-a-time calls; more = the batch API).
    pub batch: usize,
    /// Payload bytes (plaintext size, or data key / random length).
    pub payload: usize,
    /// How long to run.
    pub duration: Duration,
    /// Batches of GenerateDataKey get their answers lent from reused buffers
    /// ([`Kms::generate_data_key_batch_with`], the daemon's path) instead of one owned response
    /// per item; the raw loop then seals into a reused buffer too.
    pub lend: bool,
}

impl Default for LoadOpts {
    fn default() -> LoadOpts {
        LoadOpts {
            op: LoadOp::GenerateDataKey,
            threads: 1,
            batch: 1,
            payload: 32,
            duration: Duration::from_secs(1),
            lend: false,
        }
    }
}

/// Results; serialises to JSON with the members the CLI prints.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LoadReport {
    /// Operation name.
    pub op: String,
    /// Caller threads.
    pub threads: usize,
    /// Items per call.
    pub batch: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Items per second.
    pub ops_per_sec: f64,
    /// Median call latency, µs.
    pub p50_us: f64,
    /// 99th percentile call latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile call latency, µs.
    pub p999_us: f64,
    /// Items failed (should be 0).
    pub errors: u64,
    /// Baseline items per second (when compared).
    pub baseline_ops_per_sec: Option<f64>,
    /// Baseline median latency, µs (when compared).
    pub baseline_p50_us: Option<f64>,
    /// Baseline 99th percentile latency, µs (when compared).
    pub baseline_p99_us: Option<f64>,
    /// Over the socket, when compared: how long the echo floor's client kept checking for a
    /// reply before it slept, µs. The floor is the faster of two, each taking turns with the
    /// daemon (`crate::loadgen_turns`); with one request in flight per connection one has the
    /// client's default and the other sleeps at once, so that the floor is the best this
    /// machine does whichever wait suits the shape; deeper pipelines never spin, and both
    /// floors have the default.
    pub baseline_reply_spin_us: Option<f64>,
    /// `ops_per_sec / baseline_ops_per_sec` (when compared).
    pub ratio: Option<f64>,
    /// The daemon's CPU time per request over its measured phases, ns, all its threads (over
    /// the socket, when `/proc` tells it; see `proc_cpu`).
    pub daemon_cpu_ns_per_op: Option<f64>,
    /// Over the socket, when compared and `daemon_cpu_ns_per_op` is read: the echo floor's
    /// serving threads' CPU time per request over the floor's phases, ns (`EchoServer::cpu_ns`):
    /// what a server that does no work on the frames and waits as the daemon waits spends on
    /// them. Where the floor's threads yield their cores to the clients, that is little, and
    /// the daemon's CPU beyond it is the daemon's own work; where a thread spins on a core of
    /// its own, both figures are mostly that core's time divided by their rate, and the
    /// daemon's work takes the place of spin rather than adding to it.
    pub baseline_cpu_ns_per_op: Option<f64>,
    /// CPU time per request of the raw aws-lc-rs loop doing the same cryptographic work, one
    /// thread, many items per call (data keys sealed into reused buffers, as the daemon seals
    /// them), measured in the same run, ns (over the socket).
    pub raw_cpu_ns_per_op: Option<f64>,
    /// With `--beside` (over the socket): the load's items per second over all the phases it
    /// ran alone; the report's own members (`ops_per_sec`, the latencies, `errors` of every
    /// phase) are then those over all the phases beside the other connection's calls.
    pub alone_ops_per_sec: Option<f64>,
    /// With `--beside`: the median latency of the load over its phases alone, µs.
    pub alone_p50_us: Option<f64>,
    /// With `--beside`: the 99th percentile latency of the load over its phases alone, µs.
    pub alone_p99_us: Option<f64>,
    /// With `--beside`: calls per second the other connection sent in its phases beside the
    /// load (every one answered before the next phase began).
    pub beside_ops_per_sec: Option<f64>,
    /// With `--beside`: the operation the other connection called (`CreateKey`, `Decrypt`,
    /// `GenerateDataKey`).
    pub beside_op: Option<String>,
    /// With `--beside`: the share of its rate alone the load kept in each phase beside the
    /// other connection's calls (against the mean of the phases alone either side of it), in
    /// the order run.
    pub beside_kept_shares: Option<Vec<f64>>,
}

impl LoadReport {
    /// One-line JSON.
    pub(crate) fn to_json(&self) -> String {
        // Serialising plain numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A latency histogram: 1 ns to 60 s at 3 significant digits.
pub(crate) fn new_hist() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant digits; these bounds are valid constants.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// What a run of [`drive`] adds up to: items done, items failed, the time taken, the calls'
/// latencies.
pub(crate) type Run = (u64, u64, Duration, Histogram<u64>);

/// Runs `body` on `threads` threads until `duration` passes; `body` returns items done per
/// call (or errors).
pub(crate) fn drive<S: Send + 'static>(
    threads: usize,
    duration: Duration,
    setup: impl Fn(usize) -> S + Send + Sync + 'static,
    body: impl Fn(&mut S) -> (u64, u64) + Send + Sync + 'static,
) -> Run {
    let threads = threads.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let setup = Arc::new(setup);
    let body = Arc::new(body);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, barrier, setup, body) =
                (stop.clone(), barrier.clone(), setup.clone(), body.clone());
            std::thread::spawn(move || {
                let mut st = setup(t);
                let mut h = new_hist();
                let (mut items, mut errs) = (0u64, 0u64);
                barrier.wait();
                // At least one call each, even if this thread first runs after `stop`: a
                // short run on a busy machine then still measures something.
                loop {
                    let t0 = Instant::now();
                    let (ok, bad) = body(&mut st);
                    let ns = t0.elapsed().as_nanos().max(1) as u64;
                    let _ = h.record(ns.min(60_000_000_000));
                    items += ok;
                    errs += bad;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                (items, errs, h)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut hist = new_hist();
    let (mut items, mut errs) = (0, 0);
    for h in handles {
        if let Ok((i, e, hh)) = h.join() {
            items += i;
            errs += e;
            let _ = hist.add(&hh);
        }
    }
    (items, errs, start.elapsed(), hist)
}

fn report(opts: &LoadOpts, r: Run) -> LoadReport {
    let (items, errors, elapsed, h) = r;
    LoadReport::measured(
        opts.op,
        (opts.threads, opts.batch),
        opts.payload,
        (items, errors),
        elapsed,
        &h,
    )
}

impl LoadReport {
    /// A report of `items` done (and `errors` failed) in `elapsed` with latencies `h`;
    /// `shape` is (threads, batch) in process, (connections, pipeline) over the socket.
    pub(crate) fn measured(
        op: LoadOp,
        shape: (usize, usize),
        payload: usize,
        (items, errors): (u64, u64),
        elapsed: Duration,
        h: &Histogram<u64>,
    ) -> LoadReport {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        LoadReport {
            op: op.name().to_string(),
            threads: shape.0,
            batch: shape.1,
            payload,
            ops_per_sec: items as f64 / elapsed.as_secs_f64(),
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            errors,
            baseline_ops_per_sec: None,
            baseline_p50_us: None,
            baseline_reply_spin_us: None,
            baseline_p99_us: None,
            ratio: None,
            daemon_cpu_ns_per_op: None,
            baseline_cpu_ns_per_op: None,
            raw_cpu_ns_per_op: None,
            alone_ops_per_sec: None,
            alone_p50_us: None,
            alone_p99_us: None,
            beside_ops_per_sec: None,
            beside_op: None,
            beside_kept_shares: None,
        }
    }

    /// This report with `b` as its baseline and the ratio filled in.
    pub(crate) fn with_baseline(mut self, b: &LoadReport) -> LoadReport {
        self.baseline_ops_per_sec = Some(b.ops_per_sec);
        self.baseline_p50_us = Some(b.p50_us);
        self.baseline_p99_us = Some(b.p99_us);
        self.ratio = Some(self.ops_per_sec / b.ops_per_sec.max(f64::MIN_POSITIVE));
        self
    }
}

/// Per-thread requests, built once and reused for every call (no per-call request building).
struct KmsCaller {
    kms: Kms,
    encrypt: EncryptRequest,
    decrypt: DecryptRequest,
    data_key: GenerateDataKeyRequest,
    random: GenerateRandomRequest,
    mac: GenerateMacRequest,
    sign: SignRequest,
    verify: VerifyRequest,
    key_pair: GenerateDataKeyPairRequest,
    derive: DeriveSharedSecretRequest,
    encrypt_batch: Vec<EncryptRequest>,
    decrypt_batch: Vec<DecryptRequest>,
    data_key_batch: Vec<GenerateDataKeyRequest>,
    /// The reused buffers of lent batch answers (`LoadOpts::lend`).
    scratch: BatchScratch,
}

fn check_payload(op: LoadOp, payload: usize) -> Result<()> {
    // Encrypt and Decrypt carry a plaintext; the other ops ask for `NumberOfBytes`.
    let (min, max) = match op {
        LoadOp::Encrypt | LoadOp::Decrypt => PLAINTEXT_LEN,
        // DeriveSharedSecret takes no payload: any size a message could have is accepted.
        LoadOp::GenerateMac | LoadOp::Sign | LoadOp::Verify | LoadOp::DeriveSharedSecret => {
            MESSAGE_LEN
        }
        LoadOp::GenerateDataKey | LoadOp::GenerateRandom => {
            (NUMBER_OF_BYTES.0 as usize, NUMBER_OF_BYTES.1 as usize)
        }
        LoadOp::GenerateDataKeyPair => return Ok(()),
    };
    if !(min..=max).contains(&payload) {
        return Err(err!(
            ValidationException,
            "payload {payload} is out of range for {}",
            op.name()
        ));
    }
    Ok(())
}

/// Drives a [`Kms`] through its public API (key reference parsing, policy, gates, the engine:
/// the whole in-process path) with `key_id` (id, ARN or alias) as `opts` says.
pub(crate) fn run_kms(kms: &Kms, key_id: &str, opts: &LoadOpts) -> Result<LoadReport> {
    let load = KmsLoad::prepare(kms, key_id, opts)?;
    Ok(report(opts, load.run(opts.threads, opts.duration)))
}

/// What the engine's side of a measurement calls with, made once for all its phases: the
/// requests, a ciphertext for Decrypt, the key a run of its kind needs of its own, the
/// signature Verify checks; a first call made, so that a setup error surfaces here rather than
/// as error counts.
struct KmsLoad {
    kms: Kms,
    op: LoadOp,
    lend: bool,
    batch: usize,
    payload: usize,
    encrypt: EncryptRequest,
    sample: Vec<u8>,
    data_key: GenerateDataKeyRequest,
    mac: GenerateMacRequest,
    sign: SignRequest,
    signature: Vec<u8>,
    key_pair: GenerateDataKeyPairRequest,
    derive: DeriveSharedSecretRequest,
}

impl KmsLoad {
    fn prepare(kms: &Kms, key_id: &str, opts: &LoadOpts) -> Result<Arc<KmsLoad>> {
        let (op, lend) = (opts.op, opts.lend);
        let (batch, payload) = (opts.batch.max(1), opts.payload);
        check_payload(op, payload)?;
        let encrypt = EncryptRequest {
            key_id: key_id.to_owned(),
            plaintext: SecretBytes::new(vec![0x5a; payload]),
            ..Default::default()
        };
        let sample = kms.encrypt(&encrypt)?.ciphertext_blob;
        let data_key = GenerateDataKeyRequest {
            key_id: key_id.to_owned(),
            key_spec: (payload == 32).then_some(DataKeySpec::Aes256),
            number_of_bytes: (payload != 32).then_some(payload as u32),
            ..Default::default()
        };
        if op == LoadOp::GenerateDataKey {
            // A warm-up call, so that a setup error surfaces here rather than as error counts.
            kms.generate_data_key(&data_key)?;
        }
        // GenerateMac, Sign and Verify need a key of their kind, in the default key store.
        let own_key = match bench_key_request(op) {
            Some(req) => kms.create_key(&req)?.key_metadata.arn,
            None => String::new(),
        };
        let mac = GenerateMacRequest {
            key_id: own_key.clone(),
            message: SecretBytes::new(vec![0x5a; payload]),
            mac_algorithm: Some(MacAlgorithm::HmacSha256),
            ..Default::default()
        };
        if op == LoadOp::GenerateMac {
            kms.generate_mac(&mac)?;
        }
        let sign = SignRequest {
            key_id: own_key.clone(),
            message: SecretBytes::new(vec![0x5a; payload]),
            signing_algorithm: Some(SigningAlgorithm::EcdsaSha256),
            ..Default::default()
        };
        let signature = if matches!(op, LoadOp::Sign | LoadOp::Verify) {
            kms.sign(&sign)?.signature
        } else {
            Vec::new()
        };
        let key_pair = key_pair_request(&own_key);
        if op == LoadOp::GenerateDataKeyPair {
            kms.generate_data_key_pair(&key_pair)?;
        }
        let derive = DeriveSharedSecretRequest {
            key_id: own_key.clone(),
            key_agreement_algorithm: Some(KeyAgreementAlgorithm::Ecdh),
            public_key: peer_public_key()?,
            ..Default::default()
        };
        if op == LoadOp::DeriveSharedSecret {
            kms.derive_shared_secret(&derive)?;
        }
        Ok(Arc::new(KmsLoad {
            kms: kms.clone(),
            op,
            lend,
            batch,
            payload,
            encrypt,
            sample,
            data_key,
            mac,
            sign,
            signature,
            key_pair,
            derive,
        }))
    }

    /// One driving thread's requests, built once for its calls.
    fn caller(&self) -> KmsCaller {
        let encrypt = EncryptRequest {
            key_id: self.encrypt.key_id.clone(),
            plaintext: self.encrypt.plaintext.duplicate(),
            ..Default::default()
        };
        let decrypt = DecryptRequest {
            ciphertext_blob: self.sample.clone(),
            ..Default::default()
        };
        let random = GenerateRandomRequest {
            number_of_bytes: Some(self.payload as u32),
            custom_key_store_id: None,
        };
        KmsCaller {
            kms: self.kms.clone(),
            encrypt_batch: (0..self.batch)
                .map(|_| EncryptRequest {
                    key_id: encrypt.key_id.clone(),
                    plaintext: encrypt.plaintext.duplicate(),
                    ..Default::default()
                })
                .collect(),
            decrypt_batch: vec![decrypt.clone(); self.batch],
            data_key_batch: vec![self.data_key.clone(); self.batch],
            scratch: BatchScratch::default(),
            encrypt,
            decrypt,
            data_key: self.data_key.clone(),
            random,
            mac: GenerateMacRequest {
                key_id: self.mac.key_id.clone(),
                message: self.mac.message.duplicate(),
                mac_algorithm: self.mac.mac_algorithm,
                ..Default::default()
            },
            sign: SignRequest {
                key_id: self.sign.key_id.clone(),
                message: self.sign.message.duplicate(),
                signing_algorithm: self.sign.signing_algorithm,
                ..Default::default()
            },
            verify: VerifyRequest {
                key_id: self.sign.key_id.clone(),
                message: self.sign.message.duplicate(),
                signing_algorithm: self.sign.signing_algorithm,
                signature: self.signature.clone(),
                ..Default::default()
            },
            key_pair: self.key_pair.clone(),
            derive: DeriveSharedSecretRequest {
                key_id: self.derive.key_id.clone(),
                key_agreement_algorithm: self.derive.key_agreement_algorithm,
                public_key: self.derive.public_key.clone(),
                ..Default::default()
            },
        }
    }

    /// `threads` threads calling for `duration`.
    fn run(self: &Arc<Self>, threads: usize, duration: Duration) -> Run {
        let (op, lend, batch) = (self.op, self.lend, self.batch);
        let load = self.clone();
        drive(
            threads,
            duration,
            move |_| load.caller(),
            move |c| {
                let one = |ok: bool| if ok { (1, 0) } else { (0, 1) };
                let many = |errs: usize| (batch as u64 - errs as u64, errs as u64);
                // `batch` calls one after the other: how many failed.
                let failed = |call: &dyn Fn() -> bool| (0..batch).filter(|_| !call()).count();
                match (op, batch) {
                    (LoadOp::Encrypt, 1) => one(c.kms.encrypt(&c.encrypt).is_ok()),
                    (LoadOp::Encrypt, _) => many(errors(&c.kms.encrypt_batch(&c.encrypt_batch))),
                    (LoadOp::Decrypt, 1) => one(c.kms.decrypt(&c.decrypt).is_ok()),
                    (LoadOp::Decrypt, _) => many(errors(&c.kms.decrypt_batch(&c.decrypt_batch))),
                    (LoadOp::GenerateDataKey, 1) => {
                        one(c.kms.generate_data_key(&c.data_key).is_ok())
                    }
                    (LoadOp::GenerateDataKey, _) if lend => {
                        let items: Vec<_> = c
                            .data_key_batch
                            .iter()
                            .map(GenerateDataKeyRequest::borrowed)
                            .collect();
                        let mut errs = 0;
                        c.kms.generate_data_key_batch_with(
                            &items,
                            true,
                            &mut c.scratch,
                            |r| match r {
                                Ok(v) => {
                                    std::hint::black_box((v.ciphertext_blob, v.plaintext));
                                }
                                Err(_) => errs += 1,
                            },
                        );
                        many(errs)
                    }
                    (LoadOp::GenerateDataKey, _) => many(errors(
                        &c.kms.generate_data_key_batch(&c.data_key_batch, true),
                    )),
                    (LoadOp::GenerateRandom, _) => {
                        many(failed(&|| c.kms.generate_random(&c.random).is_ok()))
                    }
                    // No batch form in AWS's API: `batch` calls one after the other.
                    (LoadOp::GenerateMac, _) => {
                        many(failed(&|| c.kms.generate_mac(&c.mac).is_ok()))
                    }
                    (LoadOp::Sign, _) => many(failed(&|| c.kms.sign(&c.sign).is_ok())),
                    (LoadOp::Verify, _) => many(failed(&|| c.kms.verify(&c.verify).is_ok())),
                    (LoadOp::GenerateDataKeyPair, _) => many(failed(&|| {
                        c.kms.generate_data_key_pair(&c.key_pair).is_ok()
                    })),
                    (LoadOp::DeriveSharedSecret, _) => {
                        many(failed(&|| c.kms.derive_shared_secret(&c.derive).is_ok()))
                    }
                }
            },
        )
    }
}

/// How many of a batch's answers failed.
fn errors<T>(answers: &[Result<T>]) -> usize {
    answers.iter().filter(|r| r.is_err()).count()
}

/// The CreateKey request of the key a run of `op` makes for itself when it needs a key of
/// its own kind (every mode makes the same): an HMAC_256 key for GenerateMac, an
/// ECC_NIST_P256 signing key for Sign and Verify, an ECC_NIST_P256 key agreement key for
/// DeriveSharedSecret, a symmetric key of the default key store for GenerateDataKeyPair
/// (which refuses custom key store keys); `None` for the other operations.
pub(crate) fn bench_key_request(op: LoadOp) -> Option<CreateKeyRequest> {
    let (spec, usage) = match op {
        LoadOp::GenerateMac => (KeySpec::Hmac256, KeyUsage::GenerateVerifyMac),
        LoadOp::Sign | LoadOp::Verify => (KeySpec::EccNistP256, KeyUsage::SignVerify),
        LoadOp::GenerateDataKeyPair => (KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt),
        LoadOp::DeriveSharedSecret => (KeySpec::EccNistP256, KeyUsage::KeyAgreement),
        _ => return None,
    };
    Some(CreateKeyRequest {
        description: Some("kmscks bench".into()),
        key_spec: Some(spec),
        key_usage: Some(usage),
        ..Default::default()
    })
}

/// The pair every mode's GenerateDataKeyPair run asks for, under `key_id`.
pub(crate) fn key_pair_request(key_id: &str) -> GenerateDataKeyPairRequest {
    GenerateDataKeyPairRequest {
        key_id: key_id.to_owned(),
        key_pair_spec: Some(DataKeyPairSpec::EccNistP256),
        ..Default::default()
    }
}

/// A fresh P-256 public key, DER SubjectPublicKeyInfo: the peer of a DeriveSharedSecret run
/// (every mode makes one; its private key is dropped, the run needs the public key only).
pub(crate) fn peer_public_key() -> Result<Vec<u8>> {
    let failed = || err!(KMSInternalException, "could not make a P-256 peer key");
    let der: PublicKeyX509Der<'static> = agreement::PrivateKey::generate(&ECDH_P256)
        .and_then(|k| k.compute_public_key())
        .and_then(|p| p.as_der())
        .map_err(|_| failed())?;
    Ok(der.as_ref().to_vec())
}

/// [`run_kms`] and the raw baseline on the same threads and sizes, taking turns in phases of
/// about [`PHASE`] (`opts.duration` of each in all), each side's phases pooled; with the
/// ratio filled in.
pub(crate) fn compare_kms(kms: &Kms, key_id: &str, opts: &LoadOpts) -> Result<LoadReport> {
    let pairs = compared_pairs(opts.duration);
    let phase = LoadOpts {
        duration: opts.duration / pairs,
        ..opts.clone()
    };
    let load = KmsLoad::prepare(kms, key_id, opts)?;
    let (mut ours, mut floor) = (empty_run(), empty_run());
    for pair in 0..pairs {
        // Floor first in every other pair (A B B A …), so that a drift within a pair cancels.
        if pair % 2 == 1 {
            add_run(&mut floor, baseline_run(&phase));
        }
        add_run(&mut ours, load.run(opts.threads, phase.duration));
        if pair % 2 == 0 {
            add_run(&mut floor, baseline_run(&phase));
        }
    }
    Ok(report(opts, ours).with_baseline(&report(opts, floor)))
}

/// About how long each phase of a measurement taking turns lasts: the in-process engine and
/// its floor ([`compare_kms`]), the daemon or an HTTP endpoint and their echo floors
/// (`crate::loadgen_turns`), a load alone and beside another connection's calls
/// (`crate::loadgen_beside`). `--duration` is cut into phases this long, or shorter where a
/// measurement needs more of them than that gives ([`phases_in`]).
///
/// Why turns: this 2-core VM's speed drifts by a tenth or more within seconds (the performance
/// history's "slow modes"). Measured one after the other, each side met other seconds of the
/// machine, and a ratio moved with whichever side met the slower ones; turns of half a second
/// pooled over the run meet the same drift on both sides.
pub(crate) const PHASE: Duration = Duration::from_millis(500);

/// Phases of each kind in a measurement of `duration`: one per [`PHASE`] of it, at least
/// `least`.
pub(crate) fn phases_in(duration: Duration, least: u32) -> u32 {
    let n = duration.as_nanos() / PHASE.as_nanos();
    u32::try_from(n).unwrap_or(u32::MAX).max(least)
}

/// Pairs of phases (one of the engine, one of the floor) in a comparison of `duration`: one
/// per [`PHASE`] of it, an even number when more than one, so that each side goes first as
/// often as the other.
pub(crate) fn compared_pairs(duration: Duration) -> u32 {
    match phases_in(duration, 1) {
        1 => 1,
        n => n - n % 2,
    }
}

/// How long each side of a measurement in turns runs before the turns begin, uncounted
/// (pipelines filling, loops starting their spin, caches warming): the load of
/// `crate::loadgen_beside` before its first phase, each side of `crate::loadgen_turns`.
pub(crate) const WARM_UP: Duration = Duration::from_millis(100);

/// A run of nothing yet, to pool phases into ([`add_run`]).
pub(crate) fn empty_run() -> Run {
    (0, 0, Duration::ZERO, new_hist())
}

/// Adds run `r` to the pooled `into`: items, failures, time and latencies.
pub(crate) fn add_run(into: &mut Run, r: Run) {
    into.0 += r.0;
    into.1 += r.1;
    into.2 += r.2;
    let _ = into.3.add(&r.3);
}

/// An in-memory instance made ready for load by
/// [`build_ready_system`](kmscks::daemon::bootstrap::build_ready_system): a key in a connected
/// custom key store, whose ARN is returned (callers at volume name keys by id or ARN; an alias
/// costs one more lookup per call).
pub(crate) fn bench_instance(config: kmscks::KmsConfig) -> Result<(Kms, String)> {
    let kms = Kms::in_memory_with(config);
    let b = kmscks::daemon::bootstrap::build_ready_system(&kms, "alias/bench")?;
    Ok((kms, b.key_arn))
}

struct Raw {
    key: LessSafeKey,
    /// The HMAC_256 key of the GenerateMac floor: made once, as the engine parses its once.
    hmac: hmac::Key,
    /// `payload` bytes made once per thread, as the request's are: the Encrypt floor's
    /// plaintext, the GenerateMac, Sign and Verify floors' message.
    message: Vec<u8>,
    /// The P-256 key pair of the Sign and Verify floor, its parsed public key and a
    /// signature of `message`: made once, as the engine parses its keys once.
    ecdsa: EcdsaKeyPair,
    public: ParsedPublicKey,
    signature: Vec<u8>,
    /// The P-256 key of the DeriveSharedSecret floor, made once, and the peer's public key
    /// as DER, parsed per call as the engine parses the request's.
    ecdh: agreement::PrivateKey,
    peer: Vec<u8>,
    pool: RandomPool,
    /// The reused buffers of the lending floor (`LoadOpts::lend`): sealed data keys, and the
    /// data keys themselves (kept, as the engine keeps them for the caller, then wiped).
    lent: (Vec<u8>, Vec<u8>),
    counter: u64,
    aad: [u8; 60],
    sample: (Vec<u8>, [u8; 16], [u8; 12]),
}

impl Raw {
    /// A floor's state for one thread: a fresh key and pool, and each floor's own setup (keys
    /// parsed, a sample sealed), made once as the engine makes its once.
    fn new(payload: usize) -> Raw {
        let mut material = [0u8; 32];
        let mut pool = RandomPool::new();
        // Pool failures would mean no system randomness at all.
        pool.fill(&mut material).expect("randomness");
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &material).expect("32-byte AES key"));
        let aad = [7u8; 60];
        let mut ct = vec![0x5au8; payload];
        let nonce = counter_nonce(u64::MAX);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut ct,
            )
            .expect("seal");
        let mut t = [0u8; 16];
        t.copy_from_slice(tag.as_ref());
        let ecdsa = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("P-256 key");
        let public = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ecdsa.public_key().as_ref())
            .expect("its own public key");
        let message = vec![0x5a; payload];
        let signature = ecdsa
            .sign(&SystemRandom::new(), &message)
            .expect("P-256 signature")
            .as_ref()
            .to_vec();
        let ecdh = agreement::PrivateKey::generate(&ECDH_P256).expect("P-256 key");
        Raw {
            key,
            ecdh,
            // The floor's own setup: a failure here is no measurement at all.
            peer: peer_public_key().expect("P-256 peer key"),
            hmac: hmac::Key::new(hmac::HMAC_SHA256, &material),
            message,
            ecdsa,
            public,
            signature,
            pool,
            lent: (Vec::new(), Vec::new()),
            counter: 0,
            aad,
            sample: (ct, t, nonce),
        }
    }

    /// The lending GenerateDataKey floor: a data key drawn from the pool into the reused
    /// keys buffer, sealed with AES-256-GCM under a counter nonce into the reused blobs buffer.
    fn lend_data_key(&mut self, payload: usize) -> bool {
        let (blobs, keys) = &mut self.lent;
        let (at, key_at) = (blobs.len(), keys.len());
        keys.resize(key_at + payload, 0);
        if self.pool.fill(&mut keys[key_at..]).is_err() {
            return false;
        }
        blobs.extend_from_slice(&keys[key_at..]);
        self.counter += 1;
        let n = Nonce::assume_unique_for_key(counter_nonce(self.counter));
        match self
            .key
            .seal_in_place_separate_tag(n, Aad::from(self.aad), &mut blobs[at..])
        {
            Ok(tag) => {
                blobs.extend_from_slice(tag.as_ref());
                true
            }
            Err(_) => false,
        }
    }

    /// The Encrypt floor: the caller's plaintext (`message`, made once as the request is)
    /// copied into a fresh buffer, not zeroed first, and sealed there under a counter nonce.
    fn encrypt(&mut self) -> Option<Vec<u8>> {
        let mut buf = Vec::with_capacity(self.message.len() + AES_256_GCM.tag_len());
        buf.extend_from_slice(&self.message);
        self.counter += 1;
        let n = Nonce::assume_unique_for_key(counter_nonce(self.counter));
        let tag = self
            .key
            .seal_in_place_separate_tag(n, Aad::from(self.aad), &mut buf)
            .ok()?;
        buf.extend_from_slice(tag.as_ref());
        Some(buf)
    }

    /// The GenerateDataKeyPair floor: a P-256 pair generated and encoded as the engine
    /// answers it (PKCS#8 and SubjectPublicKeyInfo DER), its private key sealed with
    /// AES-256-GCM under a counter nonce into a fresh buffer.
    fn key_pair(&mut self) -> bool {
        let Ok(pair) = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING) else {
            return false;
        };
        let (Ok(private), Ok(public)) = (pair.to_pkcs8v1(), pair.public_key().as_der()) else {
            return false;
        };
        let public: PublicKeyX509Der<'static> = public;
        let mut sealed = private.as_ref().to_vec();
        self.counter += 1;
        let n = Nonce::assume_unique_for_key(counter_nonce(self.counter));
        match self
            .key
            .seal_in_place_append_tag(n, Aad::from(self.aad), &mut sealed)
        {
            Ok(()) => {
                std::hint::black_box((&sealed, public.as_ref().to_vec()));
                true
            }
            Err(_) => false,
        }
    }
}

/// The raw aws-lc-rs loop for the same op, threads, batch and payload.
pub(crate) fn run_baseline(opts: &LoadOpts) -> LoadReport {
    report(opts, baseline_run(opts))
}

/// [`run_baseline`]'s run, unreported.
fn baseline_run(opts: &LoadOpts) -> Run {
    let (op, lend) = (opts.op, opts.lend && opts.op == LoadOp::GenerateDataKey);
    let (batch, payload) = (
        opts.batch.max(1),
        opts.payload.clamp(PLAINTEXT_LEN.0, PLAINTEXT_LEN.1),
    );
    drive(
        opts.threads,
        opts.duration,
        move |_| Raw::new(payload),
        move |raw: &mut Raw| {
            let mut errs = 0u64;
            if lend {
                // A new batch: the last one's answers are forgotten, its data keys wiped.
                raw.lent.0.clear();
                kmscks::secret::wipe(&mut raw.lent.1);
                raw.lent.1.clear();
            }
            for _ in 0..batch {
                let ok = match op {
                    LoadOp::GenerateDataKey if lend => raw.lend_data_key(payload),
                    LoadOp::GenerateDataKey => {
                        // A data key drawn into a fresh buffer and sealed there. The data-plane
                        // issue fixed this floor ("the in-process raw loop stays as it is"):
                        // a floor may be made faster, never given more work.
                        let mut buf = vec![0u8; payload + AES_256_GCM.tag_len()];
                        let body = &mut buf[..payload];
                        let _ = raw.pool.fill(body);
                        raw.counter += 1;
                        let n = Nonce::assume_unique_for_key(counter_nonce(raw.counter));
                        match raw
                            .key
                            .seal_in_place_separate_tag(n, Aad::from(raw.aad), body)
                        {
                            Ok(tag) => {
                                buf[payload..].copy_from_slice(tag.as_ref());
                                std::hint::black_box(&buf);
                                true
                            }
                            Err(_) => false,
                        }
                    }
                    LoadOp::Encrypt => raw.encrypt().map(std::hint::black_box).is_some(),
                    LoadOp::Decrypt => {
                        let (ct, tag, nonce) = &raw.sample;
                        let mut out = vec![0u8; ct.len()];
                        let r = raw.key.open_separate_gather(
                            Nonce::assume_unique_for_key(*nonce),
                            Aad::from(raw.aad),
                            ct,
                            tag,
                            &mut out,
                        );
                        std::hint::black_box(&out);
                        r.is_ok()
                    }
                    LoadOp::GenerateRandom => {
                        let mut out = vec![0u8; payload];
                        let r = raw.pool.fill(&mut out);
                        std::hint::black_box(&out);
                        r.is_ok()
                    }
                    LoadOp::GenerateMac => {
                        // The engine answers a fresh Vec: so does the floor.
                        let tag = hmac::sign(&raw.hmac, &raw.message).as_ref().to_vec();
                        std::hint::black_box(&tag);
                        true
                    }
                    LoadOp::Sign => match raw.ecdsa.sign(&SystemRandom::new(), &raw.message) {
                        Ok(sig) => {
                            std::hint::black_box(sig.as_ref().to_vec());
                            true
                        }
                        Err(_) => false,
                    },
                    LoadOp::Verify => raw.public.verify_sig(&raw.message, &raw.signature).is_ok(),
                    LoadOp::GenerateDataKeyPair => raw.key_pair(),
                    LoadOp::DeriveSharedSecret => {
                        // The engine answers a fresh secret: so does the floor.
                        let peer = UnparsedPublicKey::new(&ECDH_P256, &raw.peer);
                        agreement::agree(&raw.ecdh, peer, (), |z| Ok(z.to_vec()))
                            .map(std::hint::black_box)
                            .is_ok()
                    }
                };
                if !ok {
                    errs += 1;
                }
            }
            (batch as u64 - errs, errs)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens what a floor sealed as its `n`th seal.
    fn open_nth(raw: &Raw, n: u64, sealed: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; sealed.len() - AES_256_GCM.tag_len()];
        let (ct, tag) = sealed.split_at(out.len());
        raw.key
            .open_separate_gather(
                Nonce::assume_unique_for_key(counter_nonce(n)),
                Aad::from(raw.aad),
                ct,
                tag,
                &mut out,
            )
            .expect("the floor's own seal opens");
        out
    }

    #[test]
    fn the_encrypt_floor_seals_the_callers_plaintext_into_a_fresh_buffer() {
        let mut raw = Raw::new(4096);
        let first = raw.encrypt().unwrap();
        let second = raw.encrypt().unwrap();
        assert_eq!(first.len(), 4096 + AES_256_GCM.tag_len());
        assert_eq!(open_nth(&raw, 1, &first), raw.message);
        assert_eq!(open_nth(&raw, 2, &second), raw.message);
        assert_ne!(first, second, "each seal under a nonce of its own");
    }

    #[test]
    fn a_comparison_takes_turns_in_half_second_phases_an_even_number_of_pairs_or_one() {
        assert_eq!(compared_pairs(Duration::from_secs(3)), 6);
        assert_eq!(
            compared_pairs(Duration::from_millis(2_600)),
            4,
            "each side first as often"
        );
        assert_eq!(compared_pairs(Duration::from_millis(1_400)), 2);
        assert_eq!(compared_pairs(Duration::from_millis(30)), 1);
        assert_eq!(compared_pairs(Duration::ZERO), 1);
    }

    #[test]
    fn pooled_runs_add_their_items_failures_time_and_latencies() {
        let run = |items, errors, ms, lat: &[u64]| {
            let mut h = new_hist();
            for &ns in lat {
                h.record(ns).unwrap();
            }
            (items, errors, Duration::from_millis(ms), h)
        };
        let mut pooled = empty_run();
        add_run(&mut pooled, run(100, 1, 500, &[1_000, 2_000]));
        add_run(&mut pooled, run(300, 0, 700, &[9_000]));
        let (items, errors, elapsed, hist) = pooled;
        assert_eq!((items, errors), (400, 1));
        assert_eq!(elapsed, Duration::from_millis(1_200));
        assert_eq!(hist.len(), 3);
        assert!(hist.max() >= 9_000 && hist.min() <= 1_000);
        // The pooled rate is the items over the time, not a mean of the phases' rates.
        let r = report(&LoadOpts::default(), (items, errors, elapsed, hist));
        assert!((r.ops_per_sec - 400.0 / 1.2).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn short_runs_report_sane_numbers() {
        let config = kmscks::KmsConfig {
            engine: kmscks::engine::EngineConfig {
                shards: 2,
                pin_workers: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let (kms, key) = bench_instance(config).unwrap();
        for (op, batch) in [
            (LoadOp::GenerateDataKey, 1),
            (LoadOp::Encrypt, 8),
            (LoadOp::Decrypt, 1),
            (LoadOp::GenerateRandom, 2),
            (LoadOp::GenerateMac, 1),
            (LoadOp::Sign, 1),
            (LoadOp::Verify, 1),
            (LoadOp::GenerateDataKeyPair, 1),
            (LoadOp::DeriveSharedSecret, 1),
        ] {
            let opts = LoadOpts {
                op,
                threads: 2,
                batch,
                payload: 32,
                duration: Duration::from_millis(30),
                lend: false,
            };
            let r = compare_kms(&kms, &key, &opts).unwrap();
            assert_eq!(r.errors, 0, "{r:?}");
            assert!(r.ops_per_sec > 0.0 && r.ratio.unwrap() > 0.0, "{r:?}");
            assert!(r.p50_us <= r.p99_us && r.p99_us <= r.p999_us);
            let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
            for m in [
                "op",
                "ops_per_sec",
                "p50_us",
                "p99_us",
                "p999_us",
                "baseline_ops_per_sec",
                "baseline_p50_us",
                "ratio",
            ] {
                assert!(json.get(m).is_some(), "missing {m}");
            }
        }
        // Lent batch answers, against the floor that seals into a reused buffer.
        let lent = LoadOpts {
            op: LoadOp::GenerateDataKey,
            threads: 2,
            batch: 16,
            payload: 32,
            duration: Duration::from_millis(30),
            lend: true,
        };
        let r = compare_kms(&kms, &key, &lent).unwrap();
        assert_eq!(r.errors, 0, "{r:?}");
        assert!(r.ops_per_sec > 0.0 && r.ratio.unwrap() > 0.0, "{r:?}");
        assert_eq!(r.batch, 16);
        assert_eq!(
            LoadOp::parse("generatedatakey"),
            Some(LoadOp::GenerateDataKey)
        );
        let bad = LoadOpts {
            payload: 0,
            ..LoadOpts::default()
        };
        assert_eq!(
            run_kms(&kms, &key, &bad).unwrap_err().kind(),
            kmscks::ErrorKind::ValidationException
        );
    }
}
