//! The `kmscks` command line, shaped like the AWS CLI so that AWS users need no manual:
//! `kmscks kms <operation-in-kebab-case>` with `aws kms`'s flag names, `kmscks cloudhsm …` for
//! the simulated cluster, `kmscks bench` (load generator) and `kmscks completion SHELL`.
//!
//! Every verb is derived from the operation table ([`Op::ALL`]): a `kms` verb is the
//! operation's name in kebab case ([`kms::args`] gives its flags), a `cloudhsm` verb comes from
//! [`cloudhsm::verb`]; `cloudhsm fault <kind>` come from [`fault::KINDS`] (each sends InjectFault);
//! `cloudhsm audit verify|export` are client-side verbs over AuditLog
//! ([`audit`]: the hash chains checked here, not by the server). A flag `--some-member` fills the request member `SomeMember`; the request
//! is then deserialised from that JSON object exactly as the socket or HTTP layers would, so
//! there is no second description of the request types. Secrets (`--plaintext`, passwords)
//! never enter that JSON: they are read straight into `SecretBytes`/`Password` and put into
//! the request afterwards; a `--cli-input-json` secret member is moved out of it (its text
//! wiped) as soon as the document is parsed, and what the object still holds (a batch's
//! `Items`) is wiped with it.
//!
//! What the AWS CLI does around a call is done the same way and derived from the same flag
//! tables, so a new verb gets it with no code: `--cli-input-json` / `--generate-cli-skeleton`
//! ([`skeleton`]; a `--cli-input-json` member the request does not have is refused, as
//! botocore refuses it, rather than dropped), auto-pagination of the verbs with paging flags
//! ([`paginate`]), `--query` ([`query`]), and printing ([`output`], over the ordered tree of
//! [`tree`], timestamps as AWS CLI v2 prints them).
//!
//! Backends: `--data-dir DIR` runs the operation in this process on the data directory (no
//! daemon; it conflicts with `--socket`, and `--endpoint-url` with both, wherever on the line
//! each is given); otherwise the CLI talks to the daemon on `--socket PATH`, else
//! `$KMSCKS_SOCKET`, else the per-user default ([`kmscks::client::default_socket`]). It talks
//! only to a daemon run by its own uid, root, or `$KMSCKS_DAEMON_UID`
//! ([`kmscks::client::DAEMON_UID_ENV`]), and exits 255 naming the socket and the daemon's uid
//! otherwise.
//!
//! Exit codes, as AWS CLI v2: 0 success, 252 usage or parameter error, 254 the service
//! answered with an error (printed after a blank line as `An error occurred (<Exception>) when
//! calling the <Op> operation: <message>`), 255 anything else (cannot connect, cannot open the
//! data directory).

pub(crate) mod args;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod cloudhsm;
pub(crate) mod completion;
pub(crate) mod fault;
pub(crate) mod http;
pub(crate) mod kms;
pub(crate) mod output;
pub(crate) mod paginate;
pub(crate) mod query;
pub(crate) mod skeleton;
pub(crate) mod tree;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use serde_json::{Map, Value};

use args::{ArgSpec, Kind, ParamError};
use kmscks::api::kms::Refused;
use kmscks::ops::{Backend, Op, Request};
use kmscks::protocol::aws_json;
use kmscks::secret::{Password, SecretBytes};
use kmscks::KmsError;
pub(crate) use output::Format;
use tree::Node;

/// Exit code: success.
pub(crate) const EXIT_OK: i32 = 0;
/// Exit code of AWS CLI v2 for usage and parameter errors.
pub(crate) const EXIT_USAGE: i32 = 252;
/// Exit code of AWS CLI v2 when the service returned an error.
pub(crate) const EXIT_SERVICE: i32 = 254;
/// Exit code of AWS CLI v2 for any other failure (e.g. cannot connect).
pub(crate) const EXIT_OTHER: i32 = 255;

/// A verb of the command line and the operation it sends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verb {
    /// The operation.
    pub op: Op,
    /// Its path below `kmscks`, e.g. `["kms", "encrypt"]` or `["cloudhsm", "user", "create"]`.
    pub path: &'static [&'static str],
    /// Its flags.
    pub args: &'static [ArgSpec],
    /// For the refused operations' verbs: the operation sent as `Operation`.
    pub refused: Option<Refused>,
}

fn leak_path(parts: Vec<String>) -> &'static [&'static str] {
    // Built once per process (the verb table); the few hundred bytes live as long as it.
    let v: Vec<&'static str> = parts
        .into_iter()
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .collect();
    Box::leak(v.into_boxed_slice())
}

/// Every verb, derived from [`Op::ALL`] (plus one verb per refused `aws kms` operation).
pub(crate) fn verbs() -> &'static [Verb] {
    static VERBS: std::sync::OnceLock<Vec<Verb>> = std::sync::OnceLock::new();
    VERBS.get_or_init(|| {
        let mut out: Vec<Verb> = Vec::new();
        for &op in Op::ALL {
            if let Some(args) = kms::args(op) {
                out.push(Verb {
                    op,
                    path: leak_path(vec!["kms".into(), args::kebab_case(op.name())]),
                    args,
                    refused: None,
                });
            }
            if let Some((path, args)) = cloudhsm::verb(op) {
                if out
                    .iter()
                    .any(|v| v.path[1..] == *path && v.path[0] == "cloudhsm")
                {
                    continue; // initialize-cluster serves two operations
                }
                let mut full = vec!["cloudhsm".to_owned()];
                full.extend(path.iter().map(|s| s.to_string()));
                out.push(Verb {
                    op,
                    path: leak_path(full),
                    args,
                    refused: None,
                });
            }
        }
        for &refused in Refused::ALL {
            out.push(Verb {
                op: Op::Refused,
                path: leak_path(vec!["kms".into(), args::kebab_case(refused.name())]),
                args: kms::refused_args(refused),
                refused: Some(refused),
            });
        }
        out
    })
}

/// The operations that have no verb (empty when the CLI covers the table; a test holds it).
#[cfg(test)]
pub(crate) fn ops_without_verb() -> Vec<Op> {
    let v = verbs();
    Op::ALL
        .iter()
        .copied()
        .filter(|op| {
            !v.iter().any(|verb| {
                verb.op == *op
                    || (verb.path == ["cloudhsm", "initialize-cluster"]
                        && matches!(op, Op::InitializeCluster | Op::InitializeClusterWithNewCa))
            })
        })
        .collect()
}

/// The flags of `specs`.
fn spec_args(specs: &[ArgSpec]) -> Vec<Arg> {
    flag_args(specs, false)
}

/// The flags of `specs`; `relaxed`: none required.
fn flag_args(specs: &[ArgSpec], relaxed: bool) -> Vec<Arg> {
    let mut out = Vec::new();
    for s in specs {
        if s.flag == REGION {
            continue; // the global --region fills it
        }
        let a = Arg::new(s.flag).long(s.flag).help(s.help);
        let s = &ArgSpec {
            required: s.required && !relaxed,
            ..*s
        };
        match s.kind {
            Kind::Bool => {
                // clap ids are `&'static str`; the tree is built once or twice per process.
                let no: &'static str = Box::leak(format!("no-{}", s.flag).into_boxed_str());
                out.push(a.action(ArgAction::SetTrue).conflicts_with(no));
                out.push(
                    Arg::new(no)
                        .long(no)
                        .action(ArgAction::SetTrue)
                        .help(format!("Sets {} to false", args::pascal_case(s.flag))),
                );
            }
            Kind::List | Kind::Tags | Kind::HsmTags | Kind::Filters => out.push(
                a.num_args(1..)
                    .action(ArgAction::Append)
                    .required(s.required)
                    .value_name("VALUE"),
            ),
            _ => out.push(
                a.num_args(1)
                    .required(s.required)
                    .allow_hyphen_values(true)
                    .value_name("VALUE"),
            ),
        }
    }
    out
}

/// The flags of a verb: its own (`relaxed`: none required, for a `--cli-input-json` or
/// `--generate-cli-skeleton` line, whose required members are checked after the merge), the
/// paging flags where it pages ([`paginate::FLAGS`]), and the AWS CLI's input flags.
fn verb_args(specs: &[ArgSpec], relaxed: bool) -> Vec<Arg> {
    let mut out = flag_args(specs, relaxed);
    if paginate::of(specs).is_some() {
        for (flag, help) in paginate::FLAGS {
            let a = Arg::new(*flag).long(*flag).help(*help).value_name("VALUE");
            out.push(if *flag == "starting-token" {
                a
            } else {
                a.value_parser(clap::value_parser!(u64))
            });
        }
    }
    out.push(
        Arg::new(CLI_INPUT_JSON)
            .long(CLI_INPUT_JSON)
            .value_name("JSON")
            .help("The request as JSON (or file://PATH), as --generate-cli-skeleton prints it; flags given too override its members"),
    );
    out.push(
        Arg::new(SKELETON)
            .long(SKELETON)
            .value_name("input")
            .num_args(0..=1)
            .default_missing_value("input")
            .help("Print a JSON skeleton of the request for --cli-input-json, and call nothing"),
    );
    out
}

/// `--region`: global; fills the `Region` member of the verbs that have one.
const REGION: &str = "region";
/// `--endpoint-url`: global; an `http://` URL sends the requests to that AWS JSON endpoint.
const ENDPOINT_URL: &str = "endpoint-url";
/// `--cli-read-timeout`: global; seconds a call waits for its answer (0: no limit).
const CLI_READ_TIMEOUT: &str = "cli-read-timeout";
/// `--cli-read-timeout`'s default, the AWS CLI's.
const DEFAULT_READ_TIMEOUT_SECS: &str = "60";
/// `--cli-binary-format`: global; how blob values are read ([`args::BinaryFormat`]).
const CLI_BINARY_FORMAT: &str = "cli-binary-format";
/// `--cli-input-json`.
const CLI_INPUT_JSON: &str = "cli-input-json";
/// `--generate-cli-skeleton`.
const SKELETON: &str = "generate-cli-skeleton";
/// The word `help` after a verb (`kmscks kms encrypt help`): the verb's help, as the AWS CLI
/// reads a positional `help` (a flag's value `help` is that value).
const HELP_WORD: &str = "help";
/// The id of the argument that takes the words after a verb that no flag takes: the first
/// [`HELP_WORD`] asks for the verb's help, any other is refused with `Unknown options`
/// ([`stray_words`]). One argument takes them all (clap's own `--help` has the id `help`, and
/// no two arguments may share an id) so that clap reports none of them as a bad value of an
/// argument the user never heard of.
const HELP_WORD_ID: &str = "help-word";

/// `cmd` with `f` applied to each of its subcommands (clap changes a subcommand by its name).
fn each_subcommand(cmd: Command, f: fn(Command) -> Command) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    names
        .iter()
        .fold(cmd, |cmd, name| cmd.mut_subcommand(name, f))
}

/// `cmd` with every leaf command that takes no word of its own taking the words no flag takes
/// ([`HELP_WORD_ID`]).
fn with_help_word(cmd: Command) -> Command {
    if cmd.has_subcommands() {
        each_subcommand(cmd, with_help_word)
    } else if cmd.get_positionals().next().is_none() {
        cmd.arg(
            Arg::new(HELP_WORD_ID)
                .num_args(1..)
                .action(ArgAction::Append)
                .hide(true)
                .help("`help` as a word of its own, as `aws kms encrypt help` reads it; any other word is an unknown option"),
        )
    } else {
        cmd
    }
}

/// The words after a verb that no flag takes, in the order the AWS CLI lists them in
/// `Unknown options: …` (none: `None`). argparse gives the first such word to its `help`
/// positional and, that word not being `help`, appends it to the others, so it comes last:
/// `b=2 c=3` is `c=3, b=2`.
fn stray_words(m: &ArgMatches) -> Option<Vec<String>> {
    let mut leaf = m;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    // `try_get_many`: the leaves with a word of their own (`completion SHELL`) lack the argument.
    let mut words: Vec<String> = leaf
        .try_get_many::<String>(HELP_WORD_ID)
        .ok()??
        .cloned()
        .collect();
    if words.is_empty() {
        return None;
    }
    words.rotate_left(1);
    Some(words)
}

/// What the AWS CLI prints before `Unknown options: …`, with kmscks's name.
const USAGE: &str = "kmscks [options] <command> <subcommand> [<subcommand> ...] [parameters]
To see help text, you can run:

  kmscks help
  kmscks <command> help
  kmscks <command> <subcommand> help
";

/// Whether a command line reads its request from JSON (so no flag is required by the parser).
fn relaxed(argv: &[OsString]) -> bool {
    argv.iter().any(|a| {
        let a = a.to_string_lossy();
        [CLI_INPUT_JSON, SKELETON].iter().any(|f| {
            a.strip_prefix("--")
                .is_some_and(|r| r == *f || r.starts_with(&format!("{f}=")))
        })
    })
}

/// The whole command tree (also what completion scripts are generated from).
pub(crate) fn command() -> Command {
    command_for(false)
}

/// The command tree; `relaxed`: no verb flag is required (see [`spec_args`]).
fn command_for(relaxed: bool) -> Command {
    let mut kms_cmd = Command::new("kms")
        .about("AWS KMS operations (aws kms …)")
        .subcommand_required(true)
        .arg_required_else_help(true);
    let mut hsm_cmd = Command::new("cloudhsm")
        .about("The simulated CloudHSM cluster (aws cloudhsmv2 … and CloudHSM CLI verbs)")
        .subcommand_required(true)
        .arg_required_else_help(true);
    for v in verbs() {
        let about = match v.refused {
            Some(refused) => format!(
                "{} (refused: it applies to multi-Region keys, and every kmscks key is \
                 single-Region)",
                refused.name()
            ),
            None => format!("{} ({})", v.op.summary(), v.op.name()),
        };
        let leaf = Command::new(*v.path.last().unwrap_or(&""))
            .about(about)
            .args(verb_args(v.args, relaxed))
            // The generic form of the refused operations is kmscks's own plumbing, which
            // `aws kms` lacks: callable, not listed.
            .hide(v.op == Op::Refused && v.refused.is_none());
        if v.path[0] == "kms" {
            kms_cmd = kms_cmd.subcommand(leaf);
        } else if v.path.len() == 2 {
            hsm_cmd = hsm_cmd.subcommand(leaf);
        } else {
            let group = v.path[1];
            let existing = hsm_cmd.find_subcommand(group).is_some();
            if !existing {
                hsm_cmd = hsm_cmd.subcommand(match group {
                    "fault" => fault::group(),
                    _ => Command::new(group)
                        .about(match group {
                            "user" => "CloudHSM CLI user verbs",
                            "cluster" => "CloudHSM CLI cluster verbs",
                            _ => "CloudHSM CLI key verbs",
                        })
                        .subcommand_required(true),
                });
            }
            hsm_cmd = hsm_cmd.mut_subcommand(group, |g| g.subcommand(leaf));
        }
    }
    hsm_cmd = hsm_cmd.subcommand(audit::command());
    let root = Command::new("kmscks")
        .about("AWS KMS custom key stores on one machine: the AWS-CLI-shaped command line")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("socket")
                .long("socket")
                .global(true)
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("The daemon's socket (default: $KMSCKS_SOCKET, else the per-user default); the daemon must run as your uid, root, or $KMSCKS_DAEMON_UID"),
        )
        .arg(
            Arg::new("data-dir")
                .long("data-dir")
                .global(true)
                .value_name("DIR")
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with("socket")
                .help("Run in this process on this data directory instead of using the daemon"),
        )
        .arg(
            Arg::new("output")
                .long("output")
                .global(true)
                .value_name("FORMAT")
                .value_parser(output::AWS_FORMATS.to_vec())
                .default_value("json")
                .help("Output format: json or text, as aws prints them (table, yaml and yaml-stream are refused)"),
        )
        .arg(
            Arg::new("query")
                .long("query")
                .global(true)
                .value_name("JMESPATH")
                .help("A JMESPath expression applied to the answer before it is printed"),
        )
        .arg(
            Arg::new("no-paginate")
                .long("no-paginate")
                .global(true)
                .action(ArgAction::SetTrue)
                .help("One call only: print the service's first page as it is (Truncated, NextMarker)"),
        )
        .arg(
            Arg::new(ENDPOINT_URL)
                .long(ENDPOINT_URL)
                .global(true)
                .value_name("URL")
                .conflicts_with_all(["socket", "data-dir"])
                .help("Send the requests to this AWS JSON endpoint (http://HOST:PORT, e.g. kmscksd --http) instead of the daemon's socket"),
        )
        .arg(
            Arg::new(CLI_BINARY_FORMAT)
                .long(CLI_BINARY_FORMAT)
                .global(true)
                .value_name("FORMAT")
                .value_parser(clap::value_parser!(args::BinaryFormat))
                .help("How blob values are read, as AWS CLI v2 reads them: base64 (the default: a bare value and file:// text are base64) or raw-in-base64-out (a bare value is its UTF-8 bytes, file:// the file's bytes); fileb:// is raw bytes either way, and blobs are printed in base64"),
        )
        .arg(
            Arg::new(CLI_READ_TIMEOUT)
                .long(CLI_READ_TIMEOUT)
                .global(true)
                .value_name("SECONDS")
                .value_parser(clap::value_parser!(u64))
                .default_value(DEFAULT_READ_TIMEOUT_SECS)
                .help("How long a kms or cloudhsm verb waits for the daemon's (or --endpoint-url's) answer before it gives up, as the AWS CLI's flag: the request's outcome is then unknown; 0 waits for as long as it takes (bench bounds its own connections)"),
        )
        .arg(
            Arg::new(REGION)
                .long(REGION)
                .global(true)
                .value_name("REGION")
                .help("The Region: of the clusters and backups for cloudhsm verbs; for kms verbs with --data-dir, the directory's (a daemon serves the one of its data directory)"),
        )
        .subcommand(kms_cmd)
        .subcommand(hsm_cmd)
        .subcommand(bench::command())
        .subcommand(completion::command());
    with_help_word(root)
}

/// A failure of one CLI invocation, with its exit code.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad parameters (252).
    Param(ParamError),
    /// Parameters that do not make a valid request (252).
    Validation(String),
    /// The operation failed (254): printed with the operation's name.
    Service {
        /// The operation's AWS name.
        operation: String,
        /// The error.
        error: KmsError,
    },
    /// Anything else (255).
    Other(String),
    /// `cloudhsm audit verify` found a broken chain ([`audit::EXIT_BROKEN`]): which, where.
    AuditBroken(String),
    /// Words after a verb that no flag takes (252), as [`stray_words`] orders them.
    UnknownOptions(Vec<String>),
}

impl CliError {
    /// The answer could not be written to `out` (255).
    pub(crate) fn output(e: std::io::Error) -> CliError {
        CliError::Other(format!("cannot write the output: {e}"))
    }

    /// The process exit code.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            CliError::Param(_) | CliError::Validation(_) | CliError::UnknownOptions(_) => {
                EXIT_USAGE
            }
            CliError::Service { .. } => EXIT_SERVICE,
            CliError::Other(_) => EXIT_OTHER,
            CliError::AuditBroken(_) => audit::EXIT_BROKEN,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Param(p) => write!(f, "\n{p}\n"),
            CliError::Validation(m) => write!(f, "\nParameter validation failed:\n{m}\n"),
            // A blank line first, as AWS CLI v2's error handlers write every error.
            CliError::Service { operation, error } => write!(
                f,
                "\n{}\n",
                output::error_line(error.aws_name(), operation, error.message())
            ),
            CliError::Other(m) | CliError::AuditBroken(m) => write!(f, "\n{m}\n"),
            CliError::UnknownOptions(words) => write!(
                f,
                "\nusage: {USAGE}\nUnknown options: {}\n",
                words.join(", ")
            ),
        }
    }
}

impl From<ParamError> for CliError {
    fn from(p: ParamError) -> CliError {
        CliError::Param(p)
    }
}

enum Secret {
    Bytes(SecretBytes),
    Password(Password),
}

/// A request as a command line gives it: the operation, its JSON object (AWS member names),
/// and the secrets, kept out of that object.
pub(crate) struct Input {
    /// The operation.
    pub op: Op,
    /// The request's members.
    pub obj: Map<String, Value>,
    secrets: Vec<(String, Secret)>,
}

/// Builds the request of `verb` from parsed flags.
#[cfg(test)]
pub(crate) fn build_request(verb: &Verb, m: &ArgMatches) -> Result<Request, CliError> {
    let input = request_input(verb, m)?;
    to_request(&operation_name(verb), input.op, input.obj, input.secrets)
}

/// The request object of `verb`: `--cli-input-json`'s members, overridden by the flags given.
pub(crate) fn request_input(verb: &Verb, m: &ArgMatches) -> Result<Input, CliError> {
    let op = cloudhsm::choose_op(verb.op, &|flag| {
        m.contains_id(flag) && m.value_source(flag).is_some()
    });
    let mut obj = match m.try_get_one::<String>(CLI_INPUT_JSON).ok().flatten() {
        Some(json) => match args::any_json(CLI_INPUT_JSON, json)? {
            Value::Object(o) => o,
            _ => {
                return Err(CliError::Param(ParamError {
                    flag: format!("--{CLI_INPUT_JSON}"),
                    message: "Invalid JSON: the input must be a JSON object".into(),
                }))
            }
        },
        None => Map::new(),
    };
    check_unknown(verb, op, &obj)?;
    let binary = m
        .try_get_one::<args::BinaryFormat>(CLI_BINARY_FORMAT)
        .ok()
        .flatten()
        .copied()
        .unwrap_or_default();
    let mut secrets = json_members(verb, m, &mut obj, binary)?;
    for s in verb.args {
        let member = s.member_name();
        let flag = s.flag;
        match s.kind {
            Kind::Bool => {
                if m.get_flag(flag) {
                    obj.insert(member, Value::Bool(true));
                } else if m.get_flag(&format!("no-{flag}")) {
                    obj.insert(member, Value::Bool(false));
                }
            }
            Kind::List | Kind::Tags | Kind::HsmTags | Kind::Filters => {
                let Some(values) = m.get_many::<String>(flag) else {
                    continue;
                };
                let values: Vec<String> = values.cloned().collect();
                let v = match s.kind {
                    Kind::Tags => args::tags(flag, &values, args::KMS_TAG)?,
                    Kind::HsmTags => args::tags(flag, &values, args::HSM_TAG)?,
                    Kind::Filters => args::filters(flag, &values)?,
                    _ => args::list(flag, &values)?,
                };
                obj.insert(member, v);
            }
            _ => {
                let Some(value) = m.try_get_one::<String>(flag).ok().flatten() else {
                    continue;
                };
                let v = match s.kind {
                    Kind::Str => Value::String(args::plain_text(flag, value)?),
                    Kind::Int => args::int(flag, value)?,
                    Kind::Blob => args::base64_value(args::blob(flag, value, binary)?.expose()),
                    Kind::SecretBlob => {
                        let bytes = args::secret_blob(flag, value, binary)?;
                        secrets.push((member.clone(), Secret::Bytes(bytes)));
                        Value::String(String::new())
                    }
                    Kind::Password => {
                        secrets.push((
                            member.clone(),
                            Secret::Password(args::password(flag, value)?),
                        ));
                        Value::String(String::new())
                    }
                    Kind::Map | Kind::Structure => args::map(flag, value)?,
                    Kind::Constraints => args::constraints(flag, value)?,
                    _ => args::any_json(flag, value)?,
                };
                obj.insert(member, v);
            }
        }
    }
    for (member, default) in kms::defaults(op) {
        obj.entry(member.to_string())
            .or_insert_with(|| Value::from(*default));
    }
    if let Some(refused) = verb.refused {
        obj.insert("Operation".into(), Value::String(refused.name().into()));
    }
    Ok(Input { op, obj, secrets })
}

/// The blob and password members of `--cli-input-json` (`obj`). A blob is read as a blob
/// flag's bare value is read ([`args::blob_text`], in `binary`): base64 wrapped over lines
/// (what `base64` writes) is taken as the flag takes it, where the request's own decoding is
/// strict. A plain blob goes back into `obj` as plain base64. A secret (a plaintext, a
/// password) comes out of `obj` into the secrets returned, as a flag's secret goes there: a
/// password's string is moved into a `Password`, a plaintext's base64 wiped once decoded, and
/// the member left holding `""`, so that no copy of it is serialized, cloned or dropped unwiped
/// with the object. A member whose flag is given too (in `m`) is left to the flag, which
/// overrides it; a secret one is wiped all the same.
fn json_members(
    verb: &Verb,
    m: &ArgMatches,
    obj: &mut Map<String, Value>,
    binary: args::BinaryFormat,
) -> Result<Vec<(String, Secret)>, CliError> {
    let mut secrets = Vec::new();
    for s in verb.args {
        if !matches!(s.kind, Kind::Blob | Kind::SecretBlob | Kind::Password) {
            continue;
        }
        let secret = s.kind != Kind::Blob;
        let flag_given = m.try_get_one::<String>(s.flag).ok().flatten().is_some();
        let member = s.member_name();
        let Some(Value::String(text)) = obj.get_mut(&member) else {
            continue; // absent, or not a string: to_request names it
        };
        if flag_given {
            if secret {
                zeroize::Zeroize::zeroize(text);
            }
            continue;
        }
        if s.kind == Kind::Password {
            // Moved, not copied: the member keeps an empty string, the password its buffer.
            secrets.push((
                member,
                Secret::Password(Password::new(std::mem::take(text))),
            ));
            continue;
        }
        let read = args::blob_text(text, binary);
        if secret {
            // Wiped whether it read or not.
            zeroize::Zeroize::zeroize(text);
        }
        let bytes = read.map_err(|e| {
            CliError::Param(ParamError {
                flag: format!("--{CLI_INPUT_JSON}"),
                message: format!(
                    "Invalid base64 in member {member}: {}",
                    args::base64_error(&e, secret)
                ),
            })
        })?;
        let value = if secret {
            secrets.push((member.clone(), Secret::Bytes(bytes)));
            Value::String(String::new())
        } else {
            args::base64_value(bytes.expose())
        };
        obj.insert(member, value);
    }
    Ok(secrets)
}

/// `Parameter validation failed` for the members of `--cli-input-json` (`obj`, before any flag
/// is merged in) that the request of `verb` does not have, one line each as botocore words it
/// (`Unknown parameter in input: "X", must be one of: …`), so that a misspelt member is refused
/// instead of silently dropped. The request's members are the verb's flags', those its
/// request type decodes, and those AWS defines that kmscks refuses by name
/// ([`kmscks::protocol::aws_json::request_members`]; a value other than AWS's default is
/// refused by `to_request`, as the endpoint refuses it).
fn check_unknown(verb: &Verb, op: Op, obj: &Map<String, Value>) -> Result<(), CliError> {
    if obj.is_empty() {
        return Ok(());
    }
    let mut members: Vec<String> = verb.args.iter().map(ArgSpec::member_name).collect();
    let (decoded, refused) = aws_json::request_members(op);
    for &m in decoded.iter().chain(&refused) {
        if !members.iter().any(|known| known == m) {
            members.push(m.to_owned());
        }
    }
    let unknown: Vec<String> = obj
        .keys()
        .filter(|k| !members.contains(k))
        .map(|k| {
            format!(
                "Unknown parameter in input: \"{k}\", must be one of: {}",
                members.join(", ")
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(CliError::Validation(unknown.join("\n")))
    }
}

/// `Parameter validation failed` for the integer members of the request (`obj`) under the
/// least value AWS's model allows them, one line each as botocore words it (`Invalid value for
/// parameter NumberOfBytes, value: -5, valid min value: 1`): the AWS CLI refuses them before it
/// sends the request (exit 252), and leaves a value over the largest to the service.
fn check_minimums(op: Op, obj: &Map<String, Value>) -> Result<(), CliError> {
    let under: Vec<String> = obj
        .iter()
        .filter_map(|(member, value)| {
            let min = aws_json::member_min(op, member)?;
            let under = match (value.as_i64(), value.as_u64()) {
                (Some(v), _) => v < 0 || (v as u64) < min,
                (None, Some(v)) => v < min,
                (None, None) => false,
            };
            under.then(|| {
                format!(
                    "Invalid value for parameter {member}, value: {value}, valid min value: {min}"
                )
            })
        })
        .collect();
    if under.is_empty() {
        Ok(())
    } else {
        Err(CliError::Validation(under.join("\n")))
    }
}

/// `Parameter validation failed` for the required members the request lacks (the flags are
/// not required by the parser when the request comes from `--cli-input-json`).
fn check_required(verb: &Verb, input: &Input) -> Result<(), CliError> {
    let missing: Vec<String> = verb
        .args
        .iter()
        .filter(|s| s.required && !input.obj.contains_key(&s.member_name()))
        .map(|s| {
            format!(
                "Missing required parameter in input: \"{}\"",
                s.member_name()
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CliError::Validation(missing.join("\n")))
    }
}

/// The typed request of `op` from its object, the secrets put in afterwards; `operation`
/// names the operation in a service error. The object is taken, not borrowed: what secrets
/// it may still hold (a batch's `Items`, plaintexts among them) are read from it in place,
/// never cloned, and its strings and the JSON text checked for refused members are wiped when
/// dropped.
fn to_request(
    operation: &str,
    op: Op,
    obj: Map<String, Value>,
    secrets: Vec<(String, Secret)>,
) -> Result<Request, CliError> {
    // A member AWS defines and kmscks does not honour is refused as the endpoint refuses it.
    let body = wiping_json(|w| serde_json::to_writer(w, &obj).map_err(std::io::Error::from))
        .map_err(|e| CliError::Other(e.to_string()))?;
    aws_json::check_members(op, &body).map_err(|error| CliError::Service {
        operation: operation.to_owned(),
        error,
    })?;
    let tagged = WipedOnDrop(Value::Object(Map::from_iter([(
        op.name().to_owned(),
        Value::Object(obj),
    )])));
    let inner = &tagged.0[op.name()];
    let result = <Request as serde::Deserialize>::deserialize(&tagged.0);
    let mut request = result.map_err(|e| {
        // A value its enum lacks, or an integer over its type (`--limit 5000000000`; one under
        // its model's least was refused before, `check_minimums`): what the service answers
        // for it (the AWS CLI leaves enums and largest values to the service), without the
        // round trip a typed request cannot make.
        match aws_json::member_error(op, inner, None, &e) {
            // The endpoint's own refusal of the same body names the member from where the
            // text writes the value; a parsed object only says which members hold it.
            Some(error) => CliError::Service {
                operation: operation.to_owned(),
                error: aws_json::decode_request(aws_json::Target::Op(op), &body)
                    .err()
                    .filter(|named| named.kind() == error.kind())
                    .unwrap_or(error),
            },
            None => CliError::Validation(match inner {
                Value::Object(obj) => invalid_input(op, obj, &e),
                _ => unreachable!("`inner` is the object just put under the operation's name"),
            }),
        }
    })?;
    drop(body);
    for (member, secret) in secrets {
        put_secret(&mut request, &member, secret)?;
    }
    Ok(request)
}

/// A JSON value whose strings are wiped when it is dropped: a request object, which may hold
/// secrets (a batch's `Items`, with their plaintexts' base64).
struct WipedOnDrop(Value);

impl Drop for WipedOnDrop {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => zeroize::Zeroize::zeroize(s),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(members) => members.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

/// The JSON text `write` writes, written once into a buffer of its exact size (measured by a
/// first, counting pass), so that no outgrown copy is freed unwiped, and wiped when dropped:
/// the text holds what a request object holds, a secret among it.
fn wiping_json(
    write: impl Fn(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
    /// Counts what is written to it.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    write(&mut count)?;
    let mut text = zeroize::Zeroizing::new(Vec::with_capacity(count.0));
    write(&mut *text)?;
    Ok(text)
}

/// What is wrong with the request object `obj` that serde refused (`e`, reading it as `op`'s
/// request): the member and what its type should be, never its value, which may be a secret
/// (serde's message for a numeric `KeyStorePassword` quotes the number). A missing member is
/// named as serde names it.
fn invalid_input(op: Op, obj: &Map<String, Value>, e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field `") {
        return format!("Invalid input for {}: {text}", op.name());
    }
    // What the type's deserializer expects is the end of serde's message, after the value.
    let expected = text.rsplit_once(", expected ").map(|(_, x)| x);
    match (member_at_fault(op, obj), expected) {
        (Some(member), Some(x)) => format!("Invalid value for parameter {member}: expected {x}"),
        // A member no verb takes a secret in: the type's own message, which says what is
        // wrong (a time that does not parse, say).
        (Some(member), None) if !holds_secrets(member) => {
            format!("Invalid value for parameter {member}: {text}")
        }
        (Some(member), None) => format!("Invalid value for parameter {member}"),
        (None, _) => format!(
            "Invalid input for {}: a value of the wrong type or form",
            op.name()
        ),
    }
}

/// Whether some verb takes a secret (a password, a plaintext) in the member `member`: a
/// secret's own member, or the batch verbs' `Items` ([`kms::ITEMS`]), JSON requests holding
/// plaintexts, which serde's message for a bad one quotes from (a base64 error names the
/// character and its offset).
fn holds_secrets(member: &str) -> bool {
    member == kms::ITEMS.member_name()
        || verbs().iter().flat_map(|v| v.args.iter()).any(|s| {
            matches!(s.kind, Kind::Password | Kind::SecretBlob) && s.member_name() == member
        })
}

/// The member of `obj` that `op`'s request cannot take, found by reading `obj` again as text
/// with each member on a line of its own, so that serde's error line is the member's. The text
/// holds what `obj` holds (a `--cli-input-json` secret among it): it is written by
/// [`wiping_json`].
fn member_at_fault(op: Op, obj: &Map<String, Value>) -> Option<&str> {
    // `{"Op":{` on line 1, then member i on line i + 2.
    let text = wiping_json(|w| {
        write!(w, "{{\"{}\":{{", op.name())?;
        for (i, (k, v)) in obj.iter().enumerate() {
            w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut *w, k)?;
            w.write_all(b":")?;
            serde_json::to_writer(&mut *w, v)?;
        }
        w.write_all(b"\n}}")
    })
    .ok()?;
    let line = serde_json::from_slice::<Request>(&text).err()?.line();
    obj.keys().nth(line.checked_sub(2)?).map(String::as_str)
}

fn put_secret(req: &mut Request, member: &str, secret: Secret) -> Result<(), CliError> {
    match (req, member, secret) {
        (Request::Encrypt(r), "Plaintext", Secret::Bytes(b)) => r.plaintext = b,
        (Request::GenerateMac(r), "Message", Secret::Bytes(b)) => r.message = b,
        (Request::VerifyMac(r), "Message", Secret::Bytes(b)) => r.message = b,
        (Request::Sign(r), "Message", Secret::Bytes(b)) => r.message = b,
        (Request::Verify(r), "Message", Secret::Bytes(b)) => r.message = b,
        (Request::CreateCustomKeyStore(r), "KeyStorePassword", Secret::Password(p)) => {
            r.key_store_password = Some(p)
        }
        (Request::UpdateCustomKeyStore(r), "KeyStorePassword", Secret::Password(p)) => {
            r.key_store_password = Some(p)
        }
        (
            Request::CreateUser(r) | Request::ChangePassword(r) | Request::Login(r),
            "Password",
            Secret::Password(p),
        ) => r.password = p,
        (Request::DeleteKeyObject(r), "Password", Secret::Password(p)) => r.password = p,
        (Request::ActivateCluster(r), "Password", Secret::Password(p)) => r.password = p,
        (req, member, _) => {
            return Err(CliError::Other(format!(
                "internal error: {} has no secret member {member}",
                req.op().name()
            )))
        }
    }
    Ok(())
}

/// The AWS operation an error line names: the refused operation's; for a `cloudhsm` verb the
/// operation its policy action names (so `initialize-cluster`, which sends kmscks's
/// InitializeClusterWithNewCa without `--trust-anchor`, names InitializeCluster, and
/// `tag-resource` TagResource); else the verb's operation.
fn operation_name(verb: &Verb) -> String {
    if let Some(refused) = verb.refused {
        return refused.name().to_owned();
    }
    match verb.op.actions() {
        [action] if verb.path[0] == "cloudhsm" => action
            .as_str()
            .split_once(':')
            .map_or(verb.op.name(), |(_, name)| name)
            .to_owned(),
        _ => verb.op.name().to_owned(),
    }
}

/// Where the CLI sends operations.
pub(crate) enum Target {
    /// In this process, on a data directory; for a `kms` verb, in the Region `--region` names
    /// (a data directory belongs to one Region: another is refused).
    DataDir(PathBuf, Option<String>),
    /// The daemon's socket, and how long a call waits for its answer (`--cli-read-timeout`).
    Socket(PathBuf, Option<Duration>),
    /// An AWS JSON endpoint (`--endpoint-url`), `--region` if given, and how long a call
    /// waits for its answer.
    Http(String, Option<String>, Option<Duration>),
}

impl Target {
    fn from_matches(m: &ArgMatches) -> Target {
        let read_timeout = m
            .get_one::<u64>(CLI_READ_TIMEOUT)
            .filter(|&&s| s > 0)
            .map(|&s| Duration::from_secs(s));
        if let Some(url) = m.get_one::<String>(ENDPOINT_URL) {
            let region = m.get_one::<String>(REGION).cloned();
            return Target::Http(url.clone(), region, read_timeout);
        }
        match m.get_one::<PathBuf>("data-dir") {
            Some(d) => Target::DataDir(
                d.clone(),
                m.subcommand_matches("kms")
                    .and_then(|_| m.get_one::<String>(REGION))
                    .cloned(),
            ),
            None => Target::Socket(
                m.get_one::<PathBuf>("socket")
                    .cloned()
                    .unwrap_or_else(kmscks::client::default_socket),
                read_timeout,
            ),
        }
    }

    /// Opens the backend.
    pub(crate) fn open(&self) -> Result<Box<dyn Backend>, CliError> {
        match self {
            Target::DataDir(dir, region) => {
                let mut config = kmscks::KmsConfig::default();
                if let Some(r) = region {
                    config.scope.region.clone_from(r);
                }
                kmscks::Kms::open_with(dir, config)
                    .map(|k| Box::new(k) as Box<dyn Backend>)
                    .map_err(|e| {
                        CliError::Other(format!(
                            "Cannot open the data directory {}: {} ({})",
                            dir.display(),
                            e.message(),
                            e.aws_name()
                        ))
                    })
            }
            Target::Socket(path, limit) => connect(path, *limit),
            Target::Http(url, region, limit) => {
                http::HttpBackend::new(url, region.as_deref(), *limit)
                    .map(|b| Box::new(b) as Box<dyn Backend>)
                    .map_err(|message| {
                        CliError::Param(ParamError {
                            flag: format!("--{ENDPOINT_URL}"),
                            message,
                        })
                    })
            }
        }
    }
}

fn connect(path: &std::path::Path, limit: Option<Duration>) -> Result<Box<dyn Backend>, CliError> {
    let builder = kmscks::client::Client::builder(path);
    // `Duration::ZERO` is the builder's "no limit".
    builder
        .reply_timeout(limit.unwrap_or_default())
        .connect()
        .map(|c| Box::new(c) as Box<dyn Backend>)
        .map_err(|e| {
            // The library's message names the socket and asks whether kmscksd runs, or says
            // that the daemon there takes no connection (not for a refused daemon: one is
            // running); the CLI adds only its own ways to choose.
            let hint = if e.kind() == kmscks::ErrorKind::UntrustedSocketException {
                ""
            } else {
                ". Choose the daemon's socket with --socket PATH or KMSCKS_SOCKET, or work in \
                 this process with --data-dir DIR"
            };
            CliError::Other(format!(
                "Could not connect to the endpoint: {}{hint}",
                e.message()
            ))
        })
}

fn find_verb(path: &[&str]) -> Option<&'static Verb> {
    verbs().iter().find(|v| v.path == path)
}

/// Runs the command line `argv` (program name first), writing to `out` and `err`; returns the
/// exit code.
pub(crate) fn run<I, T>(argv: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    if let Some(help) = verb_help_asked(&argv) {
        let _ = out.write_all(help.as_bytes());
        return EXIT_OK;
    }
    let mut cmd = command_for(relaxed(&argv));
    let parsed =
        cmd.try_get_matches_from_mut(argv)
            .and_then(|m| match global_conflict(&mut cmd, &m) {
                Some(e) => Err(e),
                None => Ok(m),
            });
    let matches = match parsed {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let code = match e.kind() {
                K::DisplayHelp | K::DisplayVersion => EXIT_OK,
                K::DisplayHelpOnMissingArgumentOrSubcommand => EXIT_USAGE,
                _ => EXIT_USAGE,
            };
            let text = e.render().to_string();
            let _ = if code == EXIT_OK {
                out.write_all(text.as_bytes())
            } else {
                err.write_all(text.as_bytes())
            };
            return code;
        }
    };
    match execute(&matches, out, err) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            // Every error's text ends in its newline, as the AWS CLI writes it: no blank line after.
            let _ = write!(err, "{e}");
            e.exit_code()
        }
    }
}

/// Clap's conflict error for two conflicting global flags given on different levels of the line
/// (`--socket S kms list-keys --data-dir D`): clap checks each level's flags against that
/// level's only, before it hands the globals down to the verb, so such a line would pass with
/// one of the two silently dropped. The conflicts are the ones the flags declare.
fn global_conflict(cmd: &mut Command, m: &ArgMatches) -> Option<clap::Error> {
    let mut leaf = m;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    // At the verb every global is there, wherever it was given.
    let given = |arg: &Arg| {
        let id = arg.get_id().as_str();
        leaf.try_contains_id(id).unwrap_or(false)
            && leaf.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    };
    let conflict = cmd
        .get_arguments()
        .filter(|a| a.is_global_set() && given(a))
        .find_map(|a| {
            cmd.get_arg_conflicts_with(a)
                .into_iter()
                .find(|b| given(b))
                .map(|b| format!("the argument '{a}' cannot be used with '{b}'"))
        })?;
    Some(cmd.error(clap::error::ErrorKind::ArgumentConflict, conflict))
}

/// The help of the verb `argv` names when it holds the word `help` where the AWS CLI reads it
/// as one (a word of its own after the verb, not a flag's value), whatever else it lacks: the
/// verb's required flags need not be given.
fn verb_help_asked(argv: &[OsString]) -> Option<String> {
    if !argv.iter().any(|a| a == HELP_WORD) {
        return None;
    }
    fn all_optional(cmd: Command) -> Command {
        each_subcommand(cmd.mut_args(|a| a.required(false)), all_optional)
    }
    let matches = all_optional(command_for(true))
        .try_get_matches_from(argv)
        .ok()?;
    let mut path = Vec::new();
    let mut m = &matches;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name.to_owned());
        m = sub;
    }
    // Only a verb's leaf has the argument (`try_get_many`: groups lack it); the AWS CLI reads
    // the first word no flag takes as its `help` word.
    let first = m.try_get_many::<String>(HELP_WORD_ID).ok()??.next()?;
    if first == HELP_WORD {
        let mut cmd = command_for(false);
        cmd.build();
        let mut leaf = &mut cmd;
        for name in &path {
            leaf = leaf.find_subcommand_mut(name)?;
        }
        return Some(leaf.render_long_help().to_string());
    }
    None
}

fn execute(m: &ArgMatches, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    if let Some(words) = stray_words(m) {
        return Err(CliError::UnknownOptions(words));
    }
    let format = m
        .get_one::<String>("output")
        .map_or(Ok(Format::Json), |f| Format::parse(f))
        .map_err(|message| {
            CliError::Param(ParamError {
                flag: "--output".into(),
                message,
            })
        })?;
    let io = CliError::output;
    let (group, sub) = m
        .subcommand()
        .ok_or_else(|| CliError::Other("no command given".into()))?;
    match group {
        "completion" => return completion::run(sub, out).map_err(io),
        "bench" => return bench::run(sub, &Target::from_matches(m), format, out, err),
        _ => {}
    }
    // Walk to the leaf verb.
    let mut path = vec![group];
    let mut leaf = sub;
    while let Some((name, next)) = leaf.subcommand() {
        path.push(name);
        leaf = next;
    }
    let query = m
        .get_one::<String>("query")
        .map(|q| query::Query::compile(q))
        .transpose()
        .map_err(|message| {
            CliError::Param(ParamError {
                flag: "--query".into(),
                message,
            })
        })?;
    let print = Printer { format, query };
    if let ("cloudhsm", Some(("audit", audit_m))) = (group, sub.subcommand()) {
        return audit::run(audit_m, &Target::from_matches(m), &print, out);
    }
    let verb = match (find_verb(&path), fault::kind(&path)) {
        (Some(verb), _) => verb,
        (None, Some(kind)) => {
            let request = fault::request(kind, leaf)?;
            let operation = request.op().name().to_owned();
            let backend = Target::from_matches(m).open()?;
            return match backend.call(&request) {
                Ok(resp) => print.one(Node::of_response(&resp), out),
                Err(error) => Err(CliError::Service { operation, error }),
            };
        }
        (None, None) => {
            return Err(CliError::Other(format!(
                "unknown command {}",
                path.join(" ")
            )))
        }
    };
    if let Some(kind) = leaf.get_one::<String>(SKELETON) {
        return match kind.as_str() {
            "input" => print_skeleton(verb, out).map_err(io),
            other => Err(CliError::Param(ParamError {
                flag: format!("--{SKELETON}"),
                message: format!(
                    "kmscks prints the input skeleton only (--{SKELETON} input), not {other:?}"
                ),
            })),
        };
    }
    let input = request_input(verb, leaf)?;
    check_required(verb, &input)?;
    check_minimums(input.op, &input.obj)?;
    let operation = operation_name(verb);
    let service = |error: KmsError| {
        if error.is_transport() {
            // The request did not reach the service, or its answer did not come within
            // --cli-read-timeout (the AWS CLI exits 255 then too).
            CliError::Other(error.message().to_owned())
        } else {
            CliError::Service {
                operation: operation.clone(),
                error,
            }
        }
    };
    let paging = paging_of(verb, &input, m, leaf)?;
    let Input { op, obj, secrets } = input;
    match paging {
        None => {
            let request = to_request(&operation, op, obj, secrets)?;
            let backend = Target::from_matches(m).open()?;
            let resp = backend.call(&request).map_err(service)?;
            print.one(Node::of_response(&resp), out)
        }
        Some((paging, opts)) => {
            // A paged (list) verb takes no secret: its object is cloned for each page.
            to_request(&operation, op, obj.clone(), Vec::new())?;
            let backend = Target::from_matches(m).open()?;
            let mut call = |obj: &Map<String, Value>| {
                let request = to_request(&operation, op, obj.clone(), Vec::new())?;
                let resp = backend.call(&request).map_err(service)?;
                Ok(Node::of_response(&resp))
            };
            let pages = paginate::run(paging, &opts, obj, &mut call, |t| {
                CliError::Other(format!("The same next token was received twice: {t}"))
            })?;
            print.pages(pages, out)
        }
    }
}

/// Whether (and how) `verb` pages on this command line: as the AWS CLI, not with
/// `--no-paginate` or when the operation's own paging members are given; the paging flags
/// together with either are refused.
fn paging_of(
    verb: &Verb,
    input: &Input,
    m: &ArgMatches,
    leaf: &ArgMatches,
) -> Result<Option<(paginate::Paging, paginate::Options)>, CliError> {
    let Some(paging) = paginate::of(verb.args) else {
        return Ok(None);
    };
    let opts = paginate::Options {
        max_items: leaf.get_one::<u64>("max-items").copied(),
        starting_token: leaf.get_one::<String>("starting-token").cloned(),
        page_size: leaf.get_one::<u64>("page-size").copied(),
    };
    let manual = paging
        .own_members()
        .iter()
        .any(|member| input.obj.contains_key(*member));
    if !m.get_flag("no-paginate") && !manual {
        return Ok(Some((paging, opts)));
    }
    let used: Vec<&str> = paginate::FLAGS
        .iter()
        .map(|(flag, _)| *flag)
        .filter(|flag| leaf.contains_id(flag) && leaf.value_source(flag).is_some())
        .collect();
    if used.is_empty() {
        return Ok(None);
    }
    Err(CliError::Other(format!(
        "Cannot specify --no-paginate along with pagination arguments: {}",
        used.iter()
            .map(|f| format!("--{f}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Prints answers as `--output` and `--query` ask.
struct Printer {
    format: Format,
    query: Option<query::Query>,
}

impl Printer {
    /// What `--query` selects of `node` (all of it without one). A query that fails on the
    /// answer (a function given a value of the wrong type) is reported as the query's error,
    /// not as one of writing the output.
    fn queried(&self, node: Node) -> Result<Node, CliError> {
        match &self.query {
            None => Ok(node),
            Some(q) => {
                let mut answer = node;
                let result = q.apply(&answer).map_err(CliError::Other);
                zeroize::Zeroize::zeroize(&mut answer);
                result
            }
        }
    }

    /// One answer.
    fn one(&self, node: Node, out: &mut dyn Write) -> Result<(), CliError> {
        let mut node = self.queried(node)?;
        let done = output::print(&node, self.format, out).map_err(CliError::output);
        zeroize::Zeroize::zeroize(&mut node);
        done
    }

    /// Pages: merged for JSON; page by page for text, then the token to resume from, as the
    /// AWS CLI's text formatter does (the query applies to each).
    fn pages(&self, pages: paginate::Pages, out: &mut dyn Write) -> Result<(), CliError> {
        if self.format == Format::Json {
            return self.one(pages.merged(), out);
        }
        for page in pages.pages {
            self.one(page, out)?;
        }
        if let Some(token) = pages.resume_token {
            let inner = Node::Object(vec![("NextToken".into(), Node::String(token))]);
            self.one(Node::Object(vec![("NextToken".into(), inner)]), out)?;
        }
        Ok(())
    }
}

/// `--generate-cli-skeleton`: the request's members with placeholder values, as JSON.
fn print_skeleton(verb: &Verb, out: &mut dyn Write) -> std::io::Result<()> {
    output::print(&skeleton::input(verb.args), Format::Json, out)
}

/// The `kmscks` binary's entry point.
pub(crate) fn main() -> std::process::ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = run(std::env::args_os(), &mut stdout.lock(), &mut stderr.lock());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(255))
}

#[cfg(test)]
mod tests;
