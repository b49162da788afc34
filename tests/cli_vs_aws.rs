//! `kmscks kms …` against `aws kms …` on the same calls to one daemon: the aws CLI through
//! the HTTP endpoint, kmscks through the same endpoint (`--endpoint-url`) and through the
//! socket. Where the answer is the same for every caller (describe-key, lists, paging tokens,
//! errors, `--query`, `--output text`) the printed bytes must be equal; where it cannot be
//! (a new key, a ciphertext) the printed JSON must have the same shape: the same lines with
//! the same member names in the same order, the same types, timestamps in the same form.
//!
//! Why: "as exact as `aws kms`" is only checkable against `aws` itself. The installed aws CLI
//! may be v1 (pip's `awscli`) or v2: the test sets `cli_timestamp_format = iso8601` and TZ=UTC
//! so both print timestamps as v2 does, and accepts v1's exit code for service errors (255,
//! where v2 and kmscks exit 254). Skips with a printed reason when `aws` is absent.

mod http_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One way of running a command line, and what it printed.
struct Run {
    code: i32,
    out: String,
    err: String,
}

fn run(mut c: Command) -> Run {
    let o = c.output().expect("the command runs");
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The three callers of one daemon.
struct Callers {
    addr: SocketAddr,
    socket: PathBuf,
    home: PathBuf,
}

impl Callers {
    fn aws(&self, args: &[&str]) -> Run {
        let mut c = Command::new("aws");
        c.args(args)
            .arg("--endpoint-url")
            .arg(format!("http://{}", self.addr))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.home.join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.join("aws-credentials"),
            )
            .env("AWS_PAGER", "")
            .env("TZ", "UTC")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        run(c)
    }

    fn kmscks_http(&self, args: &[&str]) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmscks"));
        // Signed as aws signs: with the daemon's default root access key.
        c.args(args)
            .arg("--endpoint-url")
            .arg(format!("http://{}", self.addr))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_REGION");
        run(c)
    }

    fn kmscks_socket(&self, args: &[&str]) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmscks"));
        c.args(args).arg("--socket").arg(&self.socket);
        run(c)
    }

    /// The three runs of `args`: aws first.
    fn all(&self, args: &[&str]) -> [Run; 3] {
        [
            self.aws(args),
            self.kmscks_http(args),
            self.kmscks_socket(args),
        ]
    }
}

fn aws_installed() -> bool {
    let ok = Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: the aws CLI is not installed (pip install awscli)");
    }
    ok
}

fn start(dir: &Path) -> (http_support::Daemon, Callers) {
    let (daemon, addr) = http_support::start(dir, &["--bootstrap"]);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // AWS CLI v1 prints epoch seconds unless told; v2 prints ISO 8601 by default.
    std::fs::write(
        home.join("aws-config"),
        "[default]\ncli_timestamp_format = iso8601\n",
    )
    .unwrap();
    let callers = Callers {
        addr,
        socket: dir.join("kmscks.sock"),
        home,
    };
    (daemon, callers)
}

/// Whether `s` is a timestamp as AWS CLI v2 prints it.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    (b.len() == 25 || b.len() == 32)
        && digits(0..4)
        && b[4] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && s.ends_with("+00:00")
        && (b.len() == 25 || (b[19] == b'.' && digits(20..26)))
}

/// The shape of pretty-printed JSON: each line with its member name kept and its value
/// replaced by its type (`"<string>"`, `"<timestamp>"`, `0` for numbers; `true`, `false`,
/// `null` and brackets as they are).
fn shape(json: &str) -> String {
    let mut out = String::new();
    for line in json.lines() {
        let body = line.trim_start();
        out.push_str(&line[..line.len() - body.len()]);
        let mut rest = body;
        if let Some((key, after)) = string_at(rest) {
            if let Some(value) = after.strip_prefix(": ") {
                out.push_str(key);
                out.push_str(": ");
                rest = value;
            }
        }
        let (value, comma) = match rest.strip_suffix(',') {
            Some(v) => (v, ","),
            None => (rest, ""),
        };
        let typed = match value.as_bytes().first() {
            Some(b'"') => {
                if is_timestamp(&value[1..value.len() - 1]) {
                    "\"<timestamp>\""
                } else {
                    "\"<string>\""
                }
            }
            Some(b'-' | b'0'..=b'9') => "0",
            _ => value,
        };
        out.push_str(typed);
        out.push_str(comma);
        out.push('\n');
    }
    out
}

/// The JSON string literal at the start of `s` (with its quotes), and what follows it.
fn string_at(s: &str) -> Option<(&str, &str)> {
    if !s.starts_with('"') {
        return None;
    }
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some((&s[..=i], &s[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

/// Every caller succeeded and printed the same bytes.
fn same_output(c: &Callers, args: &[&str]) -> String {
    let [aws, http, socket] = c.all(args);
    assert_eq!(aws.code, 0, "aws {args:?}: {}", aws.err);
    assert_eq!(http.code, 0, "kmscks --endpoint-url {args:?}: {}", http.err);
    assert_eq!(socket.code, 0, "kmscks --socket {args:?}: {}", socket.err);
    assert_eq!(http.out, aws.out, "kmscks --endpoint-url vs aws: {args:?}");
    assert_eq!(socket.out, aws.out, "kmscks --socket vs aws: {args:?}");
    aws.out
}

/// Every caller succeeded and printed JSON of the same shape.
fn same_shape(c: &Callers, args: &[&str]) {
    let [aws, http, socket] = c.all(args);
    assert_eq!(aws.code, 0, "aws {args:?}: {}", aws.err);
    assert_eq!(http.code, 0, "kmscks --endpoint-url {args:?}: {}", http.err);
    assert_eq!(socket.code, 0, "kmscks --socket {args:?}: {}", socket.err);
    let want = shape(&aws.out);
    assert_eq!(
        shape(&http.out),
        want,
        "kmscks --endpoint-url vs aws: {args:?}\n{}",
        aws.out
    );
    assert_eq!(
        shape(&socket.out),
        want,
        "kmscks --socket vs aws: {args:?}\n{}",
        aws.out
    );
}

/// Every caller refused `args` with the same message, opening with `opening`: kmscks exiting
/// `code` (AWS CLI v2's), the aws CLI `code` or 255 (v1 exits 255 for both kinds). Returns the
/// message.
fn same_refusal(c: &Callers, args: &[&str], code: i32, opening: &str) -> String {
    let [aws, http, socket] = c.all(args);
    assert!(
        aws.code == code || aws.code == 255,
        "aws {args:?}: {} {}{}",
        aws.code,
        aws.out,
        aws.err
    );
    let message = aws.err.trim().to_owned();
    assert!(message.starts_with(opening), "aws {args:?}: {message}");
    for (who, r) in [("--endpoint-url", http), ("--socket", socket)] {
        assert_eq!(r.code, code, "kmscks {who} {args:?}: {}", r.err);
        assert_eq!(r.err.trim(), message, "kmscks {who} vs aws: {args:?}");
    }
    message
}

/// Every caller failed with the same service error line (kmscks exits 254).
fn same_error(c: &Callers, args: &[&str]) -> String {
    same_refusal(c, args, 254, "An error occurred (")
}

/// Every caller refused the call before sending it, in botocore's words (kmscks exits 252).
fn same_parameter_error(c: &Callers, args: &[&str]) {
    same_refusal(c, args, 252, "Parameter validation failed:");
}

#[test]
fn kmscks_prints_what_aws_prints_for_the_same_calls() {
    if !aws_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, c) = start(dir.path());

    // Answers that change the state: the same shape.
    same_shape(&c, &["kms", "create-key", "--description", "compared"]);
    same_shape(
        &c,
        &[
            "kms",
            "encrypt",
            "--key-id",
            "alias/demo",
            "--plaintext",
            "aGVsbG8=",
        ],
    );
    same_shape(
        &c,
        &[
            "kms",
            "generate-data-key",
            "--key-id",
            "alias/demo",
            "--key-spec",
            "AES_256",
        ],
    );
    same_shape(&c, &["kms", "generate-random", "--number-of-bytes", "16"]);
    // Data key pairs: under a key of the default key store (alias/demo is in a custom key
    // store, which refuses them).
    let symmetric = c.kmscks_socket(&[
        "kms",
        "create-key",
        "--query",
        "KeyMetadata.KeyId",
        "--output",
        "text",
    ]);
    let symmetric = symmetric.out.trim();
    for verb in [
        "generate-data-key-pair",
        "generate-data-key-pair-without-plaintext",
    ] {
        same_shape(
            &c,
            &[
                "kms",
                verb,
                "--key-id",
                symmetric,
                "--key-pair-spec",
                "ECC_NIST_P256",
                "--encryption-context",
                "purpose=pairs",
            ],
        );
    }
    for (key, spec) in [(symmetric, "SM2"), ("alias/demo", "ECC_NIST_P256")] {
        same_error(
            &c,
            &[
                "kms",
                "generate-data-key-pair",
                "--key-id",
                key,
                "--key-pair-spec",
                spec,
            ],
        );
    }
    same_shape(&c, &["kms", "create-key", "--origin", "EXTERNAL"]);
    let external = c.kmscks_socket(&[
        "kms",
        "create-key",
        "--origin",
        "EXTERNAL",
        "--query",
        "KeyMetadata.KeyId",
        "--output",
        "text",
    ]);
    let external = external.out.trim();
    same_shape(
        &c,
        &[
            "kms",
            "get-parameters-for-import",
            "--key-id",
            external,
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_256",
            "--wrapping-key-spec",
            "RSA_2048",
        ],
    );
    same_output(&c, &["kms", "describe-key", "--key-id", external]);
    // HMAC and signing keys: the answers' shapes, a public key's bytes, a MAC that does not
    // verify. (Blob flags are compared by shape: aws CLI v1 sends their text as the bytes.)
    let made = |spec: &str, usage: &str| {
        c.kmscks_socket(&[
            "kms",
            "create-key",
            "--key-spec",
            spec,
            "--key-usage",
            usage,
            "--query",
            "KeyMetadata.KeyId",
            "--output",
            "text",
        ])
        .out
        .trim()
        .to_owned()
    };
    same_shape(
        &c,
        &[
            "kms",
            "create-key",
            "--key-spec",
            "HMAC_256",
            "--key-usage",
            "GENERATE_VERIFY_MAC",
        ],
    );
    let hmac = made("HMAC_256", "GENERATE_VERIFY_MAC");
    let mac_args = ["--mac-algorithm", "HMAC_SHA_256", "--message", "aGVsbG8="];
    same_shape(
        &c,
        &[&["kms", "generate-mac", "--key-id", &hmac][..], &mac_args].concat(),
    );
    let e = same_error(
        &c,
        &[
            &["kms", "verify-mac", "--key-id", &hmac][..],
            &mac_args,
            &["--mac", "AAAA"],
        ]
        .concat(),
    );
    assert!(e.contains("KMSInvalidMacException"), "{e}");
    let signing = made("ECC_NIST_P256", "SIGN_VERIFY");
    same_output(&c, &["kms", "get-public-key", "--key-id", &signing]);
    same_shape(
        &c,
        &[
            "kms",
            "sign",
            "--key-id",
            &signing,
            "--message",
            "aGVsbG8=",
            "--signing-algorithm",
            "ECDSA_SHA_256",
        ],
    );
    let e = same_error(
        &c,
        &[
            "kms",
            "import-key-material",
            "--key-id",
            external,
            "--import-token",
            "AAAA",
            "--encrypted-key-material",
            "AAAA",
            "--expiration-model",
            "KEY_MATERIAL_DOES_NOT_EXPIRE",
        ],
    );
    assert!(e.contains("InvalidImportTokenException"), "{e}");

    // Answers the same for every caller: the same bytes.
    let id = c.kmscks_socket(&[
        "kms",
        "describe-key",
        "--key-id",
        "alias/demo",
        "--query",
        "KeyMetadata.KeyId",
        "--output",
        "text",
    ]);
    let id = id.out.trim();
    // (AWS takes no alias for these.)
    same_output(&c, &["kms", "list-resource-tags", "--key-id", id]);
    same_output(&c, &["kms", "list-key-policies", "--key-id", id]);
    same_output(
        &c,
        &[
            "kms",
            "get-key-policy",
            "--key-id",
            id,
            "--policy-name",
            "default",
        ],
    );
    same_error(&c, &["kms", "get-key-rotation-status", "--key-id", id]);
    for args in [
        &["kms", "describe-key", "--key-id", "alias/demo"][..],
        &["kms", "list-keys"],
        &["kms", "list-keys", "--page-size", "1"],
        &["kms", "list-keys", "--max-items", "1"],
        &["kms", "list-keys", "--no-paginate"],
        &["kms", "list-aliases"],
        &["kms", "list-aliases", "--no-paginate", "--limit", "1"],
        &["kms", "describe-custom-key-stores"],
        &[
            "kms",
            "describe-key",
            "--key-id",
            "alias/demo",
            "--output",
            "text",
        ],
        &["kms", "list-keys", "--output", "text", "--page-size", "1"],
        &["kms", "list-keys", "--output", "text", "--max-items", "1"],
        &["kms", "describe-custom-key-stores", "--output", "text"],
        &[
            "kms",
            "describe-key",
            "--key-id",
            "alias/demo",
            "--query",
            "KeyMetadata.[KeyId,CreationDate]",
        ],
        &[
            "kms",
            "describe-key",
            "--key-id",
            "alias/demo",
            "--query",
            "KeyMetadata",
            "--output",
            "text",
        ],
        &[
            "kms",
            "list-keys",
            "--query",
            "Keys[].KeyArn",
            "--output",
            "text",
        ],
        &[
            "kms",
            "list-aliases",
            "--query",
            "Aliases[?AliasName=='alias/demo']",
        ],
    ] {
        same_output(&c, args);
    }
    // A NextToken of one resumes in the other.
    let listed = same_output(&c, &["kms", "list-keys", "--max-items", "1"]);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let token = v["NextToken"].as_str().expect("two keys, one printed");
    same_output(&c, &["kms", "list-keys", "--starting-token", token]);

    // An integer under its member's least value: refused before it is sent, in botocore's words.
    same_parameter_error(&c, &["kms", "generate-random", "--number-of-bytes", "-5"]);
    same_parameter_error(&c, &["kms", "list-keys", "--limit", "0"]);

    // Service errors: the same line.
    same_error(&c, &["kms", "describe-key", "--key-id", "alias/none"]);
    same_error(
        &c,
        &[
            "kms",
            "generate-data-key",
            "--key-id",
            "alias/demo",
            "--key-spec",
            "AES_512",
        ],
    );
    let refused = same_error(
        &c,
        &[
            "kms",
            "sign",
            "--key-id",
            "alias/demo",
            "--message",
            "aGVsbG8=",
            "--message-type",
            "RAW",
            "--signing-algorithm",
            "RSASSA_PSS_SHA_256",
            "--grant-tokens",
            "token",
        ],
    );
    assert!(
        refused.contains("when calling the Sign operation"),
        "{refused}"
    );
}

/// The kms verbs both CLIs have.
fn shared_verbs() -> Vec<String> {
    let help = Command::new(env!("CARGO_BIN_EXE_kmscks"))
        .args(["kms", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    text.lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| v.contains('-') || v.chars().all(|c| c.is_ascii_lowercase()))
        .filter(|v| *v != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_verb_takes_the_members_aws_takes_in_its_skeleton() {
    if !aws_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut compared = 0;
    for verb in shared_verbs() {
        let mut aws = Command::new("aws");
        aws.args(["kms", &verb, "--generate-cli-skeleton"])
            .env("AWS_CONFIG_FILE", home.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let aws = run(aws);
        if aws.code != 0 {
            continue; // kmscks's own verbs (wait-for-connection, lookup-events, batches)
        }
        let mut ours = Command::new(env!("CARGO_BIN_EXE_kmscks"));
        ours.args(["kms", &verb, "--generate-cli-skeleton"]);
        let ours = run(ours);
        assert_eq!(ours.code, 0, "kms {verb}: {}", ours.err);
        // The members, not their order: the skeleton lists kmscks's flags in its own order.
        let members = |json: &str| -> Vec<String> {
            let mut m: Vec<String> = json
                .lines()
                .filter(|l| l.starts_with("    \"") && !l.starts_with("     "))
                .filter_map(|l| string_at(l.trim_start()).map(|(k, _)| k.to_owned()))
                .collect();
            m.sort();
            m
        };
        assert_eq!(members(&ours.out), members(&aws.out), "kms {verb}");
        compared += 1;
    }
    assert!(compared >= 30, "only {compared} verbs compared");
}

#[test]
fn shape_keeps_names_and_types_and_drops_values() {
    let json = "{\n    \"Keys\": [\n        {\n            \"KeyId\": \"a\\\"b\",\n            \"N\": 12\n        }\n    ],\n    \"T\": \"2026-12-03T07:10:24.123000+00:00\",\n    \"U\": \"2026-12-03T07:10:24+00:00\",\n    \"B\": false\n}\n";
    assert_eq!(
        shape(json),
        "{\n    \"Keys\": [\n        {\n            \"KeyId\": \"<string>\",\n            \"N\": 0\n        }\n    ],\n    \"T\": \"<timestamp>\",\n    \"U\": \"<timestamp>\",\n    \"B\": false\n}\n"
    );
}

/// `kmscks kms <args> --endpoint-url` with `env`.
fn kmscks_env(addr: SocketAddr, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmscks"));
    c.args(args)
        .arg("--endpoint-url")
        .arg(format!("http://{addr}"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .envs(env.iter().copied());
    run(c)
}

#[test]
fn with_credentials_in_the_environment_kmscks_signs_and_a_verifying_daemon_answers_as_aws() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("http-credentials");
    std::fs::write(&creds, "AKIDCLI cli-secret root\n").unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_daemon, addr) = http_support::start(
        dir.path(),
        &["--bootstrap", "--http-credentials", creds.to_str().unwrap()],
    );
    let good = [
        ("AWS_ACCESS_KEY_ID", "AKIDCLI"),
        ("AWS_SECRET_ACCESS_KEY", "cli-secret"),
    ];
    let list = ["kms", "list-keys", "--query", "length(Keys)"];
    let r = kmscks_env(addr, &good, &list);
    assert_eq!((r.code, r.out.as_str()), (0, "1\n"), "{}", r.err);
    // CloudHSM's operations are signed for its service.
    let r = kmscks_env(
        addr,
        &good,
        &[
            "cloudhsm",
            "describe-clusters",
            "--query",
            "length(Clusters)",
        ],
    );
    assert_eq!((r.code, r.out.as_str()), (0, "1\n"), "{}", r.err);
    /// The environment, the flags added, what the error says.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case<'_>; 4] = [
        (&[], &[], "MissingAuthenticationTokenException"),
        (
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDCLI"),
                ("AWS_SECRET_ACCESS_KEY", "wrong"),
            ],
            &[],
            "InvalidSignatureException",
        ),
        (
            &good,
            &["--region", "us-west-2"],
            "Credential should be scoped to a valid region, not 'us-west-2'",
        ),
        (
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDCLI"),
                ("AWS_SECRET_ACCESS_KEY", "cli-secret"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ],
            &[],
            "not 'eu-west-1'",
        ),
    ];
    for (env, extra, expected) in cases {
        let mut args = list.to_vec();
        args.extend(extra);
        let r = kmscks_env(addr, env, &args);
        assert_eq!(r.code, 254, "{env:?} {extra:?}: {}", r.err);
        assert!(r.err.contains(expected), "{env:?} {extra:?}: {}", r.err);
    }
}
