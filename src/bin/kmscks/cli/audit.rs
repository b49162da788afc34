//! `kmscks cloudhsm audit verify|export`: the HSM audit streams checked as hash chains, by the
//! client, with the library's verifier ([`kmscks::api::hsm_audit`]) — the server's word is not
//! needed, and with `--file` not even the server.
//!
//! | verb | what it does |
//! |---|---|
//! | `audit verify --cluster-id ID [--hsm-id ID] [--expect-hsm ID…]` | fetches the streams (the AuditLog operation), verifies each, prints a verdict per HSM |
//! | `audit verify --file F [--expect-hsm ID…]` | verifies an exported file offline (no daemon, no data directory) |
//! | `audit export --cluster-id ID --hsm-id ID` | writes the HSM's stream as JSON lines, one record per line, hashes included |
//!
//! A verdict is `{"HsmId", "Verdict": "INTACT"|"BROKEN", "Records", "HeadHash", "Break":
//! {"Sequence", "Kind": "REMOVED"|"REORDERED"|"EDITED"}}` inside `{"Streams": [...]}`. When any
//! stream is broken, `verify` prints the verdicts all the same, names the breaks on stderr and
//! exits [`EXIT_BROKEN`]. So it does when a stream is missing: when there is none at all (an
//! empty export, a cluster without audit streams: nothing was verified), or when an HSM
//! `--expect-hsm` names has none (a chain cannot show that a whole stream was left out of an
//! export). These verbs are not operations of their own (the op table has AuditLog); the
//! existing `audit-log` verb prints the raw response.

use std::io::Write;
use std::path::PathBuf;

use clap::{Arg, ArgGroup, ArgMatches, Command};
use serde_json::{Map, Value};

use super::args::{opt, req, ArgSpec, Kind::*, ParamError};
use super::{spec_args, CliError, Target};
use kmscks::api::hsm::{AuditLogRequest, AuditStream};
use kmscks::api::hsm_audit::{self, AuditRecordLine, StreamVerdict};
use kmscks::ops::{Op, Request, Response};
use kmscks::types::HsmId;

/// Exit code of `audit verify` when a chain is broken or a stream is missing (the verdicts are
/// still printed).
pub(crate) const EXIT_BROKEN: i32 = 1;

const HSM_ID: ArgSpec = opt("hsm-id", Str, "Only this HSM");
const EXPECT_HSM: ArgSpec = opt(
    "expect-hsm",
    List,
    "An HSM whose stream must be verified (repeatable): without it the verification fails",
);

/// The verbs below `kmscks cloudhsm audit`: name, about, flags.
const VERBS: &[(&str, &str, &[ArgSpec])] = &[
    (
        "verify",
        "Verify the HSM audit streams' hash chains (of a cluster, or of an exported --file)",
        &[
            opt("cluster-id", Str, "The cluster's id"),
            HSM_ID,
            opt(
                "file",
                Str,
                "An exported stream (JSON lines) to verify offline",
            ),
            EXPECT_HSM,
        ],
    ),
    (
        "export",
        "Write an HSM's audit stream as JSON lines, one record per line, with its hashes",
        &[
            req("cluster-id", Str, "The cluster's id"),
            req("hsm-id", Str, "The HSM's id"),
        ],
    ),
];

/// The `audit` group of `kmscks cloudhsm`.
pub(crate) fn command() -> Command {
    let mut group = Command::new("audit")
        .about("Tamper-evident HSM audit streams: verify and export")
        .subcommand_required(true);
    for (name, about, specs) in VERBS {
        let mut leaf = Command::new(*name).about(*about).args(spec_args(specs));
        if *name == "verify" {
            leaf = leaf
                .group(
                    ArgGroup::new("source")
                        .args(["cluster-id", "file"])
                        .required(true),
                )
                .mut_arg("file", |a: Arg| {
                    a.conflicts_with_all(["cluster-id", "hsm-id"])
                        .value_parser(clap::value_parser!(PathBuf))
                });
        }
        group = group.subcommand(leaf);
    }
    group
}

/// Runs `audit verify` or `audit export`.
pub(super) fn run(
    m: &ArgMatches,
    target: &Target,
    print: &super::Printer,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let io = CliError::output;
    match m.subcommand() {
        Some(("verify", v)) => {
            let expected = expected_hsms(v)?;
            let (verdicts, source) = match v.get_one::<PathBuf>("file") {
                Some(file) => (verify_file(file)?, file.display().to_string()),
                None => {
                    let verdicts = fetch(v, target)?
                        .iter()
                        .map(|s| hsm_audit::verify_stream(&s.hsm_id, &s.events))
                        .collect();
                    let cluster = v.get_one::<String>("cluster-id").cloned();
                    (verdicts, format!("cluster {}", cluster.unwrap_or_default()))
                }
            };
            print_verdicts(&verdicts, print, out)?;
            let failures = failures(&verdicts, &expected, &source);
            if failures.is_empty() {
                Ok(())
            } else {
                Err(CliError::AuditBroken(failures.join("\n")))
            }
        }
        Some(("export", e)) => {
            for stream in fetch(e, target)? {
                for event in stream.events {
                    let line = AuditRecordLine {
                        hsm_id: stream.hsm_id.clone(),
                        event,
                    };
                    let text = serde_json::to_string(&line)
                        .map_err(|e| CliError::Other(format!("cannot encode a record: {e}")))?;
                    writeln!(out, "{text}").map_err(io)?;
                }
            }
            Ok(())
        }
        _ => Err(CliError::Other("no audit verb given".into())),
    }
}

/// The HSMs `--expect-hsm` names, each an HSM id.
fn expected_hsms(m: &ArgMatches) -> Result<Vec<HsmId>, CliError> {
    m.get_many::<String>(EXPECT_HSM.flag)
        .into_iter()
        .flatten()
        .map(|text| {
            HsmId::parse(text).ok_or_else(|| {
                CliError::Param(ParamError {
                    flag: format!("--{}", EXPECT_HSM.flag),
                    message: format!("{text:?} is not an HSM id"),
                })
            })
        })
        .collect()
}

/// What makes a verification fail, one line each: no stream at all (nothing was verified), an
/// expected HSM without a stream, broken chains. Empty: every stream is intact and there.
fn failures(verdicts: &[StreamVerdict], expected: &[HsmId], source: &str) -> Vec<String> {
    let mut out = Vec::new();
    if verdicts.is_empty() {
        out.push(format!(
            "{source} has no audit record: nothing was verified"
        ));
    }
    let missing: Vec<&str> = expected
        .iter()
        .filter(|hsm| !verdicts.iter().any(|v| v.hsm_id == **hsm))
        .map(HsmId::as_str)
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "{source} has no audit stream of {} (--{})",
            missing.join(", "),
            EXPECT_HSM.flag
        ));
    }
    let breaks: Vec<String> = verdicts
        .iter()
        .filter_map(|v| {
            let b = v.chain_break?;
            Some(format!(
                "{} at sequence {} ({})",
                v.hsm_id,
                b.sequence,
                kind_name(b.kind)
            ))
        })
        .collect();
    if !breaks.is_empty() {
        out.push(format!(
            "{} of {} audit streams are broken: {}",
            breaks.len(),
            verdicts.len(),
            breaks.join("; ")
        ));
    }
    out
}

/// The streams, by the AuditLog operation; with `--hsm-id`, that HSM must have one.
fn fetch(m: &ArgMatches, target: &Target) -> Result<Vec<AuditStream>, CliError> {
    let cluster_id = m
        .get_one::<String>("cluster-id")
        .cloned()
        .unwrap_or_default();
    let hsm_id = m.get_one::<String>("hsm-id").cloned();
    let request = Request::AuditLog(AuditLogRequest {
        cluster_id: cluster_id.clone(),
        hsm_id: hsm_id.clone(),
    });
    let service = |error| CliError::Service {
        operation: Op::AuditLog.name().to_owned(),
        error,
    };
    let streams = match target.open()?.call(&request).map_err(service)? {
        Response::AuditLog(r) => r.streams,
        other => {
            return Err(CliError::Other(format!(
                "internal error: AuditLog answered {:?}",
                other.op()
            )))
        }
    };
    if let (Some(hsm), true) = (hsm_id, streams.is_empty()) {
        return Err(service(kmscks::err!(
            CloudHsmResourceNotFoundException,
            "The HSM {hsm} has no audit stream in cluster {cluster_id}"
        )));
    }
    Ok(streams)
}

/// Reads an exported file (one [`AuditRecordLine`] per non-empty line) and verifies it.
fn verify_file(file: &PathBuf) -> Result<Vec<StreamVerdict>, CliError> {
    let perr = |message: String| {
        CliError::Param(ParamError {
            flag: "--file".into(),
            message,
        })
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| perr(format!("Unable to read {}: {e}", file.display())))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: AuditRecordLine = serde_json::from_str(line).map_err(|e| {
            perr(format!(
                "{} line {}: not an audit record: {e}",
                file.display(),
                i + 1
            ))
        })?;
        records.push((r.hsm_id, r.event));
    }
    Ok(hsm_audit::verify_records(records))
}

fn kind_name(kind: hsm_audit::BreakKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// One verdict as printed: the library's members and `Verdict` (`INTACT` or `BROKEN`).
fn verdict_value(v: &StreamVerdict) -> Value {
    let mut obj = Map::new();
    obj.insert(
        "Verdict".into(),
        Value::from(if v.is_intact() { "INTACT" } else { "BROKEN" }),
    );
    if let Ok(Value::Object(members)) = serde_json::to_value(v) {
        obj.extend(members);
    }
    Value::Object(obj)
}

fn print_verdicts(
    verdicts: &[StreamVerdict],
    print: &super::Printer,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut top = Map::new();
    top.insert(
        "Streams".into(),
        Value::Array(verdicts.iter().map(verdict_value).collect()),
    );
    let value = Value::Object(top);
    // Invariant: a Value serialises to JSON and reads back as a tree.
    let json =
        serde_json::to_vec(&value).map_err(|e| CliError::output(std::io::Error::other(e)))?;
    let node = super::tree::Node::parse(&json).unwrap_or(super::tree::Node::Null);
    print.one(node, out)
}
