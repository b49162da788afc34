//! The `kmscks` binary, driven as a user would drive it: the four-step getting-started flow,
//! encrypt/decrypt with fileb:// and base64, error lines and exit codes, text output.
//! In-process (`--data-dir`), and against a daemon (`kmscksd`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kmscks::ops::Op;
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

/// The target arguments of a kmscks running in process on the data directory `data` under
/// `dir`.
fn in_process(dir: &Path) -> Vec<String> {
    vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
    ]
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
        err.starts_with("\nAn error occurred (CustomKeyStoreNotFoundException) when calling the DescribeCustomKeyStores operation: "),
        "{err}"
    );
    // As AWS CLI v2 prints it: a blank line, the one line, and no blank line after it.
    assert!(err.ends_with('\n') && !err.ends_with("\n\n"), "{err:?}");
    assert_eq!(err.trim_start_matches('\n').lines().count(), 1, "{err:?}");
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
    let t = in_process(dir.path());
    let f = getting_started(&t, dir.path());
    round_trips(&t, dir.path(), &f);
    errors(&t);
}

#[test]
fn an_hmac_key_generates_and_verifies_macs_with_messages_from_fileb_and_base64() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let created = ok(
        &t,
        &[
            "kms",
            "create-key",
            "--key-spec",
            "HMAC_384",
            "--key-usage",
            "GENERATE_VERIFY_MAC",
        ],
    );
    assert_eq!(
        created["KeyMetadata"]["MacAlgorithms"],
        serde_json::json!(["HMAC_SHA_384"])
    );
    let key = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let msg = dir.path().join("msg.bin");
    std::fs::write(&msg, b"hello mac").unwrap();
    let fileb = format!("fileb://{}", msg.display());
    let base = [
        "kms",
        "generate-mac",
        "--key-id",
        &key,
        "--mac-algorithm",
        "HMAC_SHA_384",
    ];
    let mac = ok(&t, &[&base[..], &["--message", &fileb]].concat());
    let mac = mac["Mac"].as_str().unwrap().to_owned();
    assert_eq!(STANDARD.decode(&mac).unwrap().len(), 48);
    // The same bytes given in base64 give the same MAC.
    let b64 = STANDARD.encode(b"hello mac");
    let again = ok(&t, &[&base[..], &["--message", &b64]].concat());
    assert_eq!(again["Mac"], mac.as_str());
    let verify = [
        "kms",
        "verify-mac",
        "--key-id",
        &key,
        "--mac-algorithm",
        "HMAC_SHA_384",
    ];
    let valid = ok(
        &t,
        &[&verify[..], &["--message", &fileb, "--mac", &mac]].concat(),
    );
    assert_eq!(valid["MacValid"], true);
    let other = STANDARD.encode(b"hello mad");
    fails(
        &t,
        &[&verify[..], &["--message", &other, "--mac", &mac]].concat(),
        "KMSInvalidMacException",
        "VerifyMac",
    );
    fails(
        &t,
        &[&base[..], &["--message", &fileb, "--dry-run"]].concat(),
        "DryRunOperationException",
        "GenerateMac",
    );
}

#[test]
fn a_signing_key_signs_verifies_and_gives_its_public_key_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let created = ok(
        &t,
        &[
            "kms",
            "create-key",
            "--key-spec",
            "ECC_NIST_P384",
            "--key-usage",
            "SIGN_VERIFY",
        ],
    );
    assert_eq!(
        created["KeyMetadata"]["SigningAlgorithms"],
        serde_json::json!(["ECDSA_SHA_384"])
    );
    let key = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let msg = dir.path().join("msg.bin");
    std::fs::write(&msg, b"hello signature").unwrap();
    let fileb = format!("fileb://{}", msg.display());
    let alg = ["--key-id", &key, "--signing-algorithm", "ECDSA_SHA_384"];
    let signed = ok(
        &t,
        &[&["kms", "sign"][..], &alg, &["--message", &fileb]].concat(),
    );
    let sig = signed["Signature"].as_str().unwrap().to_owned();
    let verify = [&["kms", "verify"][..], &alg].concat();
    let valid = ok(
        &t,
        &[&verify[..], &["--message", &fileb, "--signature", &sig]].concat(),
    );
    assert_eq!(valid["SignatureValid"], true);
    let other = STANDARD.encode(b"hello signaturf");
    fails(
        &t,
        &[&verify[..], &["--message", &other, "--signature", &sig]].concat(),
        "KMSInvalidSignatureException",
        "Verify",
    );
    // An algorithm of AWS's list that the key does not allow: the key's refusal, not a
    // parameter error.
    let e = fails(
        &t,
        &[
            "kms",
            "sign",
            "--key-id",
            &key,
            "--signing-algorithm",
            "ED25519_SHA_512",
            "--message",
            &fileb,
        ],
        "InvalidKeyUsageException",
        "Sign",
    );
    assert!(e.contains("ED25519_SHA_512"), "{e}");
    let public = ok(&t, &["kms", "get-public-key", "--key-id", &key]);
    assert_eq!(public["KeySpec"], "ECC_NIST_P384");
    let der = STANDARD
        .decode(public["PublicKey"].as_str().unwrap())
        .unwrap();
    assert_eq!(der[0], 0x30, "DER SEQUENCE");
}

#[test]
fn rsa_encryption_and_key_agreement_keys_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let create = |spec: &str, usage: &str| {
        let m = ok(
            &t,
            &[
                "kms",
                "create-key",
                "--key-spec",
                spec,
                "--key-usage",
                usage,
            ],
        );
        m["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    };
    let rsa = create("RSA_2048", "ENCRYPT_DECRYPT");
    let alg = [
        "--key-id",
        &rsa,
        "--encryption-algorithm",
        "RSAES_OAEP_SHA_256",
    ];
    let plain = STANDARD.encode(b"for rsa");
    let sealed = ok(
        &t,
        &[&["kms", "encrypt"][..], &alg, &["--plaintext", &plain]].concat(),
    );
    assert_eq!(sealed["EncryptionAlgorithm"], "RSAES_OAEP_SHA_256");
    let blob = sealed["CiphertextBlob"].as_str().unwrap();
    let opened = ok(
        &t,
        &[&["kms", "decrypt"][..], &alg, &["--ciphertext-blob", blob]].concat(),
    );
    assert_eq!(opened["Plaintext"], plain.as_str());
    fails(
        &t,
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            blob,
            "--encryption-algorithm",
            "RSAES_OAEP_SHA_256",
        ],
        "ValidationException",
        "Decrypt",
    );

    let (a, b) = (
        create("ECC_NIST_P256", "KEY_AGREEMENT"),
        create("ECC_NIST_P256", "KEY_AGREEMENT"),
    );
    let der = |key: &str| {
        let p = ok(&t, &["kms", "get-public-key", "--key-id", key]);
        assert_eq!(p["KeyAgreementAlgorithms"], serde_json::json!(["ECDH"]));
        let path = dir.path().join(format!("{key}.der"));
        let bytes = STANDARD.decode(p["PublicKey"].as_str().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        format!("fileb://{}", path.display())
    };
    let (der_a, der_b) = (der(&a), der(&b));
    let derive = |key: &str, peer: &str| {
        let args = ["--key-id", key, "--key-agreement-algorithm", "ECDH"];
        let out = ok(
            &t,
            &[
                &["kms", "derive-shared-secret"][..],
                &args,
                &["--public-key", peer],
            ]
            .concat(),
        );
        assert_eq!(out["KeyOrigin"], "AWS_KMS");
        out["SharedSecret"].as_str().unwrap().to_owned()
    };
    assert_eq!(derive(&a, &der_b), derive(&b, &der_a));
    fails(
        &t,
        &[
            "kms",
            "derive-shared-secret",
            "--key-id",
            &a,
            "--key-agreement-algorithm",
            "ECDH",
            "--public-key",
            "AAAA",
            "--dry-run",
        ],
        "ValidationException",
        "DeriveSharedSecret",
    );
}

#[test]
fn a_data_key_pair_from_the_command_line_decrypts_back_to_its_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let created = ok(&t, &["kms", "create-key"]);
    let key = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let pair = ok(
        &t,
        &[
            "kms",
            "generate-data-key-pair",
            "--key-id",
            &key,
            "--key-pair-spec",
            "ECC_NIST_P521",
            "--encryption-context",
            "app=cli",
        ],
    );
    assert_eq!(pair["KeyPairSpec"], "ECC_NIST_P521");
    assert_eq!(pair["KeyId"], created["KeyMetadata"]["Arn"]);
    let blob = pair["PrivateKeyCiphertextBlob"].as_str().unwrap();
    let opened = ok(
        &t,
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            blob,
            "--encryption-context",
            "app=cli",
        ],
    );
    assert_eq!(opened["Plaintext"], pair["PrivateKeyPlaintext"]);
    let lean = ok(
        &t,
        &[
            "kms",
            "generate-data-key-pair-without-plaintext",
            "--key-id",
            &key,
            "--key-pair-spec",
            "RSA_2048",
        ],
    );
    assert!(lean.get("PrivateKeyPlaintext").is_none(), "{lean}");
    fails(
        &t,
        &[
            "kms",
            "generate-data-key-pair",
            "--key-id",
            &key,
            "--key-pair-spec",
            "ECC_NIST_P256",
            "--dry-run",
        ],
        "DryRunOperationException",
        "GenerateDataKeyPair",
    );
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
    // Each hint once.
    assert_eq!(err.matches("is kmscksd running").count(), 1, "{err}");
    assert_eq!(err.matches(&sock.display().to_string()).count(), 1, "{err}");
    assert_eq!(err.matches("--socket").count(), 1, "{err}");
}

#[test]
fn a_daemon_or_endpoint_that_never_answers_fails_after_cli_read_timeout_with_exit_255() {
    let dir = tempfile::tempdir().unwrap();
    // Both listen (the kernel accepts into the backlog) and never answer.
    let sock = dir.path().join("silent.sock");
    let _unix = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", tcp.local_addr().unwrap());
    let socket = ["--socket".to_owned(), sock.display().to_string()];
    let endpoint = ["--endpoint-url".to_owned(), url.clone()];
    for (target, says) in [
        (&socket, "did not answer the Hello exchange in time"),
        (&endpoint, "Read timeout on endpoint URL"),
    ] {
        let began = Instant::now();
        let (code, _, err) = kmscks(target, &["--cli-read-timeout", "1", "kms", "list-keys"]);
        assert_eq!(code, 255, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(err.contains("1000 ms"), "the limit is named: {err}");
        assert!(began.elapsed() >= Duration::from_secs(1), "{err}");
    }
    // Not a number of seconds: a usage error, before anything is sent.
    let (code, _, err) = kmscks(&socket, &["--cli-read-timeout", "soon", "kms", "list-keys"]);
    assert_eq!(code, 252, "{err}");
    assert!(err.contains("--cli-read-timeout"), "{err}");
}

#[test]
fn cli_input_json_with_a_misspelt_member_is_a_parameter_error_naming_it_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    // No daemon listens here: a line that got as far as connecting would exit 255.
    let sock = dir.path().join("none.sock");
    let target = ["--socket".to_owned(), sock.display().to_string()];
    let input = r#"{"CiphertextBlob": "AAEC", "EncryptionContex": {"purpose": "test"}}"#;
    let (code, out, err) = kmscks(&target, &["kms", "decrypt", "--cli-input-json", input]);
    assert_eq!(code, 252, "{out}{err}");
    assert!(
        err.contains(
            "Parameter validation failed:\nUnknown parameter in input: \"EncryptionContex\", \
             must be one of: CiphertextBlob, EncryptionContext, GrantTokens, KeyId"
        ),
        "{err}"
    );
    assert!(!err.contains("Could not connect"), "{err}");
    // Flags given too do not make an unknown member known.
    let (code, _, err) = kmscks(
        &target,
        &[
            "kms",
            "decrypt",
            "--cli-input-json",
            input,
            "--encryption-context",
            "purpose=test",
        ],
    );
    assert_eq!(code, 252, "{err}");
    assert!(err.contains("\"EncryptionContex\""), "{err}");
    // A member AWS defines that has no kmscks flag is not unknown: it goes on to the request
    // (here AWS's default value, which kmscks honours).
    let t = in_process(dir.path());
    let v = ok(
        &t,
        &[
            "cloudhsm",
            "describe-backups",
            "--cli-input-json",
            r#"{"SortAscending": false}"#,
        ],
    );
    assert!(v["Backups"].is_array(), "{v}");
}

#[test]
fn a_paramfile_path_expands_a_leading_tilde_and_environment_variables_as_the_aws_cli_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("desc.txt"), "from a paramfile").unwrap();
    let t = in_process(dir.path());
    let description = |path: &str| {
        let out = Command::cargo_bin("kmscks")
            .unwrap()
            .args(&t)
            .args([
                "--output",
                "text",
                "--query",
                "KeyMetadata.Description",
                "kms",
                "create-key",
                "--description",
                path,
            ])
            .env("HOME", dir.path())
            .env("KMSCKS_TEST_PARAM_DIR", dir.path())
            .env_remove("KMSCKS_TEST_UNSET")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    for path in [
        "file://~/desc.txt",
        "file://$KMSCKS_TEST_PARAM_DIR/desc.txt",
        "file://${KMSCKS_TEST_PARAM_DIR}/desc.txt",
    ] {
        let (code, out, err) = description(path);
        assert_eq!(code, 0, "{path}: {err}");
        assert_eq!(out, "from a paramfile\n", "{path}");
    }
    // An unset variable stays as written, and the error names the path as written.
    let (code, _, err) = description("file://$KMSCKS_TEST_UNSET/desc.txt");
    assert_eq!(code, 252, "{err}");
    assert!(
        err.contains("Unable to load paramfile $KMSCKS_TEST_UNSET/desc.txt"),
        "{err}"
    );
}

#[test]
fn the_readme_says_of_no_verb_kms_help_lists_that_it_is_not_a_verb() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (code, help, _) = kmscks(&[], &["kms", "--help"]);
    assert_eq!(code, 0);
    // clap lists each verb first on its line.
    let verbs: Vec<&str> = help
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(verbs.contains(&"create-grant"), "{help}");
    for bullet in readme.split("\n- ") {
        if !(bullet.contains("not verbs") || bullet.contains("not a verb")) {
            continue;
        }
        // The backticked names: every other piece between backticks.
        for named in bullet.split('`').skip(1).step_by(2) {
            assert!(
                !verbs.contains(&named),
                "README says `{named}` is not a verb, but `kmscks kms --help` lists it: {bullet}"
            );
        }
    }
}

/// The long options `--help` of `bin` lists (`kmscks bench`, `kmscksd`): the words that begin
/// an option's line (`-h, --help`, `--op <op>`), not those its description mentions.
fn long_options(bin: &str, args: &[&str]) -> (std::collections::HashSet<String>, String) {
    let out = Command::cargo_bin(bin)
        .unwrap()
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{bin} {args:?} --help failed");
    let help = String::from_utf8(out.stdout).unwrap();
    let options = help
        .lines()
        .flat_map(|line| {
            line.split_whitespace()
                .map(|w| w.trim_end_matches(','))
                .take_while(|w| w.starts_with('-'))
        })
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect();
    (options, help)
}

#[test]
fn every_flag_the_readmes_target_table_runs_with_is_one_the_binaries_take() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README is in the repository");
    let section = readme
        .split("\n### Where every target stands\n")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("README's Performance has a section Where every target stands");
    let (bench, bench_help) = long_options("kmscks", &["bench"]);
    let (daemon, _) = long_options("kmscksd", &[]);
    // Each flag of `text` that `takes` lacks; a value of `--op` or `--beside` that the bench's
    // help does not list among its possible values.
    let check = |text: &str, takes: &std::collections::HashSet<String>| -> usize {
        let words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || c == '`')
            .filter(|w| !w.is_empty())
            .collect();
        let mut flags = 0;
        for (i, w) in words
            .iter()
            .enumerate()
            .filter(|(_, w)| w.starts_with("--"))
        {
            assert!(
                takes.contains(*w),
                "README gives {w} in {text:?}: not an option"
            );
            if matches!(*w, "--op" | "--beside") {
                let value = words.get(i + 1).expect("a value follows --op and --beside");
                assert!(
                    bench_help.contains(&format!(" {value},"))
                        || bench_help.contains(&format!(" {value}]")),
                    "README gives {w} {value}, which `kmscks bench --help` does not list"
                );
            }
            flags += 1;
        }
        flags
    };
    // The commands around the table: every other piece between backticks is code.
    let (mut daemon_flags, mut bench_flags) = (0, 0);
    for code in section.split('`').skip(1).step_by(2) {
        let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
        if code.contains("kmscksd ") {
            daemon_flags += check(&code, &daemon);
        } else if code.contains("kmscks bench") {
            bench_flags += check(&code, &bench);
        }
    }
    assert!(
        daemon_flags >= 3,
        "the daemon's command gave {daemon_flags} flags"
    );
    assert!(
        bench_flags >= 5,
        "the bench's commands gave {bench_flags} flags"
    );
    // The table's flags column: `kmscks bench` flags, unless the cell is a cargo command.
    let mut row_flags = 0;
    let rows = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ---") && !l.starts_with("| what"));
    for row in rows {
        let cell = row
            .split('|')
            .nth(2)
            .expect("a table row has a flags column");
        if !cell.contains("cargo ") {
            row_flags += check(cell, &bench);
        }
    }
    assert!(
        row_flags >= 30,
        "the README's target table named only {row_flags} flags"
    );
}

#[test]
fn every_operations_help_says_what_it_does_in_one_line() {
    let (code, out, _) = kmscks(&[], &["kms", "--help"]);
    assert_eq!(code, 0);
    // clap wraps long lines: compare with whitespace runs collapsed.
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for op in [
        Op::CreateCustomKeyStore,
        Op::CreateKey,
        Op::Encrypt,
        Op::LookupEvents,
    ] {
        let entry = format!("{} ({})", op.summary(), op.name());
        assert!(flat.contains(&entry), "{entry:?} not in {out}");
    }
    for op in Op::ALL {
        let s = op.summary();
        assert!(
            !s.is_empty() && !s.contains('\n') && s.len() <= 90 && !s.ends_with('.'),
            "{op:?}: {s:?}"
        );
    }
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

/// Starts `kmscksd` on a fresh data directory in `dir`; returns it and the CLI's target flags.
fn start_daemon(dir: &Path) -> (Daemon, Vec<String>) {
    let sock = dir.join("kmscks.sock");
    let daemon = Daemon(
        StdCommand::new(kmscksd())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--socket")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_ready(&sock, support::READY_TIMEOUT);
    (
        daemon,
        vec!["--socket".to_owned(), sock.display().to_string()],
    )
}

/// Runs and expects the service error `exception` from `operation` (exit 254).
fn fails(t: &[String], args: &[&str], exception: &str, operation: &str) -> String {
    let (code, out, err) = kmscks(t, args);
    assert_eq!(code, 254, "kmscks {args:?}: {out}{err}");
    // After a blank line, as AWS CLI v2 prints it.
    let line =
        format!("\nAn error occurred ({exception}) when calling the {operation} operation: ");
    assert!(err.starts_with(&line), "kmscks {args:?}: {err}");
    err
}

/// One HSM in each zone of the cluster's `SubnetMapping` (a cluster of the configured Region);
/// returns the zones.
fn hsm_in_each_zone(t: &[String], cluster: &Value) -> Vec<String> {
    hsm_in_each_zone_with(t, cluster, &[])
}

/// [`hsm_in_each_zone`], each `create-hsm` given `flags` too (`--region R` for a cluster of
/// Region R).
fn hsm_in_each_zone_with(t: &[String], cluster: &Value, flags: &[&str]) -> Vec<String> {
    let id = cluster["ClusterId"].as_str().unwrap();
    let zones: Vec<String> = cluster["SubnetMapping"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for zone in &zones {
        let mut args = vec![
            "cloudhsm",
            "create-hsm",
            "--cluster-id",
            id,
            "--availability-zone",
            zone,
        ];
        args.extend(flags);
        ok(t, &args);
    }
    zones
}

/// The only backup `describe-backups --region R --filters F` lists.
fn only_backup(t: &[String], region: &str, filter: &str) -> Value {
    let d = ok(
        t,
        &[
            "cloudhsm",
            "describe-backups",
            "--region",
            region,
            "--filters",
            filter,
        ],
    );
    match d["Backups"].as_array().map(Vec::as_slice) {
        Some([one]) => one.clone(),
        _ => panic!("one backup in {region} for {filter}: {d}"),
    }
}

/// The resilience story of a custom key store, through the CLI against a daemon: the cluster
/// is lost, a backup copied to another Region survives, and every old ciphertext decrypts
/// once the store points at a cluster restored from it. A store's cluster must be in the
/// store's Region (spec §3.1), so the copy is brought back home before the store uses it.
#[test]
fn a_store_survives_losing_its_cluster_through_a_backup_copied_to_another_region() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, t) = start_daemon(dir.path());
    let t = &t[..];
    let f = getting_started(t, dir.path());

    // Keys in the store, ciphertexts made.
    let second = ok(
        t,
        &[
            "kms",
            "create-key",
            "--origin",
            "AWS_CLOUDHSM",
            "--custom-key-store-id",
            &f.store_id,
        ],
    )["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut sealed = Vec::new();
    for (i, key) in [&f.key_id, &second, &f.key_id].into_iter().enumerate() {
        let plaintext = STANDARD.encode(format!("secret number {i}"));
        let context = format!("record={i}");
        let e = ok(
            t,
            &[
                "kms",
                "encrypt",
                "--key-id",
                key,
                "--plaintext",
                &plaintext,
                "--encryption-context",
                &context,
            ],
        );
        let blob = e["CiphertextBlob"].as_str().unwrap().to_owned();
        sealed.push((blob, context, plaintext));
    }

    // A backup, copied to us-west-2: AWS's answer names the source; the copy is found in
    // its Region by that source.
    let backup = ok(
        t,
        &["cloudhsm", "create-backup", "--cluster-id", &f.cluster_id],
    );
    let backup_id = backup["BackupId"].as_str().unwrap().to_owned();
    let copied = ok(
        t,
        &[
            "cloudhsm",
            "copy-backup-to-region",
            "--backup-id",
            &backup_id,
            "--destination-region",
            "us-west-2",
        ],
    );
    let dest = &copied["DestinationBackup"];
    assert_eq!(dest["SourceBackup"], backup_id.as_str(), "{copied}");
    assert_eq!(dest["SourceRegion"], "us-east-1", "{copied}");
    assert_eq!(dest["SourceCluster"], f.cluster_id.as_str(), "{copied}");
    let west_copy = only_backup(t, "us-west-2", &format!("sourceBackupIds={backup_id}"));
    assert_eq!(west_copy["BackupState"], "READY");
    assert!(west_copy["BackupArn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:cloudhsm:us-west-2:"));
    let west_copy_id = west_copy["BackupId"].as_str().unwrap().to_owned();

    // The original cluster is lost: its HSMs, then the cluster. The store stays CONNECTED
    // while its cryptographic operations fail.
    let clusters = ok(
        t,
        &[
            "cloudhsm",
            "describe-clusters",
            "--filters",
            &format!("clusterIds={}", f.cluster_id),
        ],
    );
    for hsm in clusters["Clusters"][0]["Hsms"].as_array().unwrap() {
        ok(
            t,
            &[
                "cloudhsm",
                "delete-hsm",
                "--cluster-id",
                &f.cluster_id,
                "--hsm-id",
                hsm["HsmId"].as_str().unwrap(),
            ],
        );
    }
    ok(
        t,
        &["cloudhsm", "delete-cluster", "--cluster-id", &f.cluster_id],
    );
    let (blob, context, _) = &sealed[0];
    fails(
        t,
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            blob,
            "--encryption-context",
            context,
        ],
        "KMSInvalidStateException",
        "Decrypt",
    );

    // The copy restored into a new cluster in us-west-2, with HSMs there: related (the same
    // cluster certificate), but not in the store's Region.
    let west = ok(
        t,
        &[
            "cloudhsm",
            "create-cluster",
            "--source-backup-id",
            &west_copy_id,
            "--region",
            "us-west-2",
        ],
    )["Cluster"]
        .clone();
    // CreateCluster answers CREATE_IN_PROGRESS, as on AWS; a restored cluster is ACTIVE next.
    assert_eq!(west["State"], "CREATE_IN_PROGRESS", "{west}");
    assert_eq!(west["SourceBackupId"], west_copy_id.as_str());
    let described = ok(
        t,
        &[
            "cloudhsm",
            "describe-clusters",
            "--region",
            "us-west-2",
            "--filters",
            &format!("clusterIds={}", west["ClusterId"].as_str().unwrap()),
        ],
    );
    assert_eq!(described["Clusters"][0]["State"], "ACTIVE", "{described}");
    // Clusters are regional, as on AWS: the us-west-2 cluster is found only with --region.
    let refusal = fails(
        t,
        &[
            "cloudhsm",
            "create-hsm",
            "--cluster-id",
            west["ClusterId"].as_str().unwrap(),
            "--availability-zone",
            "us-west-2a",
        ],
        "CloudHsmResourceNotFoundException",
        "CreateHsm",
    );
    assert!(refusal.contains("us-east-1"), "{refusal}");
    let west_zones = hsm_in_each_zone_with(t, &west, &["--region", "us-west-2"]);
    assert!(
        west_zones.iter().all(|z| z.starts_with("us-west-2")),
        "{west_zones:?}"
    );
    let west_id = west["ClusterId"].as_str().unwrap().to_owned();

    ok(
        t,
        &[
            "kms",
            "disconnect-custom-key-store",
            "--custom-key-store-id",
            &f.store_id,
        ],
    );
    let w = ok(
        t,
        &[
            "kms",
            "wait-for-connection",
            "--custom-key-store-id",
            &f.store_id,
        ],
    );
    assert_eq!(w["ConnectionState"], "DISCONNECTED", "{w}");
    fails(
        t,
        &[
            "kms",
            "update-custom-key-store",
            "--custom-key-store-id",
            &f.store_id,
            "--cloud-hsm-cluster-id",
            &west_id,
        ],
        "CloudHsmClusterNotFoundException",
        "UpdateCustomKeyStore",
    );

    // Brought home: the copy copied back to us-east-1, restored there on new subnets. The
    // copy is found only in its own Region, as on AWS: named from us-east-1 (the configured
    // Region), it does not exist.
    let copy_home = |region: &[&'static str]| {
        let mut args = vec!["cloudhsm", "copy-backup-to-region"];
        args.extend(region);
        args.extend([
            "--backup-id",
            &west_copy_id,
            "--destination-region",
            "us-east-1",
        ]);
        args
    };
    let refusal = fails(
        t,
        &copy_home(&[]),
        "CloudHsmResourceNotFoundException",
        "CopyBackupToRegion",
    );
    assert!(
        refusal.contains(&west_copy_id) && refusal.contains("us-east-1"),
        "{refusal}"
    );
    ok(t, &copy_home(&["--region", "us-west-2"]));
    let home_copy = only_backup(t, "us-east-1", &format!("sourceBackupIds={west_copy_id}"));
    let home = ok(
        t,
        &[
            "cloudhsm",
            "create-cluster",
            "--source-backup-id",
            home_copy["BackupId"].as_str().unwrap(),
            "--subnet-ids",
            "subnet-0a1b2c3d",
            "subnet-4e5f6a7b",
        ],
    )["Cluster"]
        .clone();
    assert_eq!(
        home["SubnetMapping"],
        serde_json::json!({"us-east-1a": "subnet-0a1b2c3d", "us-east-1b": "subnet-4e5f6a7b"})
    );
    hsm_in_each_zone(t, &home);
    let home_id = home["ClusterId"].as_str().unwrap().to_owned();

    // An unrelated cluster (its own certificate) is refused.
    let other = ok(t, &["cloudhsm", "create-cluster"])["Cluster"].clone();
    hsm_in_each_zone(t, &other);
    let other_id = other["ClusterId"].as_str().unwrap();
    ok(
        t,
        &["cloudhsm", "initialize-cluster", "--cluster-id", other_id],
    );
    fails(
        t,
        &[
            "kms",
            "update-custom-key-store",
            "--custom-key-store-id",
            &f.store_id,
            "--cloud-hsm-cluster-id",
            other_id,
        ],
        "CloudHsmClusterNotRelatedException",
        "UpdateCustomKeyStore",
    );

    // The store pointed at the restored cluster, reconnected: every old ciphertext decrypts.
    ok(
        t,
        &[
            "kms",
            "update-custom-key-store",
            "--custom-key-store-id",
            &f.store_id,
            "--cloud-hsm-cluster-id",
            &home_id,
        ],
    );
    ok(
        t,
        &[
            "kms",
            "connect-custom-key-store",
            "--custom-key-store-id",
            &f.store_id,
        ],
    );
    let w = ok(
        t,
        &[
            "kms",
            "wait-for-connection",
            "--custom-key-store-id",
            &f.store_id,
        ],
    );
    assert_eq!(w["ConnectionState"], "CONNECTED", "{w}");
    assert_eq!(w["CloudHsmClusterId"], home_id.as_str(), "{w}");
    for (blob, context, plaintext) in &sealed {
        let d = ok(
            t,
            &[
                "kms",
                "decrypt",
                "--ciphertext-blob",
                blob,
                "--encryption-context",
                context,
            ],
        );
        assert_eq!(d["Plaintext"], plaintext.as_str(), "{context}");
    }
    let k = ok(t, &["kms", "describe-key", "--key-id", &second]);
    assert_eq!(k["KeyMetadata"]["CloudHsmClusterId"], home_id.as_str());
    drop(daemon);
}

/// delete-backup and restore-backup as aws cloudhsmv2 answers them (the seven-day window
/// itself is held on the ManualClock in tests/hsm_faults.rs).
#[test]
fn a_deleted_backup_is_pending_deletion_until_restore_backup_makes_it_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, t) = start_daemon(dir.path());
    let t = &t[..];
    let f = getting_started(t, dir.path());
    let backup = ok(
        t,
        &["cloudhsm", "create-backup", "--cluster-id", &f.cluster_id],
    );
    let id = backup["BackupId"].as_str().unwrap();

    let deleted = ok(t, &["cloudhsm", "delete-backup", "--backup-id", id]);
    assert_eq!(deleted["Backup"]["BackupId"], id, "{deleted}");
    assert_eq!(
        deleted["Backup"]["BackupState"], "PENDING_DELETION",
        "{deleted}"
    );
    // Timestamps print as the AWS CLI v2 prints them: ISO 8601 with microseconds and offset.
    assert!(
        deleted["Backup"]["DeleteTimestamp"]
            .as_str()
            .is_some_and(|t| t.len() == 32 && t.ends_with("+00:00")),
        "{deleted}"
    );
    assert_eq!(deleted["Backup"]["NeverExpires"], false, "{deleted}");
    fails(
        t,
        &["cloudhsm", "create-cluster", "--source-backup-id", id],
        "CloudHsmInvalidRequestException",
        "CreateCluster",
    );
    let pending = only_backup(t, "us-east-1", "states=PENDING_DELETION");
    assert_eq!(pending["BackupId"], id);

    let restored = ok(t, &["cloudhsm", "restore-backup", "--backup-id", id]);
    assert_eq!(restored["Backup"]["BackupState"], "READY", "{restored}");
    assert!(
        restored["Backup"].get("DeleteTimestamp").is_none(),
        "{restored}"
    );
    fails(
        t,
        &["cloudhsm", "restore-backup", "--backup-id", id],
        "CloudHsmInvalidRequestException",
        "RestoreBackup",
    );
    ok(t, &["cloudhsm", "create-cluster", "--source-backup-id", id]);
    drop(daemon);
}

/// create-cluster --subnet-ids as aws cloudhsmv2 takes them: SubnetMapping shows each in its
/// zone, create-hsm must name one of those zones, and a malformed id is refused by name.
#[test]
fn create_cluster_places_subnet_ids_in_the_regions_zones() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let c = ok(
        &t,
        &[
            "cloudhsm",
            "create-cluster",
            "--hsm-type",
            "hsm2m.medium",
            "--subnet-ids",
            "subnet-5f3a2b1c",
            "subnet-0123456789abcdef0",
            "subnet-9e8d7c6b",
        ],
    )["Cluster"]
        .clone();
    assert_eq!(
        c["SubnetMapping"],
        serde_json::json!({
            "us-east-1a": "subnet-5f3a2b1c",
            "us-east-1b": "subnet-0123456789abcdef0",
            "us-east-1c": "subnet-9e8d7c6b",
        })
    );
    let id = c["ClusterId"].as_str().unwrap();
    let h = ok(
        &t,
        &[
            "cloudhsm",
            "create-hsm",
            "--cluster-id",
            id,
            "--availability-zone",
            "us-east-1c",
        ],
    );
    assert_eq!(h["Hsm"]["SubnetId"], "subnet-9e8d7c6b");
    fails(
        &t,
        &[
            "cloudhsm",
            "create-hsm",
            "--cluster-id",
            id,
            "--availability-zone",
            "us-east-1d",
        ],
        "CloudHsmInvalidRequestException",
        "CreateHsm",
    );
    let err = fails(
        &t,
        &[
            "cloudhsm",
            "create-cluster",
            "--subnet-ids",
            "subnet-5f3a2b1c",
            "subnet-nothex1",
        ],
        "CloudHsmInvalidRequestException",
        "CreateCluster",
    );
    assert!(
        err.contains("'subnet-nothex1'") && err.contains("subnetIds"),
        "{err}"
    );
    // Without --subnet-ids, the default stays: us-east-1a and us-east-1b.
    let d = ok(&t, &["cloudhsm", "create-cluster"])["Cluster"].clone();
    let zones: Vec<&String> = d["SubnetMapping"].as_object().unwrap().keys().collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1b"]);
}

// ---- Rehearse failures: each `cloudhsm fault` verb, into the failure and back out ----------

/// A daemon with the getting-started store CONNECTED and a key in it.
fn rehearsal(dir: &Path) -> (Daemon, Vec<String>, Flow) {
    let (daemon, t) = start_daemon(dir);
    let f = getting_started(&t, dir);
    (daemon, t, f)
}

/// `kmscks cloudhsm fault <kind> --cluster-id C <extra>`, expected to succeed.
fn fault(t: &[String], kind: &str, f: &Flow, extra: &[&str]) {
    let mut args = vec!["cloudhsm", "fault", kind, "--cluster-id", &f.cluster_id];
    args.extend_from_slice(extra);
    assert_eq!(ok(t, &args), Value::Null, "{kind} prints nothing");
}

/// `fault list`: the faults in force, as JSON.
fn faults_in_force(t: &[String], f: &Flow) -> Vec<Value> {
    let l = ok(
        t,
        &["cloudhsm", "fault", "list", "--cluster-id", &f.cluster_id],
    );
    l["Faults"]
        .as_array()
        .unwrap_or_else(|| panic!("{l}"))
        .clone()
}

fn encrypts(t: &[String], f: &Flow) {
    ok(
        t,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &f.key_id,
            "--plaintext",
            "aGk=",
        ],
    );
}

fn encrypt_fails(t: &[String], f: &Flow, exception: &str) -> String {
    fails(
        t,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &f.key_id,
            "--plaintext",
            "aGk=",
        ],
        exception,
        "Encrypt",
    )
}

fn create_key_in_store(t: &[String], f: &Flow) -> (i32, String) {
    let (code, _, err) = kmscks(
        t,
        &[
            "kms",
            "create-key",
            "--origin",
            "AWS_CLOUDHSM",
            "--custom-key-store-id",
            &f.store_id,
        ],
    );
    (code, err)
}

/// The store's (ConnectionState, ConnectionErrorCode).
fn store_state(t: &[String], f: &Flow) -> (String, Value) {
    let d = ok(
        t,
        &[
            "kms",
            "describe-custom-key-stores",
            "--custom-key-store-id",
            &f.store_id,
        ],
    );
    let s = &d["CustomKeyStores"][0];
    (
        s["ConnectionState"].as_str().unwrap().to_owned(),
        s["ConnectionErrorCode"].clone(),
    )
}

/// Connect and wait until the attempt settles; the store's (state, error code).
fn connect_and_wait(t: &[String], f: &Flow) -> (String, Value) {
    let id = ["--custom-key-store-id", f.store_id.as_str()];
    ok(t, &[&["kms", "connect-custom-key-store"][..], &id].concat());
    let w = ok(t, &[&["kms", "wait-for-connection"][..], &id].concat());
    (
        w["ConnectionState"].as_str().unwrap().to_owned(),
        w["ConnectionErrorCode"].clone(),
    )
}

fn disconnect_and_wait(t: &[String], f: &Flow) {
    let id = ["--custom-key-store-id", f.store_id.as_str()];
    ok(
        t,
        &[&["kms", "disconnect-custom-key-store"][..], &id].concat(),
    );
    let w = ok(t, &[&["kms", "wait-for-connection"][..], &id].concat());
    assert_eq!(w["ConnectionState"], "DISCONNECTED", "{w}");
}

/// A connect attempt under the fault ends FAILED with `code`; FAILED must be disconnected.
fn connect_fails_with(t: &[String], f: &Flow, code: &str) {
    assert_eq!(
        connect_and_wait(t, f),
        ("FAILED".to_owned(), Value::from(code))
    );
    disconnect_and_wait(t, f);
}

fn connected(t: &[String], f: &Flow) {
    assert_eq!(
        connect_and_wait(t, f),
        ("CONNECTED".to_owned(), Value::Null)
    );
}

/// The cluster's HSMs: (id, state, zone).
fn hsms(t: &[String], f: &Flow) -> Vec<(String, String, String)> {
    let d = ok(
        t,
        &[
            "cloudhsm",
            "describe-clusters",
            "--filters",
            &format!("clusterIds={}", f.cluster_id),
        ],
    );
    d["Clusters"][0]["Hsms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["HsmId"].as_str().unwrap().to_owned(),
                h["State"].as_str().unwrap().to_owned(),
                h["AvailabilityZone"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn network_cut_fails_crypto_with_kms_invalid_state_while_the_store_stays_connected_and_network_heal_restores_it(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    encrypts(&t, &f);
    fault(&t, "network-cut", &f, &[]);
    let err = encrypt_fails(&t, &f, "KMSInvalidStateException");
    assert!(err.contains("NETWORK_ERRORS"), "{err}");
    assert_eq!(store_state(&t, &f), ("CONNECTED".into(), Value::Null));
    assert_eq!(faults_in_force(&t, &f), vec![Value::from("NetworkDown")]);
    fault(&t, "network-heal", &f, &[]);
    encrypts(&t, &f);
    assert!(faults_in_force(&t, &f).is_empty());

    // A connect attempt while cut ends FAILED with NETWORK_ERRORS; the way back is
    // disconnect, heal, connect.
    disconnect_and_wait(&t, &f);
    fault(&t, "network-cut", &f, &[]);
    connect_fails_with(&t, &f, "NETWORK_ERRORS");
    fault(&t, "network-heal", &f, &[]);
    connected(&t, &f);
    encrypts(&t, &f);
}

#[test]
fn a_timed_network_cut_fails_crypto_then_heals_by_itself_and_fault_list_shows_the_time_left() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    // Long enough for the three commands below to start and finish on a loaded machine.
    fault(&t, "network-cut", &f, &["--duration-ms", "8000"]);
    let err = encrypt_fails(&t, &f, "KMSInvalidStateException");
    assert!(err.contains("NETWORK_ERRORS"), "{err}");
    assert_eq!(store_state(&t, &f), ("CONNECTED".into(), Value::Null));
    let listed = faults_in_force(&t, &f);
    let left = listed[0]["NetworkDownFor"]["DurationMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert!((1..=8000).contains(&left), "{listed:?}");
    // Nobody heals it: the daemon does, on its clock.
    support::wait_until("the timed cut heals", Duration::from_secs(30), || {
        faults_in_force(&t, &f).is_empty()
    });
    encrypts(&t, &f);
    // A cut of no time, or of more than a day, is refused and changes nothing.
    for bad in ["0", "86400001"] {
        let err = fails(
            &t,
            &[
                "cloudhsm",
                "fault",
                "network-cut",
                "--cluster-id",
                &f.cluster_id,
                "--duration-ms",
                bad,
            ],
            "ValidationException",
            "InjectFault",
        );
        assert!(err.contains("durationMs"), "{err}");
    }
    assert!(faults_in_force(&t, &f).is_empty());
    // An untimed cut given over a timed one is not healed by the timed one's end.
    fault(&t, "network-cut", &f, &["--duration-ms", "300"]);
    fault(&t, "network-cut", &f, &[]);
    assert_eq!(faults_in_force(&t, &f), vec![Value::from("NetworkDown")]);
    fault(&t, "network-heal", &f, &[]);
    encrypts(&t, &f);
}

/// How long `kmscks kms encrypt --key-id KEY` takes, asserting it succeeds.
fn timed_encrypt(t: &[String], key: &str) -> Duration {
    let start = Instant::now();
    ok(
        t,
        &["kms", "encrypt", "--key-id", key, "--plaintext", "aGk="],
    );
    start.elapsed()
}

#[test]
fn slow_hsms_slow_the_crypto_they_serve_but_not_other_keys_and_latency_zero_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    let default_key = ok(&t, &["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids: Vec<String> = hsms(&t, &f).into_iter().map(|h| h.0).collect();
    // Both HSMs slow: every call on the store's key is served by a slow HSM.
    let latency = Duration::from_millis(1500);
    for id in &ids {
        fault(
            &t,
            "slow-hsm",
            &f,
            &["--hsm-id", id, "--latency-ms", "1500"],
        );
    }
    let mut listed = faults_in_force(&t, &f);
    listed.sort_by_key(|v| v.to_string());
    let mut expected: Vec<Value> = ids
        .iter()
        .map(|id| serde_json::json!({"SlowHsm": {"HsmId": id, "LatencyMs": 1500}}))
        .collect();
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(listed, expected);
    let slow = timed_encrypt(&t, &f.key_id);
    assert!(slow >= latency, "a call a slow HSM served took {slow:?}");
    // The default store's key is served by no HSM of the cluster.
    let other = timed_encrypt(&t, &default_key);
    assert!(other < latency, "a default-store call took {other:?}");
    // The store stays CONNECTED: slow is not broken.
    assert_eq!(store_state(&t, &f), ("CONNECTED".into(), Value::Null));
    for id in &ids {
        fault(&t, "slow-hsm", &f, &["--hsm-id", id, "--latency-ms", "0"]);
    }
    assert!(faults_in_force(&t, &f).is_empty());
    let healed = timed_encrypt(&t, &f.key_id);
    assert!(healed < latency, "after latency 0 a call took {healed:?}");
    let err = fails(
        &t,
        &[
            "cloudhsm",
            "fault",
            "slow-hsm",
            "--cluster-id",
            &f.cluster_id,
            "--hsm-id",
            &ids[0],
            "--latency-ms",
            "60001",
        ],
        "ValidationException",
        "InjectFault",
    );
    assert!(err.contains("latencyMs"), "{err}");
}

#[test]
fn a_connection_waiting_on_a_slow_hsm_does_not_hold_up_other_connections() {
    use kmscks::api::kms::EncryptRequest;
    use kmscks::client::Client;
    use kmscks::ops::{Backend as _, Request};
    use kmscks::secret::SecretBytes;

    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    let default_key = ok(&t, &["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    for (id, _, _) in hsms(&t, &f) {
        fault(
            &t,
            "slow-hsm",
            &f,
            &["--hsm-id", &id, "--latency-ms", "4000"],
        );
    }
    let socket = dir.path().join("kmscks.sock");
    let encrypt = |key: &str| {
        Request::Encrypt(EncryptRequest {
            key_id: key.to_owned(),
            plaintext: SecretBytes::from_slice(b"hi"),
            ..Default::default()
        })
    };
    let slow_client = Client::connect(&socket).unwrap();
    let fast_client = Client::connect(&socket).unwrap();
    let latency = Duration::from_millis(4000);
    // The slow request goes out first, on a connection of its own.
    let start = Instant::now();
    let mut slow = slow_client.pipeline(1).unwrap();
    slow.submit(&encrypt(&f.key_id)).unwrap();
    slow.flush().unwrap();
    // The other connection is answered while the slow reply is still held.
    fast_client.call(&encrypt(&default_key)).unwrap();
    let fast = start.elapsed();
    assert!(fast < latency, "the other connection waited {fast:?}");
    assert_eq!(slow.ready(), 0, "the slow call was answered early");
    let (_, reply) = slow.recv().unwrap();
    reply.unwrap();
    let slowed = start.elapsed();
    assert!(slowed >= latency, "the slow call took {slowed:?}");
}

#[test]
fn internal_error_on_fails_crypto_and_connects_with_internal_error_until_internal_error_off() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    fault(&t, "internal-error-on", &f, &[]);
    encrypt_fails(&t, &f, "KMSInvalidStateException");
    assert_eq!(store_state(&t, &f).0, "CONNECTED");
    assert_eq!(
        faults_in_force(&t, &f),
        vec![serde_json::json!({"InternalError": true})]
    );
    disconnect_and_wait(&t, &f);
    connect_fails_with(&t, &f, "INTERNAL_ERROR");
    fault(&t, "internal-error-off", &f, &[]);
    assert!(faults_in_force(&t, &f).is_empty());
    connected(&t, &f);
    encrypts(&t, &f);
}

#[test]
fn hsm_down_on_one_of_two_hsms_refuses_create_key_and_hsm_up_brings_it_back_with_its_reboot_counter_up(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    let ids: Vec<String> = hsms(&t, &f).into_iter().map(|h| h.0).collect();
    fault(&t, "hsm-down", &f, &["--hsm-id", &ids[0]]);
    assert_eq!(hsms(&t, &f)[0].1, "DEGRADED");
    assert_eq!(
        faults_in_force(&t, &f),
        vec![serde_json::json!({"HsmLost": ids[0]})]
    );
    // One active HSM: the store stays CONNECTED and its keys work, but no new key.
    let (code, err) = create_key_in_store(&t, &f);
    assert_eq!(code, 254);
    assert!(
        err.contains("(CloudHsmClusterInvalidConfigurationException) when calling the CreateKey"),
        "{err}"
    );
    encrypts(&t, &f);
    // No active HSM: crypto fails too, and the store is still CONNECTED.
    fault(&t, "hsm-down", &f, &["--hsm-id", &ids[1]]);
    encrypt_fails(&t, &f, "KMSInvalidStateException");
    assert_eq!(store_state(&t, &f).0, "CONNECTED");

    for id in &ids {
        fault(&t, "hsm-up", &f, &["--hsm-id", id]);
    }
    assert!(hsms(&t, &f).iter().all(|h| h.1 == "ACTIVE"));
    assert!(faults_in_force(&t, &f).is_empty());
    encrypts(&t, &f);
    assert_eq!(create_key_in_store(&t, &f).0, 0);
    // The HSM's audit records since it came back carry the reboot counter it came back with.
    let log = ok(
        &t,
        &[
            "cloudhsm",
            "audit-log",
            "--cluster-id",
            &f.cluster_id,
            "--hsm-id",
            &ids[0],
        ],
    );
    let events = log["Streams"][0]["Events"].as_array().unwrap();
    assert_eq!(events.last().unwrap()["reboot_counter"], 1, "{log}");
    // An ACTIVE HSM has nothing to come back from.
    fails(
        &t,
        &[
            "cloudhsm",
            "fault",
            "hsm-up",
            "--cluster-id",
            &f.cluster_id,
            "--hsm-id",
            &ids[0],
        ],
        "CloudHsmInvalidRequestException",
        "InjectFault",
    );
}

#[test]
fn az_down_refuses_create_key_while_the_other_zone_serves_and_az_up_brings_the_zone_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    fault(&t, "az-down", &f, &["--availability-zone", "us-east-1a"]);
    let states: Vec<(String, String)> = hsms(&t, &f).into_iter().map(|h| (h.2, h.1)).collect();
    assert!(
        states.contains(&("us-east-1a".into(), "DEGRADED".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("us-east-1b".into(), "ACTIVE".into())),
        "{states:?}"
    );
    assert_eq!(
        faults_in_force(&t, &f),
        vec![serde_json::json!({"AvailabilityZoneDown": {"AvailabilityZone": "us-east-1a"}})]
    );
    assert_eq!(create_key_in_store(&t, &f).0, 254);
    encrypts(&t, &f);
    fault(&t, "az-up", &f, &["--availability-zone", "us-east-1a"]);
    assert!(hsms(&t, &f).iter().all(|h| h.1 == "ACTIVE"));
    assert_eq!(create_key_in_store(&t, &f).0, 0);
    assert!(faults_in_force(&t, &f).is_empty());
}

#[test]
fn security_group_broken_refuses_connect_until_security_group_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    disconnect_and_wait(&t, &f);
    fault(&t, "security-group-broken", &f, &[]);
    assert_eq!(
        faults_in_force(&t, &f),
        vec![Value::from("SecurityGroupBroken")]
    );
    fails(
        &t,
        &[
            "kms",
            "connect-custom-key-store",
            "--custom-key-store-id",
            &f.store_id,
        ],
        "CloudHsmClusterInvalidConfigurationException",
        "ConnectCustomKeyStore",
    );
    assert_eq!(store_state(&t, &f).0, "DISCONNECTED");
    fault(&t, "security-group-fixed", &f, &[]);
    connected(&t, &f);
    encrypts(&t, &f);
}

/// The documented remedy for a kmsuser whose password KMS no longer knows: set a new one
/// (`changePswd`, which also unlocks) and tell KMS (UpdateCustomKeyStore).
fn new_kmsuser_password(t: &[String], f: &Flow) {
    ok(
        t,
        &[
            "cloudhsm",
            "user",
            "change-password",
            "--cluster-id",
            &f.cluster_id,
            "--username",
            "kmsuser",
            "--password",
            "newPswd22",
        ],
    );
    ok(
        t,
        &[
            "kms",
            "update-custom-key-store",
            "--custom-key-store-id",
            &f.store_id,
            "--key-store-password",
            "newPswd22",
        ],
    );
}

#[test]
fn password_changed_keeps_a_connected_store_working_and_the_next_connect_fails_with_invalid_credentials(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    fault(&t, "password-changed", &f, &[]);
    // KMS's session survives; only the next login needs the password.
    encrypts(&t, &f);
    assert!(faults_in_force(&t, &f).is_empty(), "a one-off event");
    disconnect_and_wait(&t, &f);
    connect_fails_with(&t, &f, "INVALID_CREDENTIALS");
    new_kmsuser_password(&t, &f);
    connected(&t, &f);
    encrypts(&t, &f);
}

#[test]
fn user_locked_out_fails_connect_with_user_locked_out_until_change_password_and_update() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    disconnect_and_wait(&t, &f);
    fault(&t, "user-locked-out", &f, &["--username", "kmsuser"]);
    assert_eq!(
        faults_in_force(&t, &f),
        vec![serde_json::json!({"UserLockedOut": {"Username": "kmsuser"}})]
    );
    connect_fails_with(&t, &f, "USER_LOCKED_OUT");
    new_kmsuser_password(&t, &f);
    assert!(faults_in_force(&t, &f).is_empty());
    connected(&t, &f);
    encrypts(&t, &f);
}

#[test]
fn user_logged_in_elsewhere_fails_connect_with_user_logged_in_until_logout() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    // KMS holds kmsuser's session while connected: nobody else can take it.
    fails(
        &t,
        &[
            "cloudhsm",
            "fault",
            "user-logged-in-elsewhere",
            "--cluster-id",
            &f.cluster_id,
        ],
        "CloudHsmInvalidRequestException",
        "InjectFault",
    );
    disconnect_and_wait(&t, &f);
    fault(&t, "user-logged-in-elsewhere", &f, &[]);
    assert_eq!(
        faults_in_force(&t, &f),
        vec![serde_json::json!({"UserLoggedInElsewhere": {"Username": "kmsuser"}})]
    );
    connect_fails_with(&t, &f, "USER_LOGGED_IN");
    ok(
        &t,
        &[
            "cloudhsm",
            "logout",
            "--cluster-id",
            &f.cluster_id,
            "--username",
            "kmsuser",
        ],
    );
    connected(&t, &f);
    encrypts(&t, &f);
}

#[test]
fn the_readme_way_back_from_user_logged_in_elsewhere_disconnects_the_failed_store_first() {
    // Spec §2: FAILED must be disconnected before reconnecting, as the test above does; the
    // README's "Rehearse failures" row gives the same steps in the same order.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README is in the repository");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `user-logged-in-elsewhere`"))
        .expect("README's Rehearse failures table has a user-logged-in-elsewhere row");
    let way_back = row
        .trim_end_matches('|')
        .rsplit('|')
        .next()
        .expect("rsplit yields at least one piece")
        .trim();
    assert_eq!(
        way_back, "disconnect; `cloudhsm logout --username kmsuser`; connect",
        "{row}"
    );
}

/// The documented way back from a broken cluster: a cluster restored from `backup_id` (new
/// subnets, an HSM in each zone), the store disconnected, pointed at it, and reconnected.
fn rebuild_from_backup_and_repoint(t: &[String], f: &Flow, backup_id: &str) {
    let restored = ok(
        t,
        &[
            "cloudhsm",
            "create-cluster",
            "--source-backup-id",
            backup_id,
        ],
    )["Cluster"]
        .clone();
    hsm_in_each_zone(t, &restored);
    if store_state(t, f).0 != "DISCONNECTED" {
        disconnect_and_wait(t, f);
    }
    ok(
        t,
        &[
            "kms",
            "update-custom-key-store",
            "--custom-key-store-id",
            &f.store_id,
            "--cloud-hsm-cluster-id",
            restored["ClusterId"].as_str().unwrap(),
        ],
    );
    connected(t, f);
}

fn backup_of(t: &[String], f: &Flow) -> String {
    ok(
        t,
        &["cloudhsm", "create-backup", "--cluster-id", &f.cluster_id],
    )["BackupId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn subnet_deleted_fails_crypto_and_connect_with_subnet_not_found_until_the_store_moves_to_a_restored_cluster(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    let backup = backup_of(&t, &f);
    fault(
        &t,
        "subnet-deleted",
        &f,
        &["--availability-zone", "us-east-1a"],
    );
    assert_eq!(
        faults_in_force(&t, &f),
        vec![serde_json::json!({"SubnetDeleted": {"AvailabilityZone": "us-east-1a"}})]
    );
    let err = encrypt_fails(&t, &f, "KMSInvalidStateException");
    assert!(err.contains("SUBNET_NOT_FOUND"), "{err}");
    assert_eq!(store_state(&t, &f).0, "CONNECTED");
    disconnect_and_wait(&t, &f);
    connect_fails_with(&t, &f, "SUBNET_NOT_FOUND");
    rebuild_from_backup_and_repoint(&t, &f, &backup);
    encrypts(&t, &f);
}

#[test]
fn subnet_full_fails_connect_with_insufficient_free_addresses_until_the_store_moves_to_a_restored_cluster(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    let backup = backup_of(&t, &f);
    fault(
        &t,
        "subnet-full",
        &f,
        &["--availability-zone", "us-east-1b"],
    );
    assert_eq!(
        faults_in_force(&t, &f),
        vec![serde_json::json!({"SubnetFull": {"AvailabilityZone": "us-east-1b"}})]
    );
    // KMS already holds its addresses: a connected store keeps working.
    encrypts(&t, &f);
    disconnect_and_wait(&t, &f);
    connect_fails_with(&t, &f, "INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET");
    rebuild_from_backup_and_repoint(&t, &f, &backup);
    encrypts(&t, &f);
}

#[test]
fn delete_key_object_fails_crypto_with_kms_invalid_state_until_the_store_moves_to_a_cluster_restored_from_a_backup_holding_the_key(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, t, f) = rehearsal(dir.path());
    let sealed = ok(
        &t,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &f.key_id,
            "--plaintext",
            "aGk=",
        ],
    )["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_owned();
    let backup = backup_of(&t, &f);
    let keys = ok(
        &t,
        &["cloudhsm", "key", "list", "--cluster-id", &f.cluster_id],
    );
    let handle = keys["Keys"][0]["key-reference"].to_string();
    fault(&t, "delete-key-object", &f, &["--key-handle", &handle]);
    let listed = ok(
        &t,
        &["cloudhsm", "key", "list", "--cluster-id", &f.cluster_id],
    );
    assert_eq!(listed["Keys"], serde_json::json!([]), "{listed}");
    encrypt_fails(&t, &f, "KMSInvalidStateException");
    fails(
        &t,
        &["kms", "decrypt", "--ciphertext-blob", &sealed],
        "KMSInvalidStateException",
        "Decrypt",
    );
    // The KMS key itself is untouched, and nothing stays "in force" to list.
    let d = ok(&t, &["kms", "describe-key", "--key-id", &f.key_id]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Enabled");
    assert!(faults_in_force(&t, &f).is_empty());
    rebuild_from_backup_and_repoint(&t, &f, &backup);
    let d = ok(&t, &["kms", "decrypt", "--ciphertext-blob", &sealed]);
    assert_eq!(d["Plaintext"], "aGk=");
}

/// describe-clusters answers aws cloudhsmv2's members (and no member AWS lacks): the cluster's
/// backup policy, retention, network type, mode, state message and tags; each HSM's network
/// interface, type and state message; the CSR stays in Certificates after initialization.
#[test]
fn describe_clusters_has_aws_members_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let c = ok(&t, &["cloudhsm", "create-cluster"])["Cluster"].clone();
    let id = c["ClusterId"].as_str().unwrap().to_owned();
    assert_eq!(c["State"], "CREATE_IN_PROGRESS", "{c}");
    hsm_in_each_zone(&t, &c);
    ok(&t, &["cloudhsm", "initialize-cluster", "--cluster-id", &id]);
    let d = ok(
        &t,
        &[
            "cloudhsm",
            "describe-clusters",
            "--filters",
            &format!("clusterIds={id}"),
        ],
    )["Clusters"][0]
        .clone();
    let members: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        members,
        [
            "BackupPolicy",
            "BackupRetentionPolicy",
            "Certificates",
            "ClusterId",
            "CreateTimestamp",
            "HsmType",
            "Hsms",
            "Mode",
            "NetworkType",
            "SecurityGroup",
            "State",
            "StateMessage",
            "SubnetMapping",
            "TagList",
            "VpcId",
        ]
    );
    assert_eq!(d["State"], "ACTIVE");
    assert_eq!(d["BackupPolicy"], "DEFAULT");
    assert_eq!(
        d["BackupRetentionPolicy"],
        serde_json::json!({"Type": "DAYS", "Value": "90"})
    );
    assert_eq!(d["NetworkType"], "IPV4");
    assert_eq!(d["Mode"], "FIPS");
    assert_eq!(d["TagList"], serde_json::json!([]));
    assert!(
        d["StateMessage"].as_str().unwrap().contains("active"),
        "{d}"
    );
    assert!(d["Certificates"]["ClusterCsr"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    assert!(d["Certificates"]["ClusterCertificate"].is_string(), "{d}");
    for h in d["Hsms"].as_array().unwrap() {
        let hsm_id = h["HsmId"].as_str().unwrap();
        assert_eq!(h["EniId"], format!("eni-{}", &hsm_id["hsm-".len()..]));
        assert!(h["EniIp"].as_str().unwrap().starts_with("10.0."), "{h}");
        assert_eq!(h["HsmType"], "hsm2m.medium");
        assert!(h["StateMessage"].is_string(), "{h}");
    }
}

/// initialize-cluster with AWS's flags: INITIALIZE_IN_PROGRESS, then INITIALIZED (no user can
/// be created yet); `cluster activate` sets the admin password and makes it ACTIVE.
#[test]
fn initialize_cluster_with_a_signed_cert_needs_cluster_activate_to_become_active() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let c = ok(&t, &["cloudhsm", "create-cluster"])["Cluster"].clone();
    let id = c["ClusterId"].as_str().unwrap().to_owned();
    hsm_in_each_zone(&t, &c);
    let described = |t: &[String]| {
        ok(
            t,
            &[
                "cloudhsm",
                "describe-clusters",
                "--filters",
                &format!("clusterIds={id}"),
            ],
        )["Clusters"][0]
            .clone()
    };
    let csr = described(&t)["Certificates"]["ClusterCsr"]
        .as_str()
        .unwrap()
        .to_owned();
    let ca = kmscks::hsm::pki::CertificateAuthority::generate("my CA").unwrap();
    let signed = dir.path().join("cluster.crt");
    let anchor = dir.path().join("customerCA.crt");
    std::fs::write(&signed, ca.sign_csr(&csr).unwrap()).unwrap();
    std::fs::write(&anchor, ca.certificate_pem()).unwrap();
    let init = ok(
        &t,
        &[
            "cloudhsm",
            "initialize-cluster",
            "--cluster-id",
            &id,
            "--signed-cert",
            &format!("file://{}", signed.display()),
            "--trust-anchor",
            &format!("file://{}", anchor.display()),
        ],
    );
    assert_eq!(init["State"], "INITIALIZE_IN_PROGRESS", "{init}");
    assert!(init.get("TrustAnchor").is_none(), "{init}");
    assert_eq!(described(&t)["State"], "INITIALIZED");
    fails(
        &t,
        &[
            "cloudhsm",
            "user",
            "create",
            "--cluster-id",
            &id,
            "--username",
            "kmsuser",
            "--password",
            "kmsPswd1",
        ],
        "CloudHsmInvalidRequestException",
        "CreateUser",
    );
    let active = ok(
        &t,
        &[
            "cloudhsm",
            "cluster",
            "activate",
            "--cluster-id",
            &id,
            "--password",
            "adminPassw0rd",
        ],
    );
    assert_eq!(active["Cluster"]["State"], "ACTIVE", "{active}");
    assert_eq!(described(&t)["State"], "ACTIVE");
    ok(
        &t,
        &[
            "cloudhsm",
            "user",
            "create",
            "--cluster-id",
            &id,
            "--username",
            "kmsuser",
            "--password",
            "kmsPswd1",
        ],
    );
}

/// Every page of `verb` (`Clusters` or `Backups` under `member`) at `--max-results 2`,
/// following NextToken: each item once, and the last page without a token.
fn all_pages(t: &[String], verb: &str, member: &str, id: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut args = vec!["cloudhsm", verb, "--max-results", "2"];
        if let Some(tok) = &token {
            args.extend(["--next-token", tok.as_str()]);
        }
        let page = ok(t, &args);
        let items = page[member].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(items.iter().map(|i| i[id].as_str().unwrap().to_owned()));
        match page.get("NextToken") {
            Some(next) => token = Some(next.as_str().unwrap().to_owned()),
            None => return seen,
        }
    }
}

/// describe-clusters and describe-backups page with --max-results and --next-token, as aws
/// cloudhsmv2 does; a page size AWS refuses is refused.
#[test]
fn describe_clusters_and_describe_backups_page_with_max_results_and_next_token() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let c = ok(&t, &["cloudhsm", "create-cluster"])["Cluster"].clone();
    let id = c["ClusterId"].as_str().unwrap().to_owned();
    let mut clusters = vec![id.clone()];
    for _ in 0..4 {
        let other = ok(&t, &["cloudhsm", "create-cluster"]);
        clusters.push(other["Cluster"]["ClusterId"].as_str().unwrap().to_owned());
    }
    clusters.sort();
    assert_eq!(
        all_pages(&t, "describe-clusters", "Clusters", "ClusterId"),
        clusters
    );

    hsm_in_each_zone(&t, &c);
    ok(&t, &["cloudhsm", "initialize-cluster", "--cluster-id", &id]);
    let mut backups: Vec<String> = (0..3)
        .map(|_| {
            ok(&t, &["cloudhsm", "create-backup", "--cluster-id", &id])["BackupId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // Newest first, as AWS lists them (each taken by a process of its own, so in a later
    // millisecond than the one before).
    backups.reverse();
    let mut paged = all_pages(&t, "describe-backups", "Backups", "BackupId");
    paged.retain(|b| backups.contains(b));
    assert_eq!(paged, backups);

    // Under the model's least value: refused before it is sent, as botocore refuses it (252);
    // over its largest: the service's refusal.
    let (code, _, err) = kmscks(&t, &["cloudhsm", "describe-clusters", "--max-results", "0"]);
    assert_eq!(code, 252, "{err}");
    assert_eq!(
        err,
        "\nParameter validation failed:\nInvalid value for parameter MaxResults, value: 0, valid \
         min value: 1\n"
    );
    fails(
        &t,
        &["cloudhsm", "describe-clusters", "--max-results", "26"],
        "CloudHsmInvalidRequestException",
        "DescribeClusters",
    );
    fails(
        &t,
        &["cloudhsm", "describe-backups", "--next-token", "bm9wZQ"],
        "CloudHsmInvalidRequestException",
        "DescribeBackups",
    );
}

/// modify-cluster sets the backup retention policy (7 to 379 days); modify-backup-attributes
/// sets NeverExpires; tag-resource, untag-resource and list-tags work on clusters and backups,
/// and their errors name AWS's operations.
#[test]
fn modify_cluster_modify_backup_attributes_and_tags_on_clusters_and_backups() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let c = ok(
        &t,
        &[
            "cloudhsm",
            "create-cluster",
            "--tag-list",
            "Key=team,Value=payments",
        ],
    )["Cluster"]
        .clone();
    assert_eq!(
        c["TagList"],
        serde_json::json!([{"Key": "team", "Value": "payments"}])
    );
    let id = c["ClusterId"].as_str().unwrap().to_owned();
    let m = ok(
        &t,
        &[
            "cloudhsm",
            "modify-cluster",
            "--cluster-id",
            &id,
            "--backup-retention-policy",
            "Type=DAYS,Value=30",
        ],
    );
    assert_eq!(
        m["Cluster"]["BackupRetentionPolicy"],
        serde_json::json!({"Type": "DAYS", "Value": "30"})
    );
    for bad in [
        "Type=DAYS,Value=6",
        "Type=DAYS,Value=380",
        "Type=WEEKS,Value=30",
    ] {
        fails(
            &t,
            &[
                "cloudhsm",
                "modify-cluster",
                "--cluster-id",
                &id,
                "--backup-retention-policy",
                bad,
            ],
            "CloudHsmInvalidRequestException",
            "ModifyCluster",
        );
    }

    hsm_in_each_zone(&t, &c);
    ok(&t, &["cloudhsm", "initialize-cluster", "--cluster-id", &id]);
    let backup = ok(&t, &["cloudhsm", "create-backup", "--cluster-id", &id])["BackupId"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = ok(
        &t,
        &[
            "cloudhsm",
            "modify-backup-attributes",
            "--backup-id",
            &backup,
            "--never-expires",
        ],
    );
    assert_eq!(b["Backup"]["NeverExpires"], true, "{b}");

    let tags = |resource: &str| {
        ok(&t, &["cloudhsm", "list-tags", "--resource-id", resource])["TagList"].clone()
    };
    for resource in [id.as_str(), backup.as_str()] {
        ok(
            &t,
            &[
                "cloudhsm",
                "tag-resource",
                "--resource-id",
                resource,
                "--tag-list",
                "Key=env,Value=test",
                "Key=owner,Value=me",
            ],
        );
        ok(
            &t,
            &[
                "cloudhsm",
                "untag-resource",
                "--resource-id",
                resource,
                "--tag-key-list",
                "owner",
            ],
        );
    }
    assert_eq!(
        tags(&id),
        serde_json::json!([
            {"Key": "env", "Value": "test"},
            {"Key": "team", "Value": "payments"},
        ])
    );
    assert_eq!(
        tags(&backup),
        serde_json::json!([{"Key": "env", "Value": "test"}])
    );
    let page = ok(
        &t,
        &[
            "cloudhsm",
            "list-tags",
            "--resource-id",
            &id,
            "--max-results",
            "1",
        ],
    );
    assert_eq!(page["TagList"].as_array().unwrap().len(), 1);
    assert!(page["NextToken"].is_string(), "{page}");
    // A copy in another Region takes the tags copy-backup-to-region gives it.
    ok(
        &t,
        &[
            "cloudhsm",
            "copy-backup-to-region",
            "--backup-id",
            &backup,
            "--destination-region",
            "us-west-2",
            "--tag-list",
            "Key=copy,Value=dr",
        ],
    );
    let copy = only_backup(&t, "us-west-2", &format!("sourceBackupIds={backup}"));
    assert_eq!(
        copy["TagList"],
        serde_json::json!([{"Key": "copy", "Value": "dr"}])
    );
    fails(
        &t,
        &[
            "cloudhsm",
            "tag-resource",
            "--resource-id",
            "cluster-aaaaaaaaaaa",
            "--tag-list",
            "Key=k,Value=v",
        ],
        "CloudHsmResourceNotFoundException",
        "TagResource",
    );
}

/// Against a daemon started with `--cluster-transition-ms`, a cluster is CREATE_IN_PROGRESS
/// (create-hsm refused, naming the state) until the transition has passed, as on AWS; a script
/// polls describe-clusters until UNINITIALIZED.
#[test]
fn with_a_cluster_transition_the_daemon_shows_create_in_progress_until_it_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("kmscks.sock");
    let _daemon = Daemon(
        StdCommand::new(kmscksd())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--socket")
            .arg(&sock)
            .args(["--cluster-transition-ms", "1500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_ready(&sock, support::READY_TIMEOUT);
    let t = vec!["--socket".to_owned(), sock.display().to_string()];
    let c = ok(&t, &["cloudhsm", "create-cluster"])["Cluster"].clone();
    let id = c["ClusterId"].as_str().unwrap().to_owned();
    let zone = c["SubnetMapping"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let state = || {
        ok(
            &t,
            &[
                "cloudhsm",
                "describe-clusters",
                "--filters",
                &format!("clusterIds={id}"),
            ],
        )["Clusters"][0]["State"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Refused only while the transition lasts: checked only when it still does afterwards.
    let (code, _, err) = kmscks(
        &t,
        &[
            "cloudhsm",
            "create-hsm",
            "--cluster-id",
            &id,
            "--availability-zone",
            &zone,
        ],
    );
    if state() == "CREATE_IN_PROGRESS" {
        assert_eq!(code, 254, "{err}");
        assert!(err.contains("CREATE_IN_PROGRESS"), "{err}");
    }
    support::wait_until("UNINITIALIZED", std::time::Duration::from_secs(30), || {
        state() == "UNINITIALIZED"
    });
    hsm_in_each_zone(&t, &c);
}

/// `material` wrapped with RSAES_OAEP_SHA_256 under the DER public key `public_der`.
fn oaep_sha256(public_der: &[u8], material: &[u8]) -> Vec<u8> {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
    let public =
        OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(public_der).unwrap()).unwrap();
    let mut out = vec![0; public.ciphertext_size()];
    let n = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut out, None)
        .unwrap()
        .len();
    out.truncate(n);
    out
}

#[test]
fn imported_key_material_flows_through_the_cli_as_the_aws_developer_guide_shows() {
    let dir = tempfile::tempdir().unwrap();
    let t = in_process(dir.path());
    let key = ok(&t, &["kms", "create-key", "--origin", "EXTERNAL"]);
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(key["KeyMetadata"]["KeyState"], "PendingImport");
    let p = ok(
        &t,
        &[
            "kms",
            "get-parameters-for-import",
            "--key-id",
            &key_id,
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_256",
            "--wrapping-key-spec",
            "RSA_2048",
        ],
    );
    let public = STANDARD.decode(p["PublicKey"].as_str().unwrap()).unwrap();
    let token = STANDARD.decode(p["ImportToken"].as_str().unwrap()).unwrap();
    // The CLI prints AWS CLI v2's timestamps (ISO 8601 with the offset).
    assert!(
        p["ParametersValidTo"].as_str().unwrap().ends_with("+00:00"),
        "{p}"
    );
    let token_file = dir.path().join("token.bin");
    let sealed_file = dir.path().join("sealed.bin");
    std::fs::write(&token_file, token).unwrap();
    std::fs::write(&sealed_file, oaep_sha256(&public, &[9u8; 32])).unwrap();
    let import = |valid_to: &str| {
        kmscks(
            &t,
            &[
                "kms",
                "import-key-material",
                "--key-id",
                &key_id,
                "--import-token",
                &format!("fileb://{}", token_file.display()),
                "--encrypted-key-material",
                &format!("fileb://{}", sealed_file.display()),
                "--expiration-model",
                "KEY_MATERIAL_EXPIRES",
                "--valid-to",
                valid_to,
            ],
        )
    };
    // A time that does not parse fails before any call, as botocore's own validation does.
    let (code, _, err) = import("yesterday");
    assert_eq!(code, 252, "{err}");
    assert!(err.contains("not a time"), "{err}");
    let until = (std::time::SystemTime::now() + Duration::from_secs(30 * 86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (code, out, err) = import(&until.to_string());
    assert_eq!(code, 0, "{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["KeyMaterialId"].as_str().unwrap().len(), 64);
    let m = ok(&t, &["kms", "describe-key", "--key-id", &key_id]);
    assert_eq!(m["KeyMetadata"]["KeyState"], "Enabled");
    assert_eq!(m["KeyMetadata"]["ExpirationModel"], "KEY_MATERIAL_EXPIRES");
    assert!(
        m["KeyMetadata"]["ValidTo"]
            .as_str()
            .unwrap()
            .ends_with("+00:00"),
        "{m}"
    );
    let enc = ok(
        &t,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &key_id,
            "--plaintext",
            "aW1wb3J0ZWQ=",
        ],
    );
    assert!(enc["CiphertextBlob"].is_string());
    ok(
        &t,
        &["kms", "delete-imported-key-material", "--key-id", &key_id],
    );
    let m = ok(&t, &["kms", "describe-key", "--key-id", &key_id]);
    assert_eq!(m["KeyMetadata"]["KeyState"], "PendingImport");
}
