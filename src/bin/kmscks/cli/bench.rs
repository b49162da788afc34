//! `kmscks bench`: the load generator.
//!
//! * In-process (no `--socket`): `--op generate-data-key|encrypt|decrypt|generate-random|
//!   generate-mac|sign|verify|derive-shared-secret|generate-data-key-pair --threads N --batch B --payload BYTES --duration SECONDS [--lend] [--baseline] [--json]`. It drives
//!   a fresh bootstrapped in-memory `Kms` (a key in a connected custom key store) through its
//!   public API ([`crate::loadgen::run_kms`]); `--baseline` also runs the raw
//!   aws-lc-rs baseline with the same threads and payload and prints the ratio. `--lend`
//!   (GenerateDataKey batches) takes the answers lent from reused buffers instead of owned
//!   per item, against a baseline that seals into a reused buffer.
//!   `generate-mac` makes an HMAC_256 key in the default key store for the run, `sign` and
//!   `verify` an ECC_NIST_P256 key (ECDSA_SHA_256; in every mode, unless `--key-id` names
//!   one), `derive-shared-secret` an ECC_NIST_P256 KEY_AGREEMENT key and a peer public key
//!   (the payload is not used); their baseline is aws-lc-rs's HMAC, ECDSA or ECDH with a key
//!   made once. `generate-data-key-pair` makes a symmetric key in the default key store and
//!   asks for ECC_NIST_P256 pairs; its baseline generates and encodes the same pair with
//!   aws-lc-rs and seals its private key with AES-256-GCM.
//! * Over the socket (`--socket PATH`): `--connections C --pipeline D` with the same `--op`,
//!   `--payload`, `--duration`; `--baseline` runs an echo of the same frame sizes over a Unix
//!   socket with the same C and D, the daemon and the echo taking turns in phases
//!   (`crate::loadgen_socket`, `crate::loadgen_turns`). `--key-id` picks the key (default:
//!   a new key in the default key store). `--beside create-key` measures the load alone and
//!   while another connection issues CreateKey in a loop (what a control-plane call costs
//!   the data plane's other clients), the load running throughout and the other connection
//!   idle and calling in phases (`crate::loadgen_beside`); `--beside rsa-decrypt` beside slow
//!   RSA decryptions, and `--beside pipelined-generate-data-key` beside a connection
//!   pipelining GenerateDataKey `loadgen_beside::BESIDE_DEPTH` deep (what a busy pipelining
//!   client costs a small one).
//! * Over HTTP (`--http URL`, e.g. `http://127.0.0.1:4599`): the same `--connections`,
//!   `--pipeline`, `--op`, `--payload`, `--duration`, `--key-id`, against any AWS JSON 1.1 KMS
//!   endpoint (`kmscksd --http`, moto's server); `--baseline` runs an HTTP echo of the
//!   endpoint's own answer over loopback TCP with the same C and D, the endpoint and the echo
//!   taking turns in phases (`crate::loadgen_http`, `crate::loadgen_turns`).
//!   Without `--key-id` the key is made with CreateKey first.
//!
//! * Scale report (`--scale N [--custom-key-store]`): creates N durable keys in a fresh data
//!   directory and measures the control plane ([`crate::scale`]); `--threads` and `--duration`
//!   (default 2 s here) shape its GenerateDataKey loops.
//!
//! Human output: ops/s, p50, p99, p99.9 (µs), and with `--baseline` the baseline's and the
//! ratio. `--json` prints the `LoadReport` JSON object (same members in both modes), or with
//! `--scale` the `ScaleReport` object.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::{CliError, Format, Target};
use crate::loadgen::{self, LoadOp, LoadOpts, LoadReport};
use crate::loadgen_beside;
use crate::loadgen_http::{self, HttpLoadOpts};
use crate::loadgen_socket::{self, SocketLoadOpts};
use crate::scale::{self, ScaleError, ScaleOpts};
use kmscks::KmsConfig;

/// The `bench` subcommand.
pub(crate) fn command() -> Command {
    let num = |name: &'static str, default: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name("N")
            .default_value(default)
            .value_parser(clap::value_parser!(u64).range(1..))
            .help(help)
    };
    Command::new("bench")
        .about("Load generator: in this process, over the daemon's socket with --socket, or over HTTP with --http")
        .arg(
            Arg::new("op")
                .long("op")
                .default_value("generate-data-key")
                .value_parser([
                    "generate-data-key",
                    "encrypt",
                    "decrypt",
                    "generate-random",
                    "generate-mac",
                    "sign",
                    "verify",
                    "derive-shared-secret",
                    "generate-data-key-pair",
                ])
                .help("The operation to drive"),
        )
        .arg(num("threads", "1", "Caller threads (in-process mode)"))
        .arg(num(
            "batch",
            "1",
            "Items per call (in-process mode; >1 uses the batch API)",
        ))
        .arg(
            Arg::new("lend")
                .long("lend")
                .action(ArgAction::SetTrue)
                .conflicts_with_all(["http", "scale"])
                .help(
                    "In-process batches of GenerateDataKey: answers lent from reused buffers \
                     (Kms::generate_data_key_batch_with, the daemon's path) instead of one owned \
                     response per item; the raw loop then seals into a reused buffer too",
                ),
        )
        .arg(num(
            "payload",
            "32",
            "Payload bytes (plaintext, or data key / random length)",
        ))
        .arg(
            Arg::new("duration")
                .long("duration")
                .value_name("SECONDS")
                .default_value("5")
                .help("How long to run: seconds (e.g. 5, 0.5), or with a unit (500ms, 2s)"),
        )
        .arg(num("connections", "1", "Connections (socket and HTTP modes)"))
        .arg(num(
            "pipeline",
            "1",
            "Requests in flight per connection (socket and HTTP modes)",
        ))
        .arg(
            Arg::new("key-id")
                .long("key-id")
                .value_name("KEY")
                .help("Socket and HTTP modes: the key to use (default: a new key, CreateKey)"),
        )
        .arg(
            Arg::new("http")
                .long("http")
                .value_name("URL")
                .help("Drive an AWS JSON 1.1 KMS endpoint (kmscksd --http, moto) at URL"),
        )
        .arg(
            Arg::new("beside")
                .long("beside")
                .value_name("OP")
                .value_parser(PossibleValuesParser::new(
                    loadgen_beside::Beside::ALL.map(|(name, _)| name),
                ))
                .conflicts_with_all(["http", "baseline"])
                .help(beside_help()),
        )
        .arg(
            Arg::new("baseline")
                .long("baseline")
                .action(ArgAction::SetTrue)
                .help("Also run the baseline and print the ratio"),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("Print the report as one JSON object"),
        )
        .arg(
            Arg::new("scale")
                .long("scale")
                .value_name("N")
                .value_parser(clap::value_parser!(u64).range(1..))
                .conflicts_with_all([
                    "op",
                    "batch",
                    "payload",
                    "baseline",
                    "connections",
                    "pipeline",
                    "key-id",
                    "http",
                ])
                .help("Scale report: create N durable keys in a fresh data directory and measure"),
        )
        .arg(
            Arg::new("custom-key-store")
                .long("custom-key-store")
                .action(ArgAction::SetTrue)
                .requires("scale")
                .help("Scale report: create the keys in a connected custom key store"),
        )
        .arg(
            Arg::new("open-probe")
                .long("open-probe")
                .value_name("DIR")
                .value_parser(clap::value_parser!(std::path::PathBuf))
                .hide(true)
                .help("Scale report's helper: open DIR in this fresh process and measure it"),
        )
}

/// `--beside`'s help, from the table of its values.
fn beside_help() -> String {
    let values: Vec<String> = loadgen_beside::Beside::ALL
        .iter()
        .map(|(name, b)| format!("{name} ({})", b.what()))
        .collect();
    format!(
        "Socket mode: measure the load alone and while one more connection calls OP in a \
         loop: {}; the load runs throughout, the other connection idle and calling in phases \
         of about {phase} ms (one beside phase per {phase} ms of --duration, at least three; \
         the run takes a little over twice --duration); reports the load's rate over all \
         phases beside the calls against its rate over all phases alone, and each beside \
         phase's share kept (that is its baseline: not with --baseline)",
        values.join(", "),
        phase = crate::loadgen::PHASE.as_millis(),
    )
}

/// Parses `5`, `0.5`, `500ms`, `2s`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v > 0.0 && v * scale <= 86_400.0).then(|| Duration::from_secs_f64(v * scale))
}

fn usize_arg(m: &ArgMatches, name: &str) -> usize {
    m.get_one::<u64>(name)
        .map(|&v| usize::try_from(v).unwrap_or(usize::MAX))
        .unwrap_or(1)
}

/// The options of a bench invocation.
pub(crate) fn opts(m: &ArgMatches) -> Result<LoadOpts, CliError> {
    let op_name = m
        .get_one::<String>("op")
        .map(String::as_str)
        .unwrap_or("generate-data-key");
    let op = LoadOp::parse(&op_name.replace('-', ""))
        .ok_or_else(|| CliError::Validation(format!("--op: unknown operation {op_name:?}")))?;
    let raw = m
        .get_one::<String>("duration")
        .map(String::as_str)
        .unwrap_or("5");
    let duration = parse_duration(raw).ok_or_else(|| {
        CliError::Validation(format!(
            "--duration: {raw:?} is not a duration (seconds, e.g. 5 or 0.5, or 500ms)"
        ))
    })?;
    let (batch, lend) = (usize_arg(m, "batch"), m.get_flag("lend"));
    if lend && (op != LoadOp::GenerateDataKey || batch < 2) {
        return Err(CliError::Validation(
            "--lend: only batches (--batch 2 or more) of --op generate-data-key lend their answers"
                .into(),
        ));
    }
    Ok(LoadOpts {
        op,
        threads: usize_arg(m, "threads"),
        batch,
        payload: usize_arg(m, "payload"),
        duration,
        lend,
    })
}

/// The human-readable report.
/// `socket`: the report of the socket or HTTP mode, whose `threads`/`batch` members hold the
/// connections and the pipeline depth.
pub(crate) fn human(r: &LoadReport, socket: bool) -> String {
    let (a, b) = if socket {
        ("connections", "pipeline")
    } else {
        ("threads", "batch")
    };
    let mut s = format!(
        "{}: {:.0} ops/s  p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  ({a} {}, {b} {}, payload {} B, errors {})\n",
        r.op, r.ops_per_sec, r.p50_us, r.p99_us, r.p999_us, r.threads, r.batch, r.payload, r.errors
    );
    if let (Some(ops), Some(ratio)) = (r.baseline_ops_per_sec, r.ratio) {
        s.push_str(&format!(
            "baseline: {:.0} ops/s  p50 {:.1} µs  p99 {:.1} µs\nratio: {:.3}\n",
            ops,
            r.baseline_p50_us.unwrap_or(f64::NAN),
            r.baseline_p99_us.unwrap_or(f64::NAN),
            ratio
        ));
    }
    if let (Some(beside), Some(alone), Some(alone_p50), Some(alone_p99)) = (
        r.beside_ops_per_sec,
        r.alone_ops_per_sec,
        r.alone_p50_us,
        r.alone_p99_us,
    ) {
        let shares: Vec<String> = (r.beside_kept_shares.iter().flatten())
            .map(|k| format!("{k:.3}"))
            .collect();
        s.push_str(&format!(
            "alone: {alone:.0} ops/s  p50 {alone_p50:.1} µs  p99 {alone_p99:.1} µs; beside \
             them: {beside:.0} {}/s ({:.3} of the rate alone over {} phases beside them; each against \
             the phases alone either side: {})\n",
            r.beside_op.as_deref().unwrap_or("calls"),
            r.ops_per_sec / alone.max(f64::MIN_POSITIVE),
            shares.len(),
            shares.join(", ")
        ));
    }
    if let (Some(daemon), Some(raw)) = (r.daemon_cpu_ns_per_op, r.raw_cpu_ns_per_op) {
        s.push_str(&format!(
            "daemon CPU: {daemon:.0} ns/op  raw crypto: {raw:.0} ns/op  ({:.1}×)\n",
            daemon / raw.max(f64::MIN_POSITIVE)
        ));
        if let Some(floor) = r.baseline_cpu_ns_per_op {
            s.push_str(&format!(
                "echo floor's CPU: {floor:.0} ns/op  ({:.1}× the raw crypto)\n",
                floor / raw.max(f64::MIN_POSITIVE)
            ));
        }
    }
    s
}

/// Runs `kmscks bench`.
pub(crate) fn run(
    m: &ArgMatches,
    target: &Target,
    _format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let o = opts(m)?;
    if let Some(dir) = m.get_one::<std::path::PathBuf>("open-probe") {
        let probe = scale::open_probe(dir).map_err(|e| CliError::Other(e.to_string()))?;
        let json = serde_json::to_string(&probe).unwrap_or_default();
        return out
            .write_all(format!("{json}\n").as_bytes())
            .map_err(|e| CliError::Other(format!("cannot write the output: {e}")));
    }
    if let Some(&keys) = m.get_one::<u64>("scale") {
        return run_scale(m, keys, &o, out, err);
    }
    // The global --endpoint-url means what bench's own --http does.
    let http = m.get_one::<String>("http").or(match target {
        Target::Http(url, ..) => Some(url),
        _ => None,
    });
    let socket_mode = http.is_none() && matches!(target, Target::Socket(..)) && socket_given(m);
    let report = if let Some(url) = http {
        let ho = HttpLoadOpts {
            op: o.op,
            connections: usize_arg(m, "connections"),
            pipeline: usize_arg(m, "pipeline"),
            payload: o.payload,
            duration: o.duration,
            key_id: m.get_one::<String>("key-id").cloned(),
        };
        let r = if m.get_flag("baseline") {
            loadgen_http::compare_http(url, &ho)
        } else {
            loadgen_http::run_http(url, &ho)
        };
        r.map_err(CliError::Other)?
    } else if let (true, Target::Socket(path, _)) = (socket_mode, target) {
        let so = SocketLoadOpts {
            op: o.op,
            connections: usize_arg(m, "connections"),
            pipeline: usize_arg(m, "pipeline"),
            payload: o.payload,
            duration: o.duration,
            key_id: m.get_one::<String>("key-id").cloned(),
            beside: m
                .get_one::<String>("beside")
                .and_then(|b| loadgen_beside::Beside::parse(b)),
            reply_spin: kmscks::client::DEFAULT_REPLY_SPIN,
            reply_timeout: crate::loadgen_turns::REPLY_TIMEOUT,
        };
        let r = if m.get_flag("baseline") {
            loadgen_socket::compare_socket(path, &so)
        } else {
            loadgen_socket::run_socket(path, &so)
        };
        r.map_err(|e| CliError::Service {
            operation: o.op.name().to_owned(),
            error: e,
        })?
    } else {
        // In-process: a fresh in-memory instance, bootstrapped (a key in a connected custom
        // key store), driven through the public `Kms` API.
        let (kms, key) = loadgen::bench_instance(KmsConfig::default())
            .map_err(|e| CliError::Other(format!("cannot set up the instance: {}", e.message())))?;
        let r = if m.get_flag("baseline") {
            loadgen::compare_kms(&kms, &key, &o)
        } else {
            loadgen::run_kms(&kms, &key, &o)
        };
        r.map_err(|e| CliError::Validation(e.message().to_owned()))?
    };
    let text = if m.get_flag("json") {
        format!("{}\n", report.to_json())
    } else {
        human(&report, socket_mode || http.is_some())
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::Other(format!("cannot write the output: {e}")))
}

/// Runs `kmscks bench --scale N`: always in this process, on a fresh data directory; a
/// progress line on stderr only when stderr is a terminal.
fn run_scale(
    m: &ArgMatches,
    keys: u64,
    o: &LoadOpts,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let so = ScaleOpts {
        keys: usize::try_from(keys).unwrap_or(usize::MAX),
        custom_key_store: m.get_flag("custom-key-store"),
        threads: o.threads,
        duration: match m.value_source("duration") {
            Some(ValueSource::DefaultValue) | None => scale::DEFAULT_GDK_DURATION,
            Some(_) => o.duration,
        },
        probe: kmscks_binary(),
    };
    let progress = std::io::stderr().is_terminal().then_some(err);
    let report = scale::run(&so, progress).map_err(|e| match e {
        ScaleError::Refused(m) => CliError::Validation(m),
        ScaleError::Failed(m) => CliError::Other(m),
    })?;
    let text = if m.get_flag("json") {
        format!("{}\n", report.to_json())
    } else {
        report.human()
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::Other(format!("cannot write the output: {e}")))
}

/// This process's binary when it is `kmscks` (it then serves `--open-probe`); `None` when
/// the command line runs inside another program, e.g. a test harness.
fn kmscks_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    (exe.file_stem()? == "kmscks").then_some(exe)
}

/// Whether `--socket` was given on the command line (the global flag, seen from `bench`).
fn socket_given(m: &ArgMatches) -> bool {
    m.try_get_one::<std::path::PathBuf>("socket")
        .ok()
        .flatten()
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
