//! The daemon's options: one table (`daemon_options!`) that is at once the TOML keys of the
//! config file ([`DaemonConfig`], unknown keys rejected), the `kmscksd` flags
//! ([`DaemonFlags`]), each option's one default, and its one doc comment — used as the field's
//! doc, the flag's help and the comment of the sample `kmscksd.toml`
//! ([`DaemonConfig::sample_toml`], which a test holds the file at the repository root to).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::EngineConfig;
use crate::err;
use crate::error::Result;
use crate::types::{DataKeyPairSpec, RequestRate};

/// How a flag's value goes over the value from the file (or the default): `Some` replaces, a
/// set `bool` switch turns the option on.
trait Over<T> {
    fn over(self, into: &mut T);
}

impl<T> Over<T> for Option<T> {
    fn over(self, into: &mut T) {
        if let Some(v) = self {
            *into = v;
        }
    }
}

impl<T> Over<Option<T>> for Option<T> {
    fn over(self, into: &mut Option<T>) {
        if self.is_some() {
            *into = self;
        }
    }
}

impl Over<bool> for bool {
    fn over(self, into: &mut bool) {
        *into |= self;
    }
}

/// A default as the sample file writes it: its TOML text.
fn toml_text<T: Serialize>(value: &T) -> String {
    // Every option type is a TOML scalar (string, path, integer, bool): serializing cannot fail.
    toml::Value::try_from(value)
        .map(|v| v.to_string())
        .expect("a daemon option is a TOML scalar")
}

/// Parses a permission mode in octal, with or without `0o`.
fn parse_octal(s: &str) -> std::result::Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    // Digits only: `from_str_radix` would also take a sign (`+750`).
    if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("'{s}' is not an octal mode: only the digits 0-7"));
    }
    u32::from_str_radix(digits, 8).map_err(|e| format!("'{s}' is not an octal mode: {e}"))
}

/// Parses a request rate: a decimal number of requests per second (`25`, `0.1`).
fn parse_rate(s: &str) -> std::result::Result<RequestRate, String> {
    s.parse()
        .map_err(|e: crate::types::rate::RateError| e.to_string())
}

/// AWS's GenerateDataKeyPair rate for pairs of `spec`: the default of its
/// `quota_data_key_pair_*_rate` option.
fn aws_pair_rate(spec: DataKeyPairSpec) -> RequestRate {
    // Invariant: every spec with an option has an AWS rate (only SM2, which kmscks refuses and
    // which has no option, has none).
    crate::types::limits::data_key_pair_rate(spec)
        .expect("every data key pair spec with a quota option has a rate")
}

/// The most `event_loops` accepted: more loops than this serve no machine kmscksd runs on
/// better, and each holds a thread, a poller and buffers.
const MAX_EVENT_LOOPS: usize = 64;

/// The smallest `event_log_file_bytes` accepted (a file should hold more than a few events).
const MIN_EVENT_LOG_FILE_BYTES: u64 = 4096;

/// The head of the sample config file.
const SAMPLE_HEADER: &str = "\
# kmscksd configuration. Pass it with `kmscksd --config kmscksd.toml`.
# Every key is also a flag of kmscksd (snake_case key -> --kebab-case flag); flags win over
# this file, this file over the defaults. Unknown keys are refused. The values below are the
# defaults (commented out where the default depends on the user).
# Generated from the option table in src/daemon/config.rs (DaemonConfig::sample_toml).
";

/// Generates [`DaemonConfig`] (the TOML keys, with `Default`), [`DaemonFlags`] (the flags)
/// and the sample file from one list of options. Each option: its doc comment, `name: type =
/// default`, the flag's type (`Option<type>`, or `bool` for a switch) with its value name and
/// parser, and how the sample shows the default: `toml` (as TOML), `octal`, or
/// `example("…")` (a commented-out example, for defaults that depend on the user; the doc
/// comment then says what the default is).
macro_rules! daemon_options {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty = $default:expr;
        flag($fty:ty $(, value_name = $vn:literal)? $(, parser = $parser:expr)?);
        sample $show:ident $(($example:literal))?;
    )*) => {
        /// How the daemon runs. Field names are the TOML keys; each is also the `kmscksd` flag
        /// of the same name in kebab case (`max_connections` → `--max-connections`).
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct DaemonConfig {
            $( $(#[doc = $doc])+ pub $name: $ty, )*
        }

        impl Default for DaemonConfig {
            fn default() -> DaemonConfig {
                DaemonConfig { $( $name: $default, )* }
            }
        }

        /// The `kmscksd` flags: one per [`DaemonConfig`] key, unset unless given.
        #[derive(Debug, Default, clap::Args)]
        pub struct DaemonFlags {
            $(
                $(#[doc = $doc])+
                #[arg(long $(, value_name = $vn)? $(, value_parser = $parser)?)]
                pub $name: $fty,
            )*
        }

        impl DaemonFlags {
            /// Lays the given flags over `config` (from the file, or the defaults).
            pub fn apply(self, config: &mut DaemonConfig) {
                $( Over::over(self.$name, &mut config.$name); )*
            }
        }

        impl DaemonConfig {
            /// Every TOML key, in table order.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Each option's default as the sample writes it; `None` where it depends on the
            /// user (the doc comment says what it is).
            fn shown_defaults() -> Vec<(&'static str, Option<String>)> {
                let d = DaemonConfig::default();
                vec![$((
                    stringify!($name),
                    daemon_options!(@show d.$name, $show $(($example))?),
                )),*]
            }

            /// The sample config file: every option's doc comment, then its default (or a
            /// commented-out example).
            pub fn sample_toml() -> String {
                let d = DaemonConfig::default();
                let mut out = String::from(SAMPLE_HEADER);
                $(
                    out.push('\n');
                    $( out.push('#'); out.push_str($doc); out.push('\n'); )+
                    let line = match daemon_options!(@show d.$name, $show $(($example))?) {
                        Some(text) => format!("{} = {text}", stringify!($name)),
                        None => format!("# {} = {}", stringify!($name), [$($example,)? ""].concat()),
                    };
                    out.push_str(&line);
                    out.push('\n');
                )*
                out
            }
        }
    };
    (@show $v:expr, toml) => { Some(toml_text(&$v)) };
    (@show $v:expr, octal) => { Some(format!("0o{:o}", $v)) };
    (@show $v:expr, example($example:literal)) => {{ let _ = &$v; None::<String> }};
}

daemon_options! {
    /// Data directory (created if missing).
    /// Default: `$XDG_DATA_HOME/kmscks`, else `~/.local/share/kmscks`.
    data_dir: PathBuf = crate::paths::default_data_dir();
    flag(Option<PathBuf>, value_name = "DIR");
    sample example("\"/home/me/.local/share/kmscks\"");

    /// Unix socket (its parent directory is created if missing).
    /// Default: `$KMSCKS_SOCKET`, else `kmscks.sock` in `$XDG_RUNTIME_DIR/kmscks/`, else
    /// `/run/user/<uid>/kmscks/` (when that directory is yours), else
    /// `~/.local/state/kmscks/`.
    ///
    /// The default directory is private: created with mode 0700, and refused if it exists
    /// owned by another user or open to group or others. A stale socket file (nothing answers
    /// on it) is replaced; if a live daemon answers, kmscksd refuses to start.
    socket: PathBuf = crate::paths::listen_socket();
    flag(Option<PathBuf>, value_name = "PATH");
    sample example("\"/run/user/1000/kmscks/kmscks.sock\"");

    /// Permission bits of the socket file, in octal: who may connect at all. The file has
    /// them from the moment it exists.
    ///
    /// The default lets only the daemon's user (and root) connect. To let a group connect, set
    /// 0o660 with socket_gid, and a socket path outside the private default directory (in a
    /// directory the group can search; kmscksd warns when group or other bits are set on a
    /// socket in the private directory, where they reach nobody). Key policies then decide
    /// what each uid may do (other uids are `arn:aws:iam::<account>:user/uid-<N>`; the
    /// daemon's uid and root are the account root).
    socket_mode: u32 = 0o600;
    flag(Option<u32>, value_name = "OCTAL", parser = parse_octal);
    sample octal;

    /// Numeric group to give the socket file, so that its members can connect (when
    /// socket_mode lets the group in).
    /// Default: none (the daemon's own group).
    socket_gid: Option<u32> = None;
    flag(Option<u32>, value_name = "GID");
    sample example("1001");

    /// Uids, besides root and the daemon's own, that may call GenerateRandom: a
    /// comma-separated list ("1001,1002"), or "*" for every uid that can connect.
    ///
    /// `kms:GenerateRandom` is an account-level permission (AWS grants it with IAM, which
    /// kmscks has not), so no key policy grants it. The default, empty, allows root and the
    /// daemon's uid only.
    generate_random_uids: String = String::new();
    flag(Option<String>, value_name = "UIDS");
    sample toml;

    /// On an empty data directory, create a ready system with key alias/demo.
    ///
    /// The system: an ACTIVE cluster with two HSMs and kmsuser, a CONNECTED custom key store,
    /// and a key with alias alias/demo.
    bootstrap: bool = false;
    flag(bool);
    sample toml;

    /// Connections served at once, all uids together.
    ///
    /// Further ones get a LimitExceededException frame and are closed.
    max_connections: usize = 1024;
    flag(Option<usize>, value_name = "N");
    sample toml;

    /// Connections one uid may hold at once (root and the daemon's uid included).
    ///
    /// Further ones from that uid get a LimitExceededException frame naming this quota and
    /// are closed.
    max_connections_per_uid: usize = 256;
    flag(Option<usize>, value_name = "N");
    sample toml;

    /// Of max_connections, how many only root and the daemon's uid may take (at most
    /// max_connections - 1): all other uids together hold at most max_connections minus
    /// this, so they can never lock the account root out.
    reserved_connections: usize = 16;
    flag(Option<usize>, value_name = "N");
    sample toml;

    /// Close a connection that completes no whole frame for this many seconds: neither a
    /// request frame received nor a reply frame written (requests waiting on a helper thread
    /// excepted).
    ///
    /// Progress is counted in whole frames, not bytes: a client that trickles a byte now and
    /// then, in either direction, is closed all the same.
    idle_timeout_secs: u64 = 300;
    flag(Option<u64>, value_name = "SECS");
    sample toml;

    /// Unwritten replies one connection may hold, in bytes: at this many the daemon stops
    /// decoding the connection's requests (and so stops reading it) until the client reads.
    ///
    /// At least one largest protocol frame.
    max_pending_reply_bytes: usize = 8 << 20;
    flag(Option<usize>, value_name = "BYTES");
    sample toml;

    /// Requests one connection may have outstanding (decoded and not yet answered on the
    /// socket), as Hello announces: at this many the daemon stops reading the connection
    /// until replies are written.
    max_in_flight: u32 = 1024;
    flag(Option<u32>, value_name = "N");
    sample toml;

    /// Memory one uid's connections may hold in the daemon, in bytes: request bytes read and
    /// not yet handled plus replies not yet written. At the quota the daemon stops reading
    /// that uid's connections until its clients read (other uids are not affected).
    ///
    /// At least two largest protocol frames.
    max_memory_per_uid: usize = 64 << 20;
    flag(Option<usize>, value_name = "BYTES");
    sample toml;

    /// The longest wait a WaitForConnection request may ask for, in milliseconds.
    max_wait_millis: u64 = 60_000;
    flag(Option<u64>, value_name = "MS");
    sample toml;

    /// Log filter (tracing EnvFilter syntax: info, debug, kmscks=debug, ...); RUST_LOG wins
    /// when set.
    ///
    /// Request and reply bodies are never logged at any level.
    log_level: String = "info".into();
    flag(Option<String>, value_name = "FILTER");
    sample toml;

    /// Data-plane shards: HSM worker threads, each pinned to a core. 0 = one per core.
    engine_shards: usize = 0;
    flag(Option<usize>, value_name = "N");
    sample toml;

    /// Socket event loops: threads serving the socket's connections, each connection on one
    /// of them (the loop serving the fewest when it connects). 0 = one per core.
    ///
    /// Connection and memory quotas are per uid across all loops. Several loops serve several
    /// connections on several cores; one connection is served by one loop whatever the number.
    event_loops: usize = 0;
    flag(Option<usize>, value_name = "N");
    sample toml;

    /// How far below the event loops' the control threads' CPU priority is, in nice steps
    /// (0–19): when the cores are busy, the data plane (Encrypt, Decrypt, GenerateDataKey…) is
    /// served first and control-plane calls (CreateKey, RSA key generation and arithmetic…)
    /// take what is left. 0: the same priority.
    ///
    /// At 19, the lowest priority there is, the control threads get about a seventieth of a
    /// core they share with a busy thread, and whatever the cores leave idle; on an idle
    /// machine they run as fast as at 0.
    control_nice: u32 = super::priority::MAX_NICE;
    flag(Option<u32>, value_name = "STEPS");
    sample toml;

    /// The most of one core the control thread of the state lane (CreateKey, aliases, tags,
    /// policies, grants, key store connections…: the calls that write the journal) takes
    /// beside a busy data plane, in percent (1–100; 100: no limit). After a call during which
    /// the daemon's other threads kept half a core busy, it pauses until the call's CPU time
    /// ÷ this share has passed, at most 50 ms (so that a call costing much CPU, which then takes
    /// more than the share, does not hold the lane's next calls for seconds); beside an idle
    /// data plane it never pauses.
    ///
    /// At 2, a CreateKey's 150–220 µs of CPU allow about 100 a second beside a busy data
    /// plane, twenty times AWS's quota (README, Performance, has what the creates cost a busy
    /// client at this share and without it).
    control_busy_percent: u32 = 2;
    flag(Option<u32>, value_name = "PERCENT");
    sample toml;

    /// Size at which a KMS event log file (in `<data_dir>/events/`) is rotated: a new file is
    /// started when the next event would take the current one past it.
    event_log_file_bytes: u64 = crate::KmsConfig::default().event_log_file_bytes;
    flag(Option<u64>, value_name = "BYTES");
    sample toml;

    /// Days a rotated KMS event log file is kept: it is deleted once every event in it is
    /// older than this (checked at rotation and at start).
    ///
    /// The default is CloudTrail's event history: 90 days.
    event_log_retain_days: u32 = crate::KmsConfig::default().event_log_retain_days;
    flag(Option<u32>, value_name = "DAYS");
    sample toml;

    /// Seconds between the KMS event log records of data-plane calls (Encrypt, Decrypt,
    /// ReEncrypt, GenerateDataKey…): each call is counted per (operation, key, principal,
    /// outcome), and every this often one record per counted tuple is written, with the number
    /// of calls (LookupEvents writes the counts first). 0: data-plane calls are not recorded.
    data_plane_event_interval_secs: u64 = crate::service::DEFAULT_DATA_PLANE_EVENT_INTERVAL.as_secs();
    flag(Option<u64>, value_name = "SECONDS");
    sample toml;

    /// How long, in milliseconds, a CloudHSM cluster stays in CREATE_IN_PROGRESS,
    /// INITIALIZE_IN_PROGRESS and DELETE_IN_PROGRESS before it moves on, as on AWS (where it
    /// takes minutes): a script that polls describe-clusters can be rehearsed.
    ///
    /// The default, 0: create-cluster, initialize-cluster and delete-cluster answer with the
    /// passing state, and the cluster is already past it.
    cluster_transition_ms: u64 = 0;
    flag(Option<u64>, value_name = "MS");
    sample toml;

    /// The AWS account id in every ARN.
    ///
    /// A data directory belongs to one account and Region: opening it with others is refused.
    account_id: String = crate::types::Scope::default().account_id;
    flag(Option<String>, value_name = "ID");
    sample toml;

    /// The AWS Region in every ARN.
    region: String = crate::types::Scope::default().region;
    flag(Option<String>, value_name = "REGION");
    sample toml;

    /// Also serve the AWS JSON 1.1 protocol over HTTP on this address (`host:port`), so
    /// that the AWS SDKs and the aws CLI work with `--endpoint-url http://<address>`: KMS
    /// operations as `X-Amz-Target: TrentService.<Operation>`, the simulated CloudHSM's as
    /// `BaldrApiService.<Operation>`. Empty (the default): no HTTP endpoint. Anyone who can
    /// connect acts as the account root unless the request is signed (SigV4), in which case
    /// its access key id names the principal (`arn:aws:iam::<account>:user/<key id>`);
    /// signatures are not checked. A non-loopback address is refused.
    http: String = String::new();
    flag(Option<String>, value_name = "HOST:PORT");
    sample example("\"127.0.0.1:4599\"");

    /// Access key ids whose signed HTTP requests act as the account root (comma-separated),
    /// as unsigned ones do; any other key id is the IAM user of that name, held to key
    /// policies (a default key policy lets only the root in). The default is the key id
    /// local AWS emulators conventionally use: `AWS_ACCESS_KEY_ID=test`.
    http_root_access_keys: String = "test".into();
    flag(Option<String>, value_name = "KEY,KEY");
    sample toml;

    /// Further names (comma-separated) by which HTTP requests may name this endpoint in
    /// their `Host` header, besides those that always mean this machine: `localhost` and
    /// `*.localhost`, and the loopback addresses (`127.0.0.1`, `[::1]`). A request naming any
    /// other host is refused (421) before it is read, so that a web page whose own name was
    /// pointed at this machine (DNS rebinding) cannot act as you. Add a name only if nobody
    /// else can make it resolve here (an `/etc/hosts` entry, say).
    http_hosts: String = String::new();
    flag(Option<String>, value_name = "NAME,NAME");
    sample example("\"kms.internal\"");

    /// Verify the SigV4 signature of every HTTP request against this file of credentials,
    /// one per line: `<access key id> <secret access key> <principal>`, the principal being
    /// `root` or an IAM ARN of the account (`arn:aws:iam::<account>:user/alice`). A request
    /// then acts as its key's principal, whoever connected; unsigned requests, unknown keys,
    /// bad signatures and dates more than 5 minutes off get AWS's errors. The file must be
    /// owned by the daemon's uid with no group or other access. Empty (the default): no
    /// verification (see `http`).
    http_credentials: String = String::new();
    flag(Option<String>, value_name = "FILE");
    sample example("\"/home/me/.config/kmscks/http-credentials\"");

    /// Refuse to start without a passphrase sealing the key files.
    ///
    /// The passphrase comes from the file named by KMSCKS_PASSPHRASE_FILE (owned by the
    /// daemon's uid, mode 0600 or stricter; preferred) or from KMSCKS_PASSPHRASE (wiped from
    /// the daemon's environment, `/proc/<pid>/environ` included, once read; visible there
    /// until then). Without one the wrapping keys in `<data_dir>/keys/` are stored in the
    /// clear, and the daemon warns at start.
    require_passphrase: bool = false;
    flag(bool);
    sample toml;

    /// Emulate AWS's quotas, to rehearse throttling: request rates answering
    /// ThrottlingException ("Rate exceeded") — quota_store_crypto_rate,
    /// quota_account_crypto_rate, quota_rsa_crypto_rate, quota_ecc_crypto_rate, the
    /// quota_data_key_pair_*_rate of each pair spec, quota_key_store_api_rate — at most
    /// quota_max_custom_key_stores custom key stores (LimitExceededException), and AWS
    /// CloudHSM's quota_max_clusters_per_region and quota_max_hsms_per_cluster
    /// (CloudHsmResourceLimitExceededException).
    ///
    /// Off by default: no request is throttled, the number of custom key stores and clusters
    /// is unlimited, and a cluster holds up to CloudHSM's hard limit of 28 HSMs. The quota_* options below matter only when this is on.
    emulate_aws_quotas: bool = false;
    flag(bool);
    sample toml;

    /// With emulate_aws_quotas: cryptographic requests per second on the keys of one custom
    /// key store, shared by every caller and charged on top of the account's rate
    /// (GenerateDataKey, GenerateDataKeyWithoutPlaintext and GenerateRandom cost
    /// quota_data_key_cost each). AWS: 1,800.
    quota_store_crypto_rate: u32 = crate::QuotaConfig::default().store_crypto_rate;
    flag(Option<u32>, value_name = "PER_SEC");
    sample toml;

    /// With emulate_aws_quotas: what a GenerateDataKey(WithoutPlaintext) or GenerateRandom
    /// request costs against quota_store_crypto_rate, in Encrypt/Decrypt/ReEncrypt requests.
    quota_data_key_cost: u32 = crate::QuotaConfig::default().data_key_cost;
    flag(Option<u32>, value_name = "N");
    sample toml;

    /// With emulate_aws_quotas: the account's symmetric cryptographic requests per second,
    /// every key store together. AWS: 5,500, 10,000 or 50,000 depending on the Region (the
    /// default is us-east-1's).
    quota_account_crypto_rate: u32 = crate::QuotaConfig::default().account_crypto_rate;
    flag(Option<u32>, value_name = "PER_SEC");
    sample toml;

    /// With emulate_aws_quotas: the account's requests per second on RSA keys (Sign, Verify,
    /// and Encrypt, Decrypt and ReEncrypt with an RSAES-OAEP algorithm), counted apart from
    /// the symmetric rate. The default is AWS's.
    quota_rsa_crypto_rate: u32 = crate::QuotaConfig::default().rsa_crypto_rate;
    flag(Option<u32>, value_name = "PER_SEC");
    sample toml;

    /// With emulate_aws_quotas: the account's requests per second on elliptic curve keys
    /// (Sign, Verify, DeriveSharedSecret), counted apart from the symmetric and RSA rates.
    /// The default is AWS's.
    quota_ecc_crypto_rate: u32 = crate::QuotaConfig::default().ecc_crypto_rate;
    flag(Option<u32>, value_name = "PER_SEC");
    sample toml;

    /// With emulate_aws_quotas: GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext
    /// requests per second for RSA_2048 pairs, counted apart from every other rate (each pair
    /// spec has its own; a decimal, as AWS's rates under one a second: 0.1 is one request in
    /// ten seconds). The default is AWS's.
    quota_data_key_pair_rsa_2048_rate: RequestRate = aws_pair_rate(DataKeyPairSpec::Rsa2048);
    flag(Option<RequestRate>, value_name = "PER_SEC", parser = parse_rate);
    sample toml;

    /// With emulate_aws_quotas: GenerateDataKeyPair(WithoutPlaintext) requests per second
    /// for RSA_3072 pairs, counted on their own. The default is AWS's.
    quota_data_key_pair_rsa_3072_rate: RequestRate = aws_pair_rate(DataKeyPairSpec::Rsa3072);
    flag(Option<RequestRate>, value_name = "PER_SEC", parser = parse_rate);
    sample toml;

    /// With emulate_aws_quotas: GenerateDataKeyPair(WithoutPlaintext) requests per second
    /// for RSA_4096 pairs, counted on their own. The default is AWS's.
    quota_data_key_pair_rsa_4096_rate: RequestRate = aws_pair_rate(DataKeyPairSpec::Rsa4096);
    flag(Option<RequestRate>, value_name = "PER_SEC", parser = parse_rate);
    sample toml;

    /// With emulate_aws_quotas: GenerateDataKeyPair(WithoutPlaintext) requests per second
    /// for ECC_NIST_P256 pairs, counted on their own. The default is AWS's.
    quota_data_key_pair_ecc_nist_p256_rate: RequestRate =
        aws_pair_rate(DataKeyPairSpec::EccNistP256);
    flag(Option<RequestRate>, value_name = "PER_SEC", parser = parse_rate);
    sample toml;

    /// With emulate_aws_quotas: GenerateDataKeyPair(WithoutPlaintext) requests per second
    /// for ECC_NIST_P384 pairs, counted on their own. The default is AWS's.
    quota_data_key_pair_ecc_nist_p384_rate: RequestRate =
        aws_pair_rate(DataKeyPairSpec::EccNistP384);
    flag(Option<RequestRate>, value_name = "PER_SEC", parser = parse_rate);
    sample toml;

    /// With emulate_aws_quotas: GenerateDataKeyPair(WithoutPlaintext) requests per second
    /// for ECC_NIST_P521 pairs, counted on their own. The default is AWS's.
    quota_data_key_pair_ecc_nist_p521_rate: RequestRate =
        aws_pair_rate(DataKeyPairSpec::EccNistP521);
    flag(Option<RequestRate>, value_name = "PER_SEC", parser = parse_rate);
    sample toml;

    /// With emulate_aws_quotas: GenerateDataKeyPair(WithoutPlaintext) requests per second
    /// for ECC_SECG_P256K1 pairs, counted on their own. The default is AWS's.
    quota_data_key_pair_ecc_secg_p256k1_rate: RequestRate =
        aws_pair_rate(DataKeyPairSpec::EccSecgP256k1);
    flag(Option<RequestRate>, value_name = "PER_SEC", parser = parse_rate);
    sample toml;

    /// With emulate_aws_quotas: GenerateDataKeyPair(WithoutPlaintext) requests per second
    /// for ECC_NIST_EDWARDS25519 pairs, counted on their own. No AWS rate for these pairs was
    /// found: the default is the other 256-bit curves'.
    quota_data_key_pair_ecc_nist_edwards25519_rate: RequestRate =
        aws_pair_rate(DataKeyPairSpec::EccNistEdwards25519);
    flag(Option<RequestRate>, value_name = "PER_SEC", parser = parse_rate);
    sample toml;

    /// With emulate_aws_quotas: requests per second of each custom key store operation
    /// (Create, Describe, Update, Delete, Connect and DisconnectCustomKeyStore, each counted
    /// on its own, as AWS counts its request quotas). AWS: 5.
    quota_key_store_api_rate: u32 = crate::QuotaConfig::default().key_store_api_rate;
    flag(Option<u32>, value_name = "PER_SEC");
    sample toml;

    /// With emulate_aws_quotas: custom key stores per account and Region, any state. AWS: 10.
    quota_max_custom_key_stores: usize = crate::QuotaConfig::default().max_custom_key_stores;
    flag(Option<usize>, value_name = "N");
    sample toml;

    /// With emulate_aws_quotas: AWS CloudHSM clusters per Region, any state. AWS: 4.
    quota_max_clusters_per_region: usize = crate::QuotaConfig::default().max_clusters_per_region;
    flag(Option<usize>, value_name = "N");
    sample toml;

    /// With emulate_aws_quotas: HSMs per AWS CloudHSM cluster, 1 to 28 (CloudHSM's hard
    /// limit). AWS: 6.
    quota_max_hsms_per_cluster: usize = crate::QuotaConfig::default().max_hsms_per_cluster;
    flag(Option<usize>, value_name = "N");
    sample toml;
}

impl DaemonFlags {
    /// Appends each option's default (`[default: …]`) to its flag's help in `cmd`, a command
    /// that has flattened [`DaemonFlags`]. Defaults that depend on the user are described by
    /// the help itself.
    pub fn show_defaults(mut cmd: clap::Command) -> clap::Command {
        for (name, shown) in DaemonConfig::shown_defaults() {
            let Some(shown) = shown else { continue };
            let shown = shown.trim_matches('"').to_string();
            cmd = cmd.mut_arg(name, |arg| {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let long = arg.get_long_help().map(|h| h.to_string());
                let arg = arg.help(format!("{help} [default: {shown}]"));
                match long {
                    Some(long) => arg.long_help(format!("{long}\n\n[default: {shown}]")),
                    None => arg,
                }
            });
        }
        cmd
    }
}

impl DaemonConfig {
    /// Parses a TOML document; `origin` names it in errors (a file name).
    ///
    /// Errors: `ValidationException` naming the origin, line and key, for bad TOML, an unknown
    /// key, a value of the wrong type, or a value out of range.
    pub fn from_toml(text: &str, origin: &str) -> Result<DaemonConfig> {
        let config: DaemonConfig = toml::from_str(text).map_err(|e| {
            err!(
                ValidationException,
                "{origin}: {}",
                e.to_string().trim_end()
            )
        })?;
        config
            .validate()
            .map_err(|e| err!(ValidationException, "{origin}: {}", e.message()))?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<DaemonConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            err!(
                ValidationException,
                "cannot read config file {}: {e}",
                path.display()
            )
        })?;
        DaemonConfig::from_toml(&text, &path.display().to_string())
    }

    /// The engine this daemon runs: `engine_shards` shards, splitting a loop's batch onto
    /// other shards' workers only when fewer event loops run than shards (otherwise every core
    /// already has a loop running its own batches, and a hand-off would only contend with it
    /// or with the clients: on this 2-core machine under load, one pipelined connection cost
    /// the daemon 10-20 % more CPU per request with splitting than without; idle, within
    /// noise).
    pub(crate) fn engine(&self) -> EngineConfig {
        let engine = EngineConfig {
            shards: self.engine_shards,
            ..EngineConfig::default()
        };
        EngineConfig {
            split_batches: self.event_loop_count() < engine.shard_count(),
            ..engine
        }
    }

    /// The number of socket event loops: `event_loops`, or one per core for 0.
    pub(crate) fn event_loop_count(&self) -> usize {
        match self.event_loops {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(MAX_EVENT_LOOPS)
    }

    /// Connections only root and the daemon's uid may take: `reserved_connections`, at most
    /// `max_connections - 1`.
    pub(crate) fn reserved(&self) -> usize {
        self.reserved_connections
            .min(self.max_connections.saturating_sub(1))
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        if self.socket_mode & !0o777 != 0 {
            return Err(err!(
                ValidationException,
                "socket_mode {:#o} has bits outside 0o777",
                self.socket_mode
            ));
        }
        if self.socket_mode & 0o600 != 0o600 {
            return Err(err!(
                ValidationException,
                "socket_mode {:#o} must let the daemon's user read and write (0o600)",
                self.socket_mode
            ));
        }
        self.generate_random_uid_list()?;
        if self.max_connections == 0 {
            return Err(err!(
                ValidationException,
                "max_connections must be at least 1"
            ));
        }
        if self.max_connections_per_uid == 0 {
            return Err(err!(
                ValidationException,
                "max_connections_per_uid must be at least 1"
            ));
        }
        if self.max_in_flight == 0 {
            return Err(err!(
                ValidationException,
                "max_in_flight must be at least 1"
            ));
        }
        if self.event_loops > MAX_EVENT_LOOPS {
            return Err(err!(
                ValidationException,
                "event_loops {} is more than {MAX_EVENT_LOOPS} (0: one per core)",
                self.event_loops
            ));
        }
        if self.control_nice > super::priority::MAX_NICE {
            return Err(err!(
                ValidationException,
                "control_nice {} is more than {} (the lowest priority there is)",
                self.control_nice,
                super::priority::MAX_NICE
            ));
        }
        if !(1..=100).contains(&self.control_busy_percent) {
            return Err(err!(
                ValidationException,
                "control_busy_percent {} is not within 1-100 (100: no limit)",
                self.control_busy_percent
            ));
        }
        if self.idle_timeout_secs == 0 {
            return Err(err!(
                ValidationException,
                "idle_timeout_secs must be at least 1"
            ));
        }
        let min_pending = crate::protocol::HEADER_LEN + crate::protocol::MAX_BODY as usize;
        if self.max_pending_reply_bytes < min_pending {
            return Err(err!(
                ValidationException,
                "max_pending_reply_bytes {} is less than one largest frame ({min_pending} bytes)",
                self.max_pending_reply_bytes
            ));
        }
        if self.max_memory_per_uid < 2 * min_pending {
            return Err(err!(
                ValidationException,
                "max_memory_per_uid {} is less than two largest frames ({} bytes)",
                self.max_memory_per_uid,
                2 * min_pending
            ));
        }
        if self.event_log_file_bytes < MIN_EVENT_LOG_FILE_BYTES {
            return Err(err!(
                ValidationException,
                "event_log_file_bytes {} is less than {MIN_EVENT_LOG_FILE_BYTES}",
                self.event_log_file_bytes
            ));
        }
        let hsms = crate::types::limits::MAX_HSMS_PER_CLUSTER;
        if !(1..=hsms).contains(&self.quota_max_hsms_per_cluster) {
            return Err(err!(
                ValidationException,
                "quota_max_hsms_per_cluster {} is not between 1 and {hsms}",
                self.quota_max_hsms_per_cluster
            ));
        }
        if self.event_log_retain_days == 0 {
            return Err(err!(
                ValidationException,
                "event_log_retain_days must be at least 1"
            ));
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err!(
                ValidationException,
                "account_id '{}' is not 12 digits",
                self.account_id
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err!(
                ValidationException,
                "region '{}' is not a Region name (lower-case letters, digits, '-')",
                self.region
            ));
        }
        if !self.http.is_empty() {
            self.http_address()?;
        }
        if self.socket.as_os_str().is_empty() || self.data_dir.as_os_str().is_empty() {
            return Err(err!(
                ValidationException,
                "socket and data_dir must not be empty"
            ));
        }
        Ok(())
    }

    /// `generate_random_uids` parsed: `None` for "*" (every uid), else the uids.
    fn generate_random_uid_list(&self) -> Result<Option<Vec<u32>>> {
        let text = self.generate_random_uids.trim();
        if text == "*" {
            return Ok(None);
        }
        text.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<u32>().map_err(|e| {
                    err!(
                        ValidationException,
                        "generate_random_uids: '{t}' is not a uid ({e}); give uids separated \
                         by commas, or \"*\""
                    )
                })
            })
            .collect::<Result<Vec<u32>>>()
            .map(Some)
    }

    /// The principals, besides the account root, that may call GenerateRandom
    /// ([`crate::KmsConfig::generate_random_principals`]): those of `generate_random_uids`
    /// for a daemon running as `daemon_uid`, or `["*"]`.
    pub(super) fn generate_random_principals(&self, daemon_uid: u32) -> Result<Vec<String>> {
        let scope = self.scope();
        Ok(match self.generate_random_uid_list()? {
            None => vec!["*".to_owned()],
            Some(uids) => uids
                .into_iter()
                .map(|uid| crate::kms::policy::principal_for_uid(&scope, uid, daemon_uid))
                .collect(),
        })
    }

    /// The AWS quotas to emulate ([`crate::KmsConfig::quotas`]): `None` unless
    /// `emulate_aws_quotas` is on.
    pub fn quotas(&self) -> Option<crate::QuotaConfig> {
        self.emulate_aws_quotas.then_some(crate::QuotaConfig {
            max_custom_key_stores: self.quota_max_custom_key_stores,
            store_crypto_rate: self.quota_store_crypto_rate,
            data_key_cost: self.quota_data_key_cost,
            account_crypto_rate: self.quota_account_crypto_rate,
            rsa_crypto_rate: self.quota_rsa_crypto_rate,
            ecc_crypto_rate: self.quota_ecc_crypto_rate,
            data_key_pair_rates: [
                (
                    DataKeyPairSpec::Rsa2048,
                    self.quota_data_key_pair_rsa_2048_rate,
                ),
                (
                    DataKeyPairSpec::Rsa3072,
                    self.quota_data_key_pair_rsa_3072_rate,
                ),
                (
                    DataKeyPairSpec::Rsa4096,
                    self.quota_data_key_pair_rsa_4096_rate,
                ),
                (
                    DataKeyPairSpec::EccNistP256,
                    self.quota_data_key_pair_ecc_nist_p256_rate,
                ),
                (
                    DataKeyPairSpec::EccNistP384,
                    self.quota_data_key_pair_ecc_nist_p384_rate,
                ),
                (
                    DataKeyPairSpec::EccNistP521,
                    self.quota_data_key_pair_ecc_nist_p521_rate,
                ),
                (
                    DataKeyPairSpec::EccSecgP256k1,
                    self.quota_data_key_pair_ecc_secg_p256k1_rate,
                ),
                (
                    DataKeyPairSpec::EccNistEdwards25519,
                    self.quota_data_key_pair_ecc_nist_edwards25519_rate,
                ),
            ]
            .into_iter()
            .collect(),
            key_store_api_rate: self.quota_key_store_api_rate,
            max_clusters_per_region: self.quota_max_clusters_per_region,
            max_hsms_per_cluster: self.quota_max_hsms_per_cluster,
        })
    }

    /// The HTTP endpoint's address: `http` parsed, which must be a loopback address (the
    /// endpoint checks no signatures, so it must not be reachable from other machines).
    pub fn http_address(&self) -> Result<Option<std::net::SocketAddr>> {
        if self.http.is_empty() {
            return Ok(None);
        }
        let addr: std::net::SocketAddr = self.http.parse().map_err(|e| {
            err!(
                ValidationException,
                "http '{}' is not an address host:port ({e})",
                self.http
            )
        })?;
        if !addr.ip().is_loopback() {
            return Err(err!(
                ValidationException,
                "http '{}' is not a loopback address: the endpoint checks no signatures",
                self.http
            ));
        }
        Ok(Some(addr))
    }

    /// The account and Region.
    pub fn scope(&self) -> crate::types::Scope {
        crate::types::Scope {
            account_id: self.account_id.clone(),
            region: self.region.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_is_read_from_octal_digits_only() {
        assert_eq!(parse_octal("660"), Ok(0o660));
        assert_eq!(parse_octal("0o750"), Ok(0o750));
        // `from_str_radix` takes a sign; a mode has none.
        for bad in ["+660", "0o+660", "-1", "", "0o", "8", "66 0"] {
            let e = parse_octal(bad).expect_err(bad);
            assert!(e.contains("is not an octal mode"), "{bad}: {e}");
        }
    }

    #[test]
    fn generate_random_uids_become_principals_or_everyone() {
        let mut c = DaemonConfig::default();
        assert!(c.generate_random_principals(500).unwrap().is_empty());
        c.generate_random_uids = " 1001, 1002 ,".into();
        let scope = c.scope();
        assert_eq!(
            c.generate_random_principals(500).unwrap(),
            vec![
                format!("arn:aws:iam::{}:user/uid-1001", scope.account_id),
                format!("arn:aws:iam::{}:user/uid-1002", scope.account_id),
            ]
        );
        c.generate_random_uids = "*".into();
        assert_eq!(c.generate_random_principals(500).unwrap(), vec!["*"]);
    }

    #[test]
    fn the_engine_splits_batches_only_when_fewer_loops_run_than_shards() {
        let engine = |loops, shards| {
            let c = DaemonConfig {
                event_loops: loops,
                engine_shards: shards,
                ..DaemonConfig::default()
            };
            let e = c.engine();
            (e.shards, e.split_batches)
        };
        assert_eq!(engine(2, 2), (2, false));
        assert_eq!(engine(4, 2), (2, false));
        assert_eq!(
            engine(1, 2),
            (2, true),
            "one loop leaves a core to split onto"
        );
        // The defaults (both one per core) cover every shard with a loop.
        assert!(!engine(0, 0).1);
    }

    #[test]
    fn empty_document_is_the_defaults() {
        assert_eq!(
            DaemonConfig::from_toml("", "t").unwrap(),
            DaemonConfig::default()
        );
    }

    #[test]
    fn keys_parse_and_unknown_keys_are_refused() {
        let c = DaemonConfig::from_toml(
            "socket = \"/tmp/x.sock\"\nsocket_mode = 0o666\nmax_connections = 3\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.socket_mode, 0o666);
        assert_eq!(c.max_connections, 3);
        let e = DaemonConfig::from_toml("max_conections = 3\n", "my.toml").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::ValidationException);
        assert!(e.message().contains("my.toml"), "{e}");
        assert!(e.message().contains("max_conections"), "{e}");
    }

    #[test]
    fn emulate_aws_quotas_from_the_file_or_the_flag_gives_aws_numbers_each_overridable() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: DaemonFlags,
        }
        assert_eq!(DaemonConfig::default().quotas(), None, "off by default");
        let c = DaemonConfig::from_toml("quota_store_crypto_rate = 7\n", "t").unwrap();
        assert_eq!(c.quotas(), None, "a quota_* option alone turns nothing on");

        let c = DaemonConfig::from_toml("emulate_aws_quotas = true\n", "t").unwrap();
        assert_eq!(c.quotas(), Some(crate::QuotaConfig::default()));

        let mut c = DaemonConfig::default();
        Cli::parse_from([
            "kmscksd",
            "--emulate-aws-quotas",
            "--quota-store-crypto-rate",
            "100",
            "--quota-account-crypto-rate",
            "200",
            "--quota-key-store-api-rate",
            "3",
            "--quota-max-custom-key-stores",
            "2",
            "--quota-data-key-cost",
            "4",
            "--quota-max-clusters-per-region",
            "5",
            "--quota-max-hsms-per-cluster",
            "7",
            "--quota-rsa-crypto-rate",
            "8",
            "--quota-ecc-crypto-rate",
            "9",
            "--quota-data-key-pair-rsa-4096-rate",
            "0.25",
            "--quota-data-key-pair-ecc-nist-p521-rate",
            "6",
        ])
        .flags
        .apply(&mut c);
        let mut data_key_pair_rates = crate::QuotaConfig::default().data_key_pair_rates;
        data_key_pair_rates.insert(DataKeyPairSpec::Rsa4096, RequestRate::from_millis(250));
        data_key_pair_rates.insert(DataKeyPairSpec::EccNistP521, RequestRate::per_second(6));
        assert_eq!(
            c.quotas(),
            Some(crate::QuotaConfig {
                max_custom_key_stores: 2,
                store_crypto_rate: 100,
                data_key_cost: 4,
                account_crypto_rate: 200,
                rsa_crypto_rate: 8,
                ecc_crypto_rate: 9,
                data_key_pair_rates,
                key_store_api_rate: 3,
                max_clusters_per_region: 5,
                max_hsms_per_cluster: 7,
            })
        );
        // The default has a rate for every pair spec but SM2 (which kmscks refuses), each from
        // an option (the defaults compared equal above); the file takes a decimal rate, to a
        // thousandth of a request and not below 0.
        let specs: Vec<_> = crate::QuotaConfig::default()
            .data_key_pair_rates
            .into_keys()
            .collect();
        let all_but_sm2: Vec<_> = DataKeyPairSpec::ALL
            .iter()
            .copied()
            .filter(|s| *s != DataKeyPairSpec::Sm2)
            .collect();
        assert_eq!(specs, all_but_sm2);
        let c = DaemonConfig::from_toml(
            "emulate_aws_quotas = true\nquota_data_key_pair_rsa_3072_rate = 0.1\n",
            "t",
        )
        .unwrap();
        let rates = c.quotas().unwrap().data_key_pair_rates;
        assert_eq!(
            rates[&DataKeyPairSpec::Rsa3072],
            RequestRate::from_millis(100)
        );
        for bad in ["0.0001", "-1"] {
            let doc = format!("quota_data_key_pair_rsa_4096_rate = {bad}\n");
            let e = DaemonConfig::from_toml(&doc, "t").unwrap_err();
            assert!(e.message().contains("not a request rate"), "{bad}: {e}");
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (doc, word) in [
            ("max_connections = 0", "max_connections"),
            ("socket_mode = 0o7777", "socket_mode"),
            ("socket_mode = 0o066", "socket_mode"),
            ("account_id = \"12\"", "account_id"),
            ("region = \"US East\"", "region"),
            ("max_pending_reply_bytes = 10", "max_pending_reply_bytes"),
            ("max_connections_per_uid = 0", "max_connections_per_uid"),
            ("max_in_flight = 0", "max_in_flight"),
            ("event_loops = 65", "event_loops"),
            ("control_nice = 20", "control_nice"),
            ("control_busy_percent = 0", "control_busy_percent"),
            ("control_busy_percent = 101", "control_busy_percent"),
            ("max_memory_per_uid = 1048576", "max_memory_per_uid"),
            ("event_log_file_bytes = 100", "event_log_file_bytes"),
            ("event_log_retain_days = 0", "event_log_retain_days"),
            (
                "quota_max_hsms_per_cluster = 29",
                "quota_max_hsms_per_cluster",
            ),
            (
                "quota_max_hsms_per_cluster = 0",
                "quota_max_hsms_per_cluster",
            ),
            ("generate_random_uids = \"1001,x\"", "generate_random_uids"),
        ] {
            let e = DaemonConfig::from_toml(doc, "t").unwrap_err();
            assert!(e.message().contains(word), "{doc}: {e}");
        }
    }
}
