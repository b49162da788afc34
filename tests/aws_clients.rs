//! AWS's own clients against `kmscksd --http`: boto3 and the `aws` CLI walk the four steps of a
//! custom key store (cluster with a CSR signed by the test's own CA, store, connection, key)
//! and use the key; boto3 generates and verifies MACs with HMAC keys, signs with RSA and ECC
//! keys, encrypts with RSA keys and derives ECDH shared secrets (Python's `cryptography`
//! checking each independently); the AWS Encryption SDK for Python encrypts and decrypts
//! through kmscks.
//!
//! Why these beyond `tests/http.rs`: a real client holds kmscks to AWS's published service
//! models — member names, timestamps, base64, error shapes and exception classes — where a
//! raw-TCP test only holds it to what its author believed. The Python side also checks every
//! raw answer against botocore's model (`tests/aws_clients/shape_check.py`).
//!
//! Each test needs a tool that may be absent (python3 with boto3, `aws`, the Encryption SDK, a
//! way to sign a CSR): it skips with a printed reason then. A script says "skip" by exiting
//! with [`SKIP`] and the reason on stderr.

mod http_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use http_support::start;

/// The exit status with which a script says it cannot run here (the reason on stderr).
const SKIP: i32 = 3;

/// The daemon's credentials for the tests that verify signatures: one root key.
const ACCESS_KEY: &str = "AKIDCLIENTS";
const SECRET_KEY: &str = "clients-secret";
/// A second key, the IAM user `app` of the account, which the scripts give grants to (the
/// boto3 script signs with it by these literal values).
const APP_CREDENTIALS: &str = "AKIDAPP app-secret arn:aws:iam::111122223333:user/app";

/// How long a cluster stays in each passing state: long enough that the clients must poll
/// describe-clusters as on AWS, short enough not to slow the suite.
const TRANSITION_MS: &str = "150";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/aws_clients")
        .join(name)
}

/// Whether `python3 -c "import <module>"` works; if not, says the test is skipped.
fn python_has(module: &str, package: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: python3 with {module} is not installed (pip install {package})");
    }
    ok
}

/// Starts a daemon verifying signatures against [`ACCESS_KEY`], with clusters passing through
/// their in-progress states, and `extra` options.
fn daemon(dir: &Path, extra: &[&str]) -> (http_support::Daemon, SocketAddr) {
    use std::os::unix::fs::PermissionsExt;
    let creds = dir.join("http-credentials");
    std::fs::write(
        &creds,
        format!("{ACCESS_KEY} {SECRET_KEY} root\n{APP_CREDENTIALS}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let creds = creds.display().to_string();
    let mut args = vec![
        "--http-credentials",
        &creds,
        "--cluster-transition-ms",
        TRANSITION_MS,
    ];
    args.extend_from_slice(extra);
    start(dir, &args)
}

/// Runs `program args… <endpoint>` with the daemon's credentials and Region in the
/// environment (and no AWS configuration of the machine's user); returns whether it ran,
/// asserting that it passed.
fn run_client(mut command: Command, addr: SocketAddr, home: &Path) -> bool {
    let out: Output = command
        .arg(format!("http://{addr}"))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(SKIP) {
        eprintln!("skipped: {}", stderr.trim());
        return false;
    }
    assert!(
        out.status.success(),
        "{command:?} failed:\n{stdout}{stderr}"
    );
    print!("{stdout}");
    true
}

#[test]
fn boto3_walks_the_four_steps_of_a_custom_key_store_and_uses_its_key() {
    if !python_has("boto3", "boto3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    let mut python = Command::new("python3");
    python.arg(script("boto3_custom_key_store.py"));
    run_client(python, addr, dir.path());
}

#[test]
fn boto3_creates_hmac_keys_and_generates_and_verifies_macs() {
    if !python_has("boto3", "boto3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    let mut python = Command::new("python3");
    python.arg(script("boto3_hmac.py"));
    run_client(python, addr, dir.path());
}

#[test]
fn boto3_signs_with_rsa_and_ecc_keys_and_cryptography_verifies() {
    if !python_has("boto3", "boto3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    let mut python = Command::new("python3");
    python.arg(script("boto3_signing.py"));
    run_client(python, addr, dir.path());
}

#[test]
fn boto3_encrypts_with_rsa_keys_and_derives_shared_secrets_and_cryptography_agrees() {
    if !python_has("boto3", "boto3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    let mut python = Command::new("python3");
    python.arg(script("boto3_asymmetric_encryption.py"));
    run_client(python, addr, dir.path());
}

#[test]
fn boto3_generates_data_key_pairs_whose_private_keys_cryptography_matches_to_their_public_keys() {
    if !python_has("boto3", "boto3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    let mut python = Command::new("python3");
    python.arg(script("boto3_key_pairs.py"));
    run_client(python, addr, dir.path());
}

#[test]
fn the_aws_cli_walks_the_four_steps_of_a_custom_key_store_and_uses_its_key() {
    let aws = Command::new("aws").arg("--version").output();
    if !aws.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: the aws CLI is not installed (pip install awscli)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = daemon(dir.path(), &[]);
    let mut bash = Command::new("bash");
    bash.arg(script("aws_cli_custom_key_store.sh"))
        .env("KMSCKS_WORK_DIR", dir.path())
        .env("KMSCKS_CA_HELPER", script("ca.py"));
    run_client(bash, addr, dir.path());
}

#[test]
fn the_aws_encryption_sdk_encrypts_and_decrypts_with_a_key_in_the_store() {
    if !python_has("aws_encryption_sdk", "aws-encryption-sdk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // --bootstrap: a CONNECTED custom key store with a key, alias/demo.
    let (_d, addr) = daemon(dir.path(), &["--bootstrap"]);
    let mut python = Command::new("python3");
    python.arg(script("encryption_sdk.py"));
    run_client(python, addr, dir.path());
}

/// Every operation of the kms and cloudhsmv2 models botocore ships, by target
/// (`TrentService.Encrypt`), with its input members; `None` (the test skipped, saying why)
/// without botocore.
fn aws_models() -> Option<std::collections::BTreeMap<String, Vec<String>>> {
    if !python_has("botocore", "boto3") {
        return None;
    }
    let out = Command::new("python3")
        .arg(script("input_members.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn every_input_member_of_awss_models_is_decoded_or_refused_by_name() {
    use kmscks::protocol::aws_json::{operation, request_members, Target};
    let Some(models) = aws_models() else {
        return;
    };
    let mut problems = Vec::new();
    let mut checked = 0;
    for (target, aws_members) in &models {
        // Operations kmscks does not have, or refuses whole, decode no members of their own.
        let Ok(Target::Op(op)) = operation(target) else {
            continue;
        };
        checked += 1;
        let (decoded, refused) = request_members(op);
        for member in aws_members {
            if !decoded.contains(&member.as_str()) && !refused.contains(&member.as_str()) {
                problems.push(format!(
                    "{target}: {member} would be dropped without a word"
                ));
            }
        }
        for member in &refused {
            if decoded.contains(member) {
                problems.push(format!("{target}: {member} is decoded and also refused"));
            }
            if !aws_members.iter().any(|m| m == member) {
                problems.push(format!(
                    "{target}: refuses {member}, which AWS's model lacks"
                ));
            }
        }
    }
    assert!(
        checked >= 40,
        "only {checked} operations matched AWS's models"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn kmscks_kms_help_lists_every_operation_of_awss_kms_model() {
    let Some(models) = aws_models() else {
        return;
    };
    let help = Command::new(env!("CARGO_BIN_EXE_kmscks"))
        .args(["kms", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let verbs: std::collections::BTreeSet<&str> = help
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let missing: Vec<String> = models
        .keys()
        .filter_map(|t| t.strip_prefix("TrentService."))
        .map(kebab)
        .filter(|v| !verbs.contains(v.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "aws kms verbs kmscks lacks: {missing:?}"
    );
}

/// `GetKeyLastUsage` → `get-key-last-usage`, as the aws CLI names a verb.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
