//! The `kmscks` binary, driven as a user would drive it: the four-step getting-started flow,
//! encrypt/decrypt with fileb:// and base64, error lines and exit codes, text output.
//! In-process (`--data-dir`), and against a daemon (`kmscksd`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

/// Runs `kmscks <target> <args>`; returns (exit code, stdout, stderr).
fn kmscks(target: &[String], args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("kmscks")
        .unwrap()
        .args(target)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs and expects success with JSON output (or none).
fn ok(target: &[String], args: &[&str]) -> Value {
    let (code, out, err) = kmscks(target, args);
    assert_eq!(code, 0, "kmscks {args:?} failed: {err}");
    if out.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

struct Flow {
    cluster_id: String,
    store_id: String,
    key_id: String,
}

/// The four steps: an active cluster with kmsuser, a store, connected, a key in it.
fn getting_started(t: &[String], dir: &Path) -> Flow {
    // 1. A cluster with two HSMs in two zones, initialized, with kmsuser.
    let c = ok(
        t,
        &[
            "cloudhsm",
            "create-cluster",
            "--hsm-type",
            "hsm1.medium",
            "--availability-zones",
            "us-east-1a",
            "us-east-1b",
        ],
    );
    let cluster_id = c["Cluster"]["ClusterId"].as_str().unwrap().to_owned();
    for zone in ["us-east-1a", "us-east-1b"] {
        let h = ok(
            t,
            &[
                "cloudhsm",
                "create-hsm",
                "--cluster-id",
                &cluster_id,
                "--availability-zone",
                zone,
            ],
        );
        assert_eq!(h["Hsm"]["AvailabilityZone"], zone);
    }
    let init = ok(
        t,
        &[
            "cloudhsm",
            "initialize-cluster",
            "--cluster-id",
            &cluster_id,
        ],
    );
    let anchor = init["TrustAnchor"].as_str().expect("kmscks made a CA");
    assert!(
        anchor.starts_with("-----BEGIN CERTIFICATE-----"),
        "{anchor}"
    );
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, anchor).unwrap();
    let u = ok(
        t,
        &[
            "cloudhsm",
            "user",
            "create",
            "--cluster-id",
            &cluster_id,
            "--username",
            "kmsuser",
            "--role",
            "crypto-user",
            "--password",
            "kmsPswd1",
        ],
    );
    assert_eq!(u["username"], "kmsuser");
    let users = ok(
        t,
        &["cloudhsm", "user", "list", "--cluster-id", &cluster_id],
    );
    assert!(users["Users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == "kmsuser"));

    // 2. The custom key store.
    let ca_arg = format!("file://{}", ca.display());
    let s = ok(
        t,
        &[
            "kms",
            "create-custom-key-store",
            "--custom-key-store-name",
            "ExampleKeyStore",
            "--cloud-hsm-cluster-id",
            &cluster_id,
            "--trust-anchor-certificate",
            &ca_arg,
            "--key-store-password",
            "kmsPswd1",
        ],
    );
    let store_id = s["CustomKeyStoreId"].as_str().unwrap().to_owned();

    // 3. Connect (no output, as aws), and wait for CONNECTED.
    assert_eq!(
        ok(
            t,
            &[
                "kms",
                "connect-custom-key-store",
                "--custom-key-store-id",
                &store_id
            ]
        ),
        Value::Null
    );
    let w = ok(
        t,
        &[
            "kms",
            "wait-for-connection",
            "--custom-key-store-id",
            &store_id,
        ],
    );
    assert_eq!(w["ConnectionState"], "CONNECTED", "{w}");

    // 4. A key in the store.
    let k = ok(
        t,
        &[
            "kms",
            "create-key",
            "--origin",
            "AWS_CLOUDHSM",
            "--custom-key-store-id",
            &store_id,
            "--description",
            "example",
        ],
    );
    let md = &k["KeyMetadata"];
    assert_eq!(md["Origin"], "AWS_CLOUDHSM");
    assert_eq!(md["CustomKeyStoreId"], store_id.as_str());
    assert_eq!(md["CloudHsmClusterId"], cluster_id.as_str());
    assert_eq!(md["KeyState"], "Enabled");
    Flow {
        cluster_id,
        store_id,
        key_id: md["KeyId"].as_str().unwrap().to_owned(),
    }
}

fn round_trips(t: &[String], dir: &Path, f: &Flow) {
    // fileb:// raw bytes in, the ciphertext out to a file, fileb:// back.
    let plain = dir.join("plain.bin");
    let bytes: Vec<u8> = (0u8..=255).collect();
    std::fs::write(&plain, &bytes).unwrap();
    let e = ok(
        t,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &f.key_id,
            "--plaintext",
            &format!("fileb://{}", plain.display()),
            "--encryption-context",
            "purpose=test,team=kms",
        ],
    );
    let blob = STANDARD
        .decode(e["CiphertextBlob"].as_str().unwrap())
        .unwrap();
    let ct = dir.join("ct.bin");
    std::fs::write(&ct, &blob).unwrap();
    let d = ok(
        t,
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            &format!("fileb://{}", ct.display()),
            "--encryption-context",
            r#"{"team":"kms","purpose":"test"}"#,
        ],
    );
    assert_eq!(
        STANDARD.decode(d["Plaintext"].as_str().unwrap()).unwrap(),
        bytes
    );
    assert!(d["KeyId"].as_str().unwrap().ends_with(&f.key_id));

    // A bare --plaintext is base64 (AWS CLI v2).
    let e = ok(
        t,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &f.key_id,
            "--plaintext",
            "aGVsbG8gd29ybGQ=",
        ],
    );
    let d = ok(
        t,
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            e["CiphertextBlob"].as_str().unwrap(),
        ],
    );
    assert_eq!(d["Plaintext"], "aGVsbG8gd29ybGQ=");

    // Data keys through the store's key.
    let g = ok(
        t,
        &[
            "kms",
            "generate-data-key",
            "--key-id",
            &f.key_id,
            "--key-spec",
            "AES_256",
        ],
    );
    assert_eq!(
        STANDARD
            .decode(g["Plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );

    // Text output: tab-separated, list members prefixed.
    let (code, out, _) = kmscks(
        t,
        &[
            "--output",
            "text",
            "kms",
            "describe-custom-key-stores",
            "--custom-key-store-id",
            &f.store_id,
        ],
    );
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with("CUSTOMKEYSTORES\t"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("\tCONNECTED\t") && line.contains(&f.cluster_id),
        "{line}"
    );

    // Key objects as the CloudHSM CLI lists them.
    let keys = ok(
        t,
        &["cloudhsm", "key", "list", "--cluster-id", &f.cluster_id],
    );
    assert_eq!(keys["Keys"][0]["owner"], "kmsuser");
}

fn errors(t: &[String]) {
    let (code, out, err) = kmscks(
        t,
        &[
            "kms",
            "describe-custom-key-stores",
            "--custom-key-store-name",
            "NoSuchStore",
        ],
    );
    assert_eq!(code, 254, "{out}{err}");
    assert!(
        err.starts_with("An error occurred (CustomKeyStoreNotFoundException) when calling the DescribeCustomKeyStores operation: "),
        "{err}"
    );
    let (code, _, err) = kmscks(
        t,
        &[
            "kms",
            "encrypt",
            "--key-id",
            "alias/none",
            "--plaintext",
            "!!",
        ],
    );
    assert_eq!(code, 252, "{err}");
    assert!(
        err.contains("Error parsing parameter '--plaintext'"),
        "{err}"
    );
    let (code, _, err) = kmscks(
        t,
        &[
            "kms",
            "create-key",
            "--policy",
            "file:///no/such/policy.json",
        ],
    );
    assert_eq!(code, 252, "{err}");
    assert!(err.contains("/no/such/policy.json"), "{err}");
}

#[test]
fn getting_started_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t = vec!["--data-dir".to_owned(), data.display().to_string()];
    let f = getting_started(&t, dir.path());
    round_trips(&t, dir.path(), &f);
    errors(&t);
}

#[test]
fn usage_errors_exit_252_and_help_exits_0() {
    let (code, _, err) = kmscks(&[], &["kms", "encrypt"]);
    assert_eq!(code, 252, "{err}");
    assert!(err.contains("--key-id"), "{err}");
    let (code, out, _) = kmscks(&[], &["kms", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("create-custom-key-store"), "{out}");
    let (code, out, _) = kmscks(&[], &["completion", "zsh"]);
    assert_eq!(code, 0);
    assert!(out.contains("kmscks"));
}

#[test]
fn no_daemon_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let (code, _, err) = kmscks(
        &["--socket".into(), sock.display().to_string()],
        &["kms", "list-keys"],
    );
    assert_eq!(code, 255, "{err}");
    assert!(err.contains(&sock.display().to_string()), "{err}");
}

/// The daemon binary (Cargo builds it for the integration tests of this package).
fn kmscksd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kmscksd"))
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn getting_started_against_the_daemon() {
    let bin = kmscksd();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("kmscks.sock");
    let daemon = Daemon(
        StdCommand::new(bin)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--socket")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_ready(&sock, support::READY_TIMEOUT);
    let t = vec!["--socket".to_owned(), sock.display().to_string()];
    let f = getting_started(&t, dir.path());
    round_trips(&t, dir.path(), &f);
    errors(&t);
    drop(daemon);
}
