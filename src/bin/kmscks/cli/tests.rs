use super::*;
use kmscks::api::hsm::Fault;
use kmscks::types::HsmId;

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut argv = vec!["kmscks"];
    argv.extend_from_slice(args);
    let code = run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn every_operation_of_the_table_has_a_verb() {
    assert_eq!(ops_without_verb(), Vec::<Op>::new());
    // And each verb is reachable in the clap tree.
    let cmd = command();
    for v in verbs() {
        let mut c = &cmd;
        for part in v.path {
            c = c
                .find_subcommand(part)
                .unwrap_or_else(|| panic!("no subcommand {part} of {:?}", v.path));
        }
    }
    cmd.debug_assert();
}

#[test]
fn kms_verbs_are_the_aws_names() {
    let cmd = command();
    let kms = cmd.find_subcommand("kms").unwrap();
    for name in [
        "create-custom-key-store",
        "describe-custom-key-stores",
        "connect-custom-key-store",
        "generate-data-key-without-plaintext",
        "re-encrypt",
        "enable-key-rotation",
        "schedule-key-deletion",
    ] {
        assert!(kms.find_subcommand(name).is_some(), "no kms {name}");
    }
    let hsm = cmd.find_subcommand("cloudhsm").unwrap();
    let user = hsm.find_subcommand("user").unwrap();
    for name in ["create", "delete", "change-password", "list"] {
        assert!(user.find_subcommand(name).is_some(), "no user {name}");
    }
}

#[test]
fn every_refused_operation_has_a_kms_verb_and_every_refused_verb_is_a_refused_operation() {
    // Refused -> verb: `kms <kebab-name> --key-id K` sends Refused with that operation.
    for &refused in Refused::ALL {
        let verb = args::kebab_case(refused.name());
        // Every required flag given, as an AWS-shaped line gives it.
        let mut line = vec!["kms".to_owned(), verb.clone()];
        for s in kms::refused_args(refused).iter().filter(|s| s.required) {
            let value = match s.kind {
                Kind::Blob => "AAEC",
                Kind::Tags => "TagKey=k,TagValue=v",
                _ => "k",
            };
            line.extend([format!("--{}", s.flag), value.to_owned()]);
        }
        let line: Vec<&str> = line.iter().map(String::as_str).collect();
        let r = request_of(&line).unwrap_or_else(|e| panic!("kms {verb}: {e}"));
        match r {
            Request::Refused(x) => assert_eq!(x.operation, refused, "kms {verb}"),
            other => panic!("kms {verb} sends {other:?}"),
        }
    }
    // Verb -> Refused: every kms verb beside the generic `kms refused` that sends Op::Refused
    // is one of the refused operations, under its own name.
    let refused_verbs: Vec<&Verb> = verbs()
        .iter()
        .filter(|v| v.op == Op::Refused && v.path != ["kms", "refused"])
        .collect();
    for v in &refused_verbs {
        let r = v
            .refused
            .unwrap_or_else(|| panic!("{:?} sends Refused without an operation", v.path));
        assert!(Refused::ALL.contains(&r), "{r:?}");
        assert_eq!(v.path, ["kms".to_owned(), args::kebab_case(r.name())]);
    }
    assert_eq!(refused_verbs.len(), Refused::ALL.len());
}

/// The verb of a command line and its flags, parsed as `run` parses them: a --cli-input-json
/// line needs none of the verb's flags.
fn verb_of(args: &[&str]) -> (&'static Verb, ArgMatches) {
    let mut argv = vec!["kmscks"];
    argv.extend_from_slice(args);
    let os: Vec<OsString> = argv.iter().map(OsString::from).collect();
    let m = command_for(relaxed(&os))
        .try_get_matches_from(argv)
        .unwrap();
    let mut path = Vec::new();
    let mut leaf = &m;
    while let Some((name, next)) = leaf.subcommand() {
        path.push(name);
        leaf = next;
    }
    (find_verb(&path).unwrap(), leaf.clone())
}

fn request_of(args: &[&str]) -> Result<Request, CliError> {
    let (verb, leaf) = verb_of(args);
    build_request(verb, &leaf)
}

#[test]
fn an_aws_shaped_derive_shared_secret_line_parses_with_all_of_awss_flags() {
    let r = request_of(&[
        "kms",
        "derive-shared-secret",
        "--key-id",
        "alias/k",
        "--key-agreement-algorithm",
        "ECDH",
        "--public-key",
        "aGVsbG8=",
        "--grant-tokens",
        "t1",
        "t2",
        "--dry-run",
    ])
    .unwrap();
    assert!(
        matches!(&r, Request::DeriveSharedSecret(x) if x.key_id == "alias/k"
            && x.key_agreement_algorithm == Some(kmscks::types::KeyAgreementAlgorithm::Ecdh)
            && x.public_key == b"hello" && x.grant_tokens == ["t1", "t2"] && x.dry_run),
        "{r:?}"
    );
    let r = request_of(&[
        "kms",
        "replicate-key",
        "--key-id",
        "k",
        "--replica-region",
        "eu-west-1",
    ])
    .unwrap();
    assert!(
        matches!(&r, Request::Refused(x) if x.operation == Refused::ReplicateKey && x.key_id == "k"),
        "{r:?}"
    );
    let (code, _, err) = run_cli(&["kms", "verify", "--key-id", "k", "--message", "AA=="]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(
        err.contains("--signature") && err.contains("--signing-algorithm"),
        "{err}"
    );
}

#[test]
fn flags_fill_the_aws_members() {
    let r = request_of(&[
        "kms",
        "encrypt",
        "--key-id",
        "alias/demo",
        "--plaintext",
        "aGVsbG8=",
        "--encryption-context",
        "purpose=test,team=x",
    ])
    .unwrap();
    let Request::Encrypt(e) = r else {
        panic!("wrong request")
    };
    assert_eq!(e.key_id, "alias/demo");
    assert_eq!(e.plaintext.expose(), b"hello");
    assert_eq!(
        e.encryption_context.get("team").map(String::as_str),
        Some("x")
    );

    let r = request_of(&[
        "kms",
        "create-custom-key-store",
        "--custom-key-store-name",
        "S",
        "--cloud-hsm-cluster-id",
        "cluster-1234567abcd",
        "--key-store-password",
        "kmsPswd",
    ])
    .unwrap();
    let Request::CreateCustomKeyStore(c) = r else {
        panic!("wrong request")
    };
    assert_eq!(c.custom_key_store_name, "S");
    assert_eq!(c.key_store_password.unwrap().expose(), "kmsPswd");

    let r = request_of(&[
        "kms",
        "create-key",
        "--tags",
        "TagKey=a,TagValue=b",
        "TagKey=c,TagValue=d",
        "--origin",
        "AWS_CLOUDHSM",
        "--bypass-policy-lockout-safety-check",
    ])
    .unwrap();
    let Request::CreateKey(k) = r else {
        panic!("wrong request")
    };
    assert_eq!(k.tags.len(), 2);
    assert!(k.bypass_policy_lockout_safety_check);
    assert_eq!(k.origin, Some(kmscks::types::Origin::AwsCloudhsm));

    let r = request_of(&["kms", "get-public-key", "--key-id", "k"]).unwrap();
    assert!(
        matches!(r, Request::GetPublicKey(ref x) if x.key_id == "k"),
        "{r:?}"
    );
    let r = request_of(&[
        "kms",
        "enable-key-rotation",
        "--key-id",
        "k",
        "--rotation-period-in-days",
        "180",
    ])
    .unwrap();
    assert!(
        matches!(r, Request::EnableKeyRotation(ref x)
            if x.key_id == "k" && x.rotation_period_in_days == Some(180)),
        "{r:?}"
    );

    let r = request_of(&["cloudhsm", "initialize-cluster", "--cluster-id", "c"]).unwrap();
    assert_eq!(r.op(), Op::InitializeClusterWithNewCa);
    let r = request_of(&[
        "cloudhsm",
        "initialize-cluster",
        "--cluster-id",
        "c",
        "--signed-cert",
        "x",
        "--trust-anchor",
        "y",
    ])
    .unwrap();
    assert_eq!(r.op(), Op::InitializeCluster);
}

#[test]
fn bad_values_are_parameter_errors_and_bad_enum_values_the_services_validation_error() {
    let e = request_of(&["kms", "create-key", "--origin", "NOPE"]).unwrap_err();
    assert_eq!(e.exit_code(), EXIT_SERVICE);
    assert!(e.to_string().contains("Value 'NOPE' at 'origin'"), "{e}");
    let e = request_of(&["kms", "list-keys", "--limit", "many"]).unwrap_err();
    assert_eq!(e.exit_code(), EXIT_USAGE);
    assert!(e.to_string().contains("--limit"), "{e}");
    let (code, _, err) = run_cli(&["kms", "encrypt", "--key-id", "k"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(err.contains("--plaintext"), "{err}");
    let (code, _, err) = run_cli(&["kms", "no-such-verb"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
}

#[test]
fn service_errors_print_like_the_aws_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "describe-custom-key-stores",
        "--custom-key-store-id",
        "cks-1234567890abcdef0",
    ]);
    assert_eq!(code, EXIT_SERVICE, "{out}{err}");
    assert!(out.is_empty());
    assert!(
        err.starts_with(
            "\nAn error occurred (CustomKeyStoreNotFoundException) when calling the DescribeCustomKeyStores operation: "
        ),
        "{err}"
    );
    // A refused operation is named as the AWS CLI would name it.
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "get-public-key",
        "--key-id",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
    ]);
    assert_eq!(code, EXIT_SERVICE);
    assert!(
        err.contains("when calling the GetPublicKey operation"),
        "{err}"
    );
}

#[test]
fn encrypt_decrypt_round_trip_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = run_cli(&["--data-dir", d, "kms", "create-key", "--description", "t"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let key_id = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    assert!(
        out.starts_with("{\n    \"KeyMetadata\": {\n        "),
        "{out}"
    );
    let (code, out, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "encrypt",
        "--key-id",
        &key_id,
        "--plaintext",
        "c2VjcmV0",
        "--encryption-context",
        "a=b",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let blob = v["CiphertextBlob"].as_str().unwrap().to_owned();
    let (code, out, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob,
        "--encryption-context",
        "a=b",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Plaintext"], "c2VjcmV0");
    // Wrong context: the AWS exception, exit 254.
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob,
    ]);
    assert_eq!(code, EXIT_SERVICE);
    assert!(
        err.contains("(InvalidCiphertextException) when calling the Decrypt operation"),
        "{err}"
    );
    // Text output.
    let (code, out, _) = run_cli(&["--data-dir", d, "--output", "text", "kms", "list-keys"]);
    assert_eq!(code, 0);
    assert!(out.contains("KEYS\t") && out.contains(&key_id), "{out}");
}

#[test]
fn completion_scripts_name_the_verbs() {
    let (code, out, _) = run_cli(&["completion", "bash"]);
    assert_eq!(code, 0);
    assert!(out.contains("create-custom-key-store") && out.contains("--cloud-hsm-cluster-id"));
    let (code, _, _) = run_cli(&["completion", "tcsh"]);
    assert_eq!(code, EXIT_USAGE);
}

#[test]
fn bench_in_process_reports_json_and_ratio() {
    let (code, out, err) = run_cli(&[
        "bench",
        "--op",
        "generate-data-key",
        "--duration",
        "30ms",
        "--baseline",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["op"], "GenerateDataKey");
    assert_eq!(v["errors"], 0);
    assert!(v["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["ratio"].as_f64().unwrap() > 0.0);
    let (code, out, _) = run_cli(&["bench", "--op", "encrypt", "--duration", "20ms"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Encrypt: ") && out.contains("p99.9"),
        "{out}"
    );
    let (code, _, err) = run_cli(&["bench", "--duration", "soon"]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("--duration"), "{err}");
    let (code, _, err) = run_cli(&["bench", "--payload", "5000", "--duration", "10ms"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
}

#[test]
fn range_help_texts_are_the_limits() {
    use kmscks::types::limits::{NUMBER_OF_BYTES, PENDING_WINDOW_DAYS};
    // The help tables are `const` (`&'static str`), so they spell the ranges out; this holds
    // them to `types::limits`, the one home of the numbers.
    let expect = [
        (
            "number-of-bytes",
            format!("{}-{}", NUMBER_OF_BYTES.0, NUMBER_OF_BYTES.1),
        ),
        (
            "pending-window-in-days",
            format!("{}-{}", PENDING_WINDOW_DAYS.0, PENDING_WINDOW_DAYS.1),
        ),
    ];
    let mut seen = [0; 2];
    for &op in Op::ALL {
        for spec in kms::args(op).unwrap_or_default() {
            for (i, (flag, help)) in expect.iter().enumerate() {
                if spec.flag == *flag {
                    assert_eq!(spec.help, help, "{op:?} --{flag}");
                    seen[i] += 1;
                }
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n > 0),
        "a range flag disappeared: {seen:?}"
    );
}

// ---- cloudhsm audit verify / export ---------------------------------------------------------

/// A data directory with an active two-HSM cluster whose streams hold five records each
/// (CN_INIT_TOKEN, then a user created, deleted, another created and deleted); returns the
/// cluster and its HSMs.
fn audited_cluster(d: &str) -> (String, Vec<String>) {
    let ok = |args: &[&str]| -> Value {
        let mut argv = vec!["--data-dir", d, "cloudhsm"];
        argv.extend_from_slice(args);
        let (code, out, err) = run_cli(&argv);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap_or(Value::Null)
    };
    let c = ok(&["create-cluster"]);
    let cid = c["Cluster"]["ClusterId"].as_str().unwrap().to_owned();
    let zones: Vec<String> = c["Cluster"]["SubnetMapping"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut hsms = Vec::new();
    for zone in &zones {
        let h = ok(&[
            "create-hsm",
            "--cluster-id",
            &cid,
            "--availability-zone",
            zone,
        ]);
        hsms.push(h["Hsm"]["HsmId"].as_str().unwrap().to_owned());
    }
    ok(&["initialize-cluster", "--cluster-id", &cid]);
    for user in ["alice", "bob"] {
        ok(&[
            "user",
            "create",
            "--cluster-id",
            &cid,
            "--username",
            user,
            "--role",
            "crypto-user",
            "--password",
            "userPassw0rd",
        ]);
        ok(&["user", "delete", "--cluster-id", &cid, "--username", user]);
    }
    (cid, hsms)
}

/// `cloudhsm audit export` of `hsm`'s stream from the data directory `d`: (exit code, stdout,
/// stderr).
fn export_stream(d: &str, cluster_id: &str, hsm: &str) -> (i32, String, String) {
    run_cli(&[
        "--data-dir",
        d,
        "cloudhsm",
        "audit",
        "export",
        "--cluster-id",
        cluster_id,
        "--hsm-id",
        hsm,
    ])
}

/// `audit verify --file`: (exit code, the one stream's verdict, stderr).
fn verify_file(path: &std::path::Path) -> (i32, Value, String) {
    let (code, out, err) = run_cli(&[
        "cloudhsm",
        "audit",
        "verify",
        "--file",
        path.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let streams = v["Streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{v}");
    (code, streams[0].clone(), err)
}

#[test]
fn audit_verify_finds_every_stream_of_a_clean_cluster_intact_and_export_writes_chained_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (cid, hsms) = audited_cluster(d);
    let (code, out, err) = run_cli(&[
        "--data-dir",
        d,
        "cloudhsm",
        "audit",
        "verify",
        "--cluster-id",
        &cid,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let streams = v["Streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{v}");
    for s in streams {
        assert_eq!(s["Verdict"], "INTACT", "{s}");
        assert_eq!(s["Records"], 5, "{s}");
        assert!(s.get("Break").is_none(), "{s}");
    }
    // `--query` applies to the verdicts, as to every answer.
    let (code, out, err) = run_cli(&[
        "--data-dir",
        d,
        "cloudhsm",
        "audit",
        "verify",
        "--cluster-id",
        &cid,
        "--query",
        "Streams[].Verdict",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!(["INTACT", "INTACT"]));
    // One HSM only.
    let (code, out, _) = run_cli(&[
        "--data-dir",
        d,
        "cloudhsm",
        "audit",
        "verify",
        "--cluster-id",
        &cid,
        "--hsm-id",
        &hsms[1],
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Streams"][0]["HsmId"], hsms[1].as_str());
    // Export: one record per line, chained from the genesis, and the file verifies offline.
    let (code, out, err) = export_stream(d, &cid, &hsms[0]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["hsm_id"], hsms[0].as_str());
        assert_eq!(l["sequence"], i);
        assert_eq!(l["reboot_counter"], 0);
        if i > 0 {
            assert_eq!(l["previous_hash"], lines[i - 1]["hash"]);
        }
    }
    let file = dir.path().join("audit.jsonl");
    std::fs::write(&file, &out).unwrap();
    let (code, verdict, err) = verify_file(&file);
    assert_eq!(code, 0, "{err}");
    assert_eq!(verdict["Verdict"], "INTACT");
    assert_eq!(verdict["HeadHash"], lines[4]["hash"]);
    // The raw verb still answers, hashes included.
    let (code, out, _) = run_cli(&[
        "--data-dir",
        d,
        "cloudhsm",
        "audit-log",
        "--cluster-id",
        &cid,
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["Streams"][0]["Events"][0]["previous_hash"].is_string(),
        "{v}"
    );
    // An HSM without a stream is the service's error, not an empty verdict.
    let (code, _, err) = export_stream(d, &cid, "hsm-abcdefghijk");
    assert_eq!(code, EXIT_SERVICE, "{err}");
    assert!(err.contains("CloudHsmResourceNotFoundException"), "{err}");
}

#[test]
fn audit_verify_fails_when_nothing_is_verified_or_a_stream_expect_hsm_names_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (cid, hsms) = audited_cluster(d);
    let export = |hsm: &str| {
        let (code, out, err) = export_stream(d, &cid, hsm);
        assert_eq!(code, 0, "{err}");
        out
    };
    let write = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let first = write("first.jsonl", &export(&hsms[0]));
    let both = write("both.jsonl", &(export(&hsms[0]) + &export(&hsms[1])));
    let empty = write("empty.jsonl", "\n");
    // (exit code, the verdicts' HSMs, stderr)
    let verify = |args: &[&str]| {
        let mut argv = vec!["--data-dir", d, "cloudhsm", "audit", "verify"];
        argv.extend_from_slice(args);
        let (code, out, err) = run_cli(&argv);
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let ids: Vec<String> = v["Streams"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["HsmId"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        (code, ids, err)
    };

    // An export without a record verifies nothing: not INTACT.
    let (code, ids, err) = verify(&["--file", &empty]);
    assert_eq!(code, audit::EXIT_BROKEN, "{err}");
    assert!(ids.is_empty());
    assert!(
        err.contains("has no audit record: nothing was verified"),
        "{err}"
    );
    // Nor is a cluster without audit streams.
    let (code, out, err) = run_cli(&["--data-dir", d, "cloudhsm", "create-cluster"]);
    assert_eq!(code, 0, "{err}");
    let bare: Value = serde_json::from_str(&out).unwrap();
    let bare = bare["Cluster"]["ClusterId"].as_str().unwrap();
    let (code, ids, err) = verify(&["--cluster-id", bare]);
    assert_eq!(code, audit::EXIT_BROKEN, "{err}");
    assert!(ids.is_empty());
    assert!(
        err.contains(&format!("cluster {bare} has no audit record")),
        "{err}"
    );

    // A stream left out whole is found only by naming the HSMs that must be there.
    let (code, ids, err) = verify(&["--file", &first]);
    assert_eq!((code, ids), (0, vec![hsms[0].clone()]), "{err}");
    let (code, ids, err) = verify(&[
        "--file",
        &first,
        "--expect-hsm",
        &hsms[0],
        "--expect-hsm",
        &hsms[1],
    ]);
    assert_eq!(code, audit::EXIT_BROKEN, "{err}");
    assert_eq!(
        ids,
        [hsms[0].clone()],
        "the verdicts are printed all the same"
    );
    assert!(
        err.contains(&format!(
            "has no audit stream of {} (--expect-hsm)",
            hsms[1]
        )),
        "{err}"
    );
    let (code, ids, err) = verify(&["--file", &both, "--expect-hsm", &hsms[0], &hsms[1]]);
    assert_eq!((code, ids), (0, hsms.clone()), "{err}");
    let (code, _, err) = verify(&["--cluster-id", &cid, "--expect-hsm", &hsms[1]]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = verify(&["--cluster-id", &cid, "--expect-hsm", "hsm-abcdefghijk"]);
    assert_eq!(code, audit::EXIT_BROKEN, "{err}");
    assert!(err.contains("hsm-abcdefghijk"), "{err}");
    // An --expect-hsm that is no HSM id is a parameter error naming it.
    let (code, _, err) = verify(&["--file", &both, "--expect-hsm", "nonsense"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(
        err.contains("--expect-hsm") && err.contains("nonsense"),
        "{err}"
    );
}

#[test]
fn an_exported_stream_tampered_by_removal_swap_or_edit_fails_verify_file_at_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (cid, hsms) = audited_cluster(d);
    let (_, export, _) = run_cli(&[
        "--data-dir",
        d,
        "cloudhsm",
        "audit",
        "export",
        "--cluster-id",
        &cid,
        "--hsm-id",
        &hsms[1],
    ]);
    let lines: Vec<String> = export.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 5);
    let edited = lines[3].replace("\"user\":\"bob\"", "\"user\":\"eve\"");
    assert_ne!(edited, lines[3], "record 3 names bob: {}", lines[3]);
    let cases: [(&str, Vec<&String>, u64, &str); 3] = [
        (
            "removed",
            vec![&lines[0], &lines[1], &lines[3], &lines[4]],
            2,
            "REMOVED",
        ),
        (
            "swapped",
            vec![&lines[0], &lines[2], &lines[1], &lines[3], &lines[4]],
            1,
            "REORDERED",
        ),
        (
            "edited",
            vec![&lines[0], &lines[1], &lines[2], &edited, &lines[4]],
            3,
            "EDITED",
        ),
    ];
    for (what, kept, sequence, kind) in cases {
        let file = dir.path().join(format!("{what}.jsonl"));
        let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&file, text).unwrap();
        let (code, verdict, err) = verify_file(&file);
        assert_eq!(code, audit::EXIT_BROKEN, "{what}: {verdict} {err}");
        assert_eq!(verdict["Verdict"], "BROKEN", "{what}");
        assert_eq!(verdict["HsmId"], hsms[1].as_str(), "{what}");
        assert_eq!(verdict["Break"]["Sequence"], sequence, "{what}: {verdict}");
        assert_eq!(verdict["Break"]["Kind"], kind, "{what}: {verdict}");
        assert!(
            err.contains(&format!("{} at sequence {sequence} ({kind})", hsms[1])),
            "{what}: {err}"
        );
    }
    // A line that is not a record is a parameter error naming the line.
    let file = dir.path().join("garbage.jsonl");
    std::fs::write(&file, format!("{}\nnot json\n", lines[0])).unwrap();
    let (code, _, err) = run_cli(&[
        "cloudhsm",
        "audit",
        "verify",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn backup_and_subnet_flags_fill_the_cloudhsmv2_members() {
    let r = request_of(&[
        "cloudhsm",
        "describe-backups",
        "--region",
        "us-west-2",
        "--filters",
        "states=READY,PENDING_DELETION",
        "sourceBackupIds=backup-abcdefghijk",
    ])
    .unwrap();
    let Request::DescribeBackups(d) = r else {
        panic!("wrong request {r:?}")
    };
    assert_eq!(d.region.as_deref(), Some("us-west-2"));
    assert_eq!(d.filters["states"], ["READY", "PENDING_DELETION"]);
    assert_eq!(d.filters["sourceBackupIds"], ["backup-abcdefghijk"]);

    let r = request_of(&[
        "cloudhsm",
        "create-cluster",
        "--hsm-type",
        "hsm2m.medium",
        "--subnet-ids",
        "subnet-0a1b2c3d",
        "subnet-4e5f6a7b",
        "--source-backup-id",
        "backup-abcdefghijk",
        "--region",
        "us-west-2",
    ])
    .unwrap();
    let Request::CreateCluster(c) = r else {
        panic!("wrong request {r:?}")
    };
    assert_eq!(c.subnet_ids, ["subnet-0a1b2c3d", "subnet-4e5f6a7b"]);
    assert_eq!(
        c.source_backup_id.map(|b| b.to_string()).as_deref(),
        Some("backup-abcdefghijk")
    );
    assert_eq!(c.region.as_deref(), Some("us-west-2"));

    for verb in ["delete-backup", "restore-backup"] {
        let r = request_of(&["cloudhsm", verb, "--backup-id", "backup-abcdefghijk"]).unwrap();
        assert!(
            matches!(&r, Request::DeleteBackup(b) | Request::RestoreBackup(b) if b.backup_id == "backup-abcdefghijk"),
            "{verb}: {r:?}"
        );
        assert_eq!(args::kebab_case(r.op().name()), verb);
    }
}

/// Clusters are regional, as on AWS: every cloudhsmv2 verb naming a cluster sends the global
/// `--region` as the request's `Region`, and none without it (the configured Region).
#[test]
fn the_cloudhsmv2_verbs_naming_a_cluster_pass_the_region() {
    const ID: &str = "cluster-abcdefghijk";
    let lines: [&[&str]; 9] = [
        &["delete-cluster", "--cluster-id", ID],
        &[
            "create-hsm",
            "--cluster-id",
            ID,
            "--availability-zone",
            "us-west-2a",
        ],
        &[
            "delete-hsm",
            "--cluster-id",
            ID,
            "--hsm-id",
            "hsm-abcdefghijk",
        ],
        &["initialize-cluster", "--cluster-id", ID],
        &[
            "initialize-cluster",
            "--cluster-id",
            ID,
            "--signed-cert",
            "C",
            "--trust-anchor",
            "A",
        ],
        &[
            "modify-cluster",
            "--cluster-id",
            ID,
            "--backup-retention-policy",
            "Type=DAYS,Value=30",
        ],
        &[
            "tag-resource",
            "--resource-id",
            ID,
            "--tag-list",
            "Key=k,Value=v",
        ],
        &["untag-resource", "--resource-id", ID, "--tag-key-list", "k"],
        &["list-tags", "--resource-id", ID],
    ];
    let region_of = |r: &Request| -> (Option<String>, String) {
        match r {
            Request::DeleteCluster(x) | Request::InitializeClusterWithNewCa(x) => {
                (x.region.clone(), x.cluster_id.clone())
            }
            Request::CreateHsm(x) => (x.region.clone(), x.cluster_id.clone()),
            Request::DeleteHsm(x) => (x.region.clone(), x.cluster_id.clone()),
            Request::InitializeCluster(x) => (x.region.clone(), x.cluster_id.clone()),
            Request::ModifyCluster(x) => (x.region.clone(), x.cluster_id.clone()),
            Request::TagHsmResource(x) => (x.region.clone(), x.resource_id.clone()),
            Request::UntagHsmResource(x) => (x.region.clone(), x.resource_id.clone()),
            Request::ListHsmTags(x) => (x.region.clone(), x.resource_id.clone()),
            other => panic!("not a cluster verb's request: {other:?}"),
        }
    };
    for line in lines {
        let mut args = vec!["cloudhsm"];
        args.extend(line);
        let r = request_of(&args).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(region_of(&r), (None, ID.to_owned()), "{line:?}");
        args.extend(["--region", "us-west-2"]);
        let r = request_of(&args).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(
            region_of(&r),
            (Some("us-west-2".to_owned()), ID.to_owned()),
            "{line:?}"
        );
    }
}

#[test]
fn the_cloudhsm_module_doc_table_names_every_cloudhsm_verb_and_its_flags() {
    // The table at the top of cli/cloudhsm.rs is the verbs' documentation: hold it to the
    // verb table so that a new verb or flag cannot go undocumented.
    let source = include_str!("cloudhsm.rs");
    let table: Vec<&str> = source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .filter(|l| l.starts_with("//! | `"))
        .collect();
    // The verbs a code cell documents: `user create\|delete --x` is `user create` and
    // `user delete`.
    let documented = |cell: &str| -> Vec<String> {
        let verb_part = cell
            .split(" -")
            .next()
            .unwrap_or("")
            .split(" [")
            .next()
            .unwrap_or("");
        let mut alts = verb_part.split("\\|");
        let first = alts.next().unwrap_or("").trim().to_owned();
        let prefix = first.rsplit_once(' ').map(|(p, _)| format!("{p} "));
        let mut names = vec![first.clone()];
        names.extend(alts.map(|a| format!("{}{}", prefix.as_deref().unwrap_or(""), a.trim())));
        names
    };
    for v in verbs().iter().filter(|v| v.path[0] == "cloudhsm") {
        let words = v.path[1..].join(" ");
        let row = table
            .iter()
            .find(|row| {
                row.split('`')
                    .skip(1)
                    .step_by(2)
                    .any(|cell| documented(cell).contains(&words))
            })
            .unwrap_or_else(|| panic!("cloudhsm {words} is missing from the doc table"));
        for spec in v.args {
            assert!(
                row.contains(&format!("--{}", spec.flag)),
                "cloudhsm {words}: --{} is missing from its doc row {row}",
                spec.flag
            );
        }
    } // The fault verbs are documented by one row, `fault KIND …`, naming every flag they take.
    let fault_row = table
        .iter()
        .find(|row| row.contains("`fault KIND "))
        .expect("the doc table has a `fault KIND` row");
    for k in fault::KINDS {
        for spec in std::iter::once(&fault::CLUSTER_ID).chain(k.flags) {
            assert!(
                fault_row.contains(&format!("--{}", spec.flag)),
                "cloudhsm fault {}: --{} is missing from the row {fault_row}",
                k.name,
                spec.flag
            );
        }
    }
}

#[test]
fn a_fault_verbs_negative_number_is_a_parameter_error_naming_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (verb, flag) in [
        (&["network-cut"][..], "--duration-ms"),
        (&["slow-hsm", "--hsm-id", "hsm-abcdefghijk"], "--latency-ms"),
    ] {
        let mut argv = vec!["--data-dir", d, "cloudhsm", "fault"];
        argv.extend(verb);
        argv.extend([flag, "-1", "--cluster-id", "cluster-abcdefghijk"]);
        let (code, _, err) = run_cli(&argv);
        assert_eq!(code, EXIT_USAGE, "{argv:?}: {err}");
        assert!(
            err.contains(&format!("{flag} must not be negative")),
            "{argv:?}: {err}"
        );
    }
}

#[test]
fn every_fault_verb_sends_inject_fault_with_its_fault_and_list_sends_list_faults() {
    let hsm = "hsm-abcdefghijk";
    let cases: Vec<(Vec<&str>, Fault)> = vec![
        (
            vec!["hsm-down", "--hsm-id", hsm],
            Fault::HsmLost(HsmId::parse(hsm).unwrap()),
        ),
        (
            vec!["hsm-up", "--hsm-id", hsm],
            Fault::HsmRestored(HsmId::parse(hsm).unwrap()),
        ),
        (
            vec!["az-down", "--availability-zone", "us-east-1a"],
            Fault::AvailabilityZoneDown {
                availability_zone: "us-east-1a".into(),
            },
        ),
        (vec!["network-cut"], Fault::NetworkDown),
        (
            vec!["network-cut", "--duration-ms", "1500"],
            Fault::NetworkDownFor { duration_ms: 1500 },
        ),
        (
            vec!["slow-hsm", "--hsm-id", hsm, "--latency-ms", "250"],
            Fault::SlowHsm {
                hsm_id: HsmId::parse(hsm).unwrap(),
                latency_ms: 250,
            },
        ),
        (vec!["internal-error-off"], Fault::InternalError(false)),
        (
            vec!["password-changed"],
            Fault::PasswordChanged {
                username: "kmsuser".into(),
            },
        ),
        (
            vec!["user-locked-out", "--username", "alice"],
            Fault::UserLockedOut {
                username: "alice".into(),
            },
        ),
        (
            vec!["delete-key-object", "--key-handle", "262162"],
            Fault::KeyObjectDeleted { handle: 262162 },
        ),
        (vec!["security-group-fixed"], Fault::SecurityGroupFixed),
    ];
    for (args, fault) in cases {
        let mut argv = vec!["cloudhsm", "fault"];
        argv.extend(&args);
        argv.extend(["--cluster-id", "cluster-abcdefghijk"]);
        let mut full = vec!["kmscks"];
        full.extend(&argv);
        let m = command().try_get_matches_from(full).unwrap();
        let mut leaf = &m;
        let mut path = Vec::new();
        while let Some((name, next)) = leaf.subcommand() {
            path.push(name);
            leaf = next;
        }
        let kind = fault::kind(&path).unwrap_or_else(|| panic!("{argv:?} is a fault verb"));
        match fault::request(kind, leaf).unwrap() {
            Request::InjectFault(r) => {
                assert_eq!(r.cluster_id, "cluster-abcdefghijk");
                assert_eq!(r.fault, fault, "{argv:?}");
            }
            other => panic!("{argv:?} sent {other:?}"),
        }
    }
    assert!(matches!(
        request_of(&["cloudhsm", "fault", "list", "--cluster-id", "cluster-abcdefghijk"]),
        Ok(Request::ListFaults(r)) if r.cluster_id == "cluster-abcdefghijk"
    ));
    // A malformed HSM id is a parameter error, before anything is sent.
    let (code, _, err) = run_cli(&[
        "cloudhsm",
        "fault",
        "hsm-down",
        "--hsm-id",
        "nope",
        "--cluster-id",
        "c",
        "--data-dir",
        "/nonexistent",
    ]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(err.contains("not an HSM id"), "{err}");
}

#[test]
fn the_hsm_type_help_names_every_aws_type_and_kmscks_default() {
    for t in kmscks::api::hsm::HSM_TYPES {
        assert!(cloudhsm::HSM_TYPE_HELP.contains(t), "{t}");
    }
    let default = format!("default: {}", kmscks::api::hsm::DEFAULT_HSM_TYPE);
    assert!(cloudhsm::HSM_TYPE_HELP.contains(&default));
}

#[test]
fn initialize_cluster_errors_name_aws_operation_not_kmscks_internal_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "cloudhsm",
        "initialize-cluster",
        "--cluster-id",
        "cluster-aaaaaaaaaaa",
    ]);
    assert_eq!(code, EXIT_SERVICE, "{err}");
    assert!(
        err.contains("when calling the InitializeCluster operation"),
        "{err}"
    );
    assert!(!err.contains("WithNewCa"), "{err}");
}

#[test]
fn an_hsm_type_aws_lacks_is_refused_naming_the_types_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "cloudhsm",
        "create-cluster",
        "--hsm-type",
        "hsm9.huge",
    ]);
    assert_eq!(code, EXIT_SERVICE, "{err}");
    assert!(err.contains("(CloudHsmInvalidRequestException)"), "{err}");
    assert!(err.contains("hsm1.medium, hsm2m.medium"), "{err}");
}

/// The ids `list-keys` printed (JSON).
fn listed(out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyId"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn list_verbs_page_as_the_aws_cli_pages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for _ in 0..3 {
        assert_eq!(run_cli(&["--data-dir", d, "kms", "create-key"]).0, 0);
    }
    // All pages, merged, without the service's paging members.
    let (code, out, err) = run_cli(&["--data-dir", d, "kms", "list-keys", "--page-size", "1"]);
    assert_eq!(code, 0, "{err}");
    let all = listed(&out);
    assert_eq!(all.len(), 3, "{out}");
    assert!(
        !out.contains("Truncated") && !out.contains("NextMarker"),
        "{out}"
    );
    // --max-items, then --starting-token from the NextToken printed.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..3 {
        let mut args = vec!["--data-dir", d, "kms", "list-keys", "--max-items", "2"];
        if let Some(t) = &token {
            args.extend(["--starting-token", t.as_str()]);
        }
        let (code, out, err) = run_cli(&args);
        assert_eq!(code, 0, "{err}");
        seen.extend(listed(&out));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        token = v["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, all);
    // --no-paginate, or the service's own --limit: one raw page.
    for args in [&["--no-paginate"][..], &["--limit", "1"]] {
        let mut argv = vec!["--data-dir", d, "kms", "list-keys"];
        argv.extend(args);
        let (code, out, _) = run_cli(&argv);
        assert_eq!(code, 0);
        assert!(out.contains("\"Truncated\""), "{args:?}: {out}");
    }
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "list-keys",
        "--no-paginate",
        "--max-items",
        "1",
    ]);
    assert_eq!(code, EXIT_OTHER);
    assert!(
        err.contains("Cannot specify --no-paginate along with pagination arguments: --max-items"),
        "{err}"
    );
    // Text: page by page, then the token to resume from.
    let (code, out, _) = run_cli(&[
        "--data-dir",
        d,
        "--output",
        "text",
        "kms",
        "list-keys",
        "--max-items",
        "1",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("KEYS\t") && lines[1].starts_with("NEXTTOKEN\t"),
        "{out}"
    );
}

#[test]
fn query_selects_from_the_answer_before_it_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (_, out, _) = run_cli(&["--data-dir", d, "kms", "create-key", "--description", "q"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v["KeyMetadata"]["KeyId"].as_str().unwrap();
    let q = |query: &str, format: &str| {
        run_cli(&[
            "--data-dir",
            d,
            "--output",
            format,
            "--query",
            query,
            "kms",
            "describe-key",
            "--key-id",
            id,
        ])
    };
    assert_eq!(q("KeyMetadata.KeyId", "text").1, format!("{id}\n"));
    assert_eq!(q("KeyMetadata.Description", "json").1, "\"q\"\n");
    let (_, out, _) = q("KeyMetadata.[KeyId,Enabled]", "text");
    assert_eq!(out, format!("{id}\tTrue\n"));
    // Timestamps are ISO 8601 with microseconds or none, and the offset.
    let (_, out, _) = q("KeyMetadata.CreationDate", "text");
    assert!(out.trim_end().ends_with("+00:00"), "{out}");
    let (code, _, err) = q("KeyMetadata.[", "json");
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("Bad value for --query"), "{err}");
    let (code, _, err) = q("KeyId", "table");
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("--output json or --output text"), "{err}");
}

#[test]
fn cli_input_json_is_the_skeletons_shape_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, _) = run_cli(&["kms", "create-alias", "--generate-cli-skeleton"]);
    assert_eq!(code, 0);
    assert_eq!(
        out, "{\n    \"AliasName\": \"\",\n    \"TargetKeyId\": \"\"\n}\n",
        "no call is made and nothing is required"
    );
    let (_, out, _) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "create-key",
        "--query",
        "KeyMetadata.KeyId",
        "--output",
        "text",
    ]);
    let id = out.trim();
    let input = format!(r#"{{"AliasName":"alias/from-json","TargetKeyId":"{id}"}}"#);
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "create-alias",
        "--cli-input-json",
        &input,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "create-alias",
        "--cli-input-json",
        &input,
        "--alias-name",
        "alias/from-flag",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run_cli(&[
        "--data-dir",
        d,
        "--output",
        "text",
        "--query",
        "Aliases[].AliasName",
        "kms",
        "list-aliases",
        "--key-id",
        id,
    ]);
    assert_eq!(out, "alias/from-flag\talias/from-json\n");
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "create-alias",
        "--cli-input-json",
        "{}",
    ]);
    assert_eq!(code, EXIT_USAGE);
    assert!(
        err.contains("Missing required parameter in input: \"AliasName\""),
        "{err}"
    );
}

#[test]
fn region_selects_the_simulated_region_of_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = run_cli(&[
        "--data-dir",
        d,
        "--region",
        "eu-west-1",
        "--output",
        "text",
        "--query",
        "KeyMetadata.Arn",
        "kms",
        "create-key",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("arn:aws:kms:eu-west-1:"), "{out}");
    // A data directory is one Region's, as a daemon serves one.
    let (code, _, err) = run_cli(&["--data-dir", d, "--region", "us-west-2", "kms", "list-keys"]);
    assert_eq!(code, EXIT_OTHER);
    assert!(err.contains("in eu-west-1, not account"), "{err}");
}

#[test]
fn an_endpoint_url_that_is_not_http_is_a_parameter_error_and_an_unreachable_one_exits_255() {
    let (code, _, err) = run_cli(&["kms", "list-keys", "--endpoint-url", "https://kms.example"]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("--endpoint-url"), "{err}");
    // Port 1 on loopback: nothing listens there.
    let (code, _, err) = run_cli(&["kms", "list-keys", "--endpoint-url", "http://127.0.0.1:1"]);
    assert_eq!(code, EXIT_OTHER);
    assert!(
        err.contains("Could not connect to the endpoint URL: \"http://127.0.0.1:1\""),
        "{err}"
    );
}

#[test]
fn exit_codes_are_the_aws_cli_v2s() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // A value the request type cannot hold: the service's ValidationException (254), as the
    // endpoint answers it. An enum value AWS does not have (botocore leaves enums to the
    // service); an integer past its member's type, refused for the bound it crosses (botocore
    // checks only the least).
    for (line, message) in [
        (
            &["kms", "generate-data-key", "--key-id", "k", "--key-spec", "AES_512"][..],
            "\nAn error occurred (ValidationException) when calling the GenerateDataKey operation: \
             1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy \
             constraint: Member must satisfy enum value set: [AES_256, AES_128]",
        ),
        // Named for the flag that holds it, whatever other members hold the same text.
        (
            &["kms", "create-key", "--description", "AES_512", "--key-spec", "AES_512"],
            "\nAn error occurred (ValidationException) when calling the CreateKey operation: \
             1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy \
             constraint: Member must satisfy enum value set: [",
        ),
        (
            &["kms", "list-keys", "--no-paginate", "--limit", "5000000000"],
            "\nAn error occurred (ValidationException) when calling the ListKeys operation: \
             1 validation error detected: Value '5000000000' at 'limit' failed to satisfy \
             constraint: Member must have value less than or equal to 1000",
        ),
    ] {
        let mut argv = vec!["--data-dir", d];
        argv.extend(line);
        let (code, _, err) = run_cli(&argv);
        assert_eq!(code, EXIT_SERVICE, "{line:?}: {err}");
        assert!(err.starts_with(message), "{line:?}: {err}");
    }
    // Client-side parameter errors (unknown flag, missing required flag, bad literal): 252.
    for line in [
        &["kms", "list-keys", "--bogus"][..],
        &["kms", "describe-key"],
        &["kms", "list-keys", "--limit", "ten"],
        &["kms", "list-keys", "--limit", "1.5"],
    ] {
        let mut argv = vec!["--data-dir", d];
        argv.extend(line);
        assert_eq!(run_cli(&argv).0, EXIT_USAGE, "{line:?}");
    }
    // A member AWS defines and kmscks does not honour: refused as the endpoint refuses it,
    // given in JSON or in the aws CLI's shorthand.
    for recipient in [
        r#"{"KeyEncryptionAlgorithm":"RSAES_OAEP_SHA_256"}"#,
        "KeyEncryptionAlgorithm=RSAES_OAEP_SHA_256,AttestationDocument=aGVsbG8=",
    ] {
        let (code, _, err) = run_cli(&[
            "--data-dir",
            d,
            "kms",
            "generate-random",
            "--number-of-bytes",
            "8",
            "--recipient",
            recipient,
        ]);
        assert_eq!(code, EXIT_SERVICE, "{recipient}: {err}");
        assert!(
            err.contains("(UnsupportedOperationException)") && err.contains("Recipient"),
            "{recipient}: {err}"
        );
    }
    // An integer under its member's least value in AWS's model: refused before the request is
    // sent, as botocore refuses it (252), one line per member; -5 and 0 alike.
    for (line, member, value) in [
        (
            &["kms", "generate-random", "--number-of-bytes", "-5"][..],
            "NumberOfBytes",
            "-5",
        ),
        (
            &["kms", "generate-random", "--number-of-bytes", "0"],
            "NumberOfBytes",
            "0",
        ),
        (&["kms", "list-keys", "--limit", "-1"], "Limit", "-1"),
    ] {
        let mut argv = vec!["--data-dir", d];
        argv.extend(line);
        let (code, _, err) = run_cli(&argv);
        assert_eq!(code, EXIT_USAGE, "{line:?}: {err}");
        assert_eq!(
            err,
            format!(
                "\nParameter validation failed:\nInvalid value for parameter {member}, value: \
                 {value}, valid min value: 1\n"
            ),
            "{line:?}"
        );
    }
    // A range the service checks: 254.
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "generate-random",
        "--number-of-bytes",
        "2000",
    ]);
    assert_eq!(code, EXIT_SERVICE, "{err}");
}

#[test]
fn create_grant_takes_the_aws_flags_and_constraints_in_shorthand_or_json() {
    use kmscks::api::kms::GrantOperation;
    let grant = |constraints: &str| {
        let r = request_of(&[
            "kms",
            "create-grant",
            "--key-id",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "--grantee-principal",
            "arn:aws:iam::111122223333:user/uid-1001",
            "--operations",
            "Encrypt",
            "Decrypt",
            "--constraints",
            constraints,
            "--name",
            "app",
            "--dry-run",
        ])
        .unwrap();
        let Request::CreateGrant(g) = r else {
            panic!("wrong request")
        };
        g
    };
    let g = grant("EncryptionContextSubset={Dept=IT,Env=prod}");
    assert_eq!(
        g.operations,
        [GrantOperation::Encrypt, GrantOperation::Decrypt]
    );
    assert_eq!(g.name.as_deref(), Some("app"));
    assert!(g.dry_run);
    let c = g.constraints.unwrap();
    let subset = c.encryption_context_subset.unwrap();
    assert_eq!(subset.get("Env").map(String::as_str), Some("prod"));
    assert_eq!(subset.len(), 2);
    let g = grant(r#"{"EncryptionContextEquals": {"Dept": "IT"}}"#);
    assert_eq!(
        g.constraints
            .unwrap()
            .encryption_context_equals
            .unwrap()
            .len(),
        1
    );
    let both = grant("EncryptionContextSubset={a=b},EncryptionContextEquals={c=d}");
    let c = both.constraints.unwrap();
    assert!(c.encryption_context_subset.is_some() && c.encryption_context_equals.is_some());

    let r = request_of(&["kms", "retire-grant", "--key-id", "k", "--grant-id", "g"]).unwrap();
    let Request::RetireGrant(r) = r else {
        panic!("wrong request")
    };
    assert_eq!(
        (r.key_id.as_deref(), r.grant_id.as_deref()),
        (Some("k"), Some("g"))
    );
}

#[test]
fn grants_round_trip_through_the_cli_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = run_cli(&["--data-dir", d, "kms", "create-key"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let key_id = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let (code, out, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "create-grant",
        "--key-id",
        &key_id,
        "--grantee-principal",
        "arn:aws:iam::111122223333:user/uid-1001",
        "--operations",
        "Decrypt",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let grant_id = v["GrantId"].as_str().unwrap().to_owned();
    assert!(v["GrantToken"].is_string(), "{out}");
    let (code, out, err) = run_cli(&["--data-dir", d, "kms", "list-grants", "--key-id", &key_id]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Grants"][0]["GrantId"], grant_id.as_str(), "{out}");
    assert_eq!(v["Grants"][0]["Operations"][0], "Decrypt", "{out}");
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "revoke-grant",
        "--key-id",
        &key_id,
        "--grant-id",
        &grant_id,
        "--dry-run",
    ]);
    assert_eq!(code, 254, "{err}");
    assert!(err.contains("DryRunOperationException"), "{err}");
    let (code, _, err) = run_cli(&[
        "--data-dir",
        d,
        "kms",
        "revoke-grant",
        "--key-id",
        &key_id,
        "--grant-id",
        &grant_id,
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_list_flag_given_one_json_list_sends_its_elements_as_the_aws_cli_does() {
    let r = request_of(&[
        "kms",
        "untag-resource",
        "--key-id",
        "k",
        "--tag-keys",
        r#"["a","b"]"#,
    ])
    .unwrap();
    let Request::UntagResource(u) = r else {
        panic!("wrong request")
    };
    assert_eq!(u.tag_keys, ["a", "b"]);
    let r = request_of(&[
        "kms",
        "create-grant",
        "--key-id",
        "k",
        "--grantee-principal",
        "arn:aws:iam::111122223333:user/uid-1001",
        "--operations",
        r#" ["Encrypt","Decrypt"]"#,
        "--grant-tokens",
        r#"["t"]"#,
    ])
    .unwrap();
    let Request::CreateGrant(g) = r else {
        panic!("wrong request")
    };
    assert_eq!(
        g.operations,
        [
            kmscks::api::kms::GrantOperation::Encrypt,
            kmscks::api::kms::GrantOperation::Decrypt
        ]
    );
    assert_eq!(g.grant_tokens, ["t"]);
    // Several values are the values, brackets or not.
    let r = request_of(&[
        "kms",
        "untag-resource",
        "--key-id",
        "k",
        "--tag-keys",
        "[a",
        "b",
    ])
    .unwrap();
    let Request::UntagResource(u) = r else {
        panic!("wrong request")
    };
    assert_eq!(u.tag_keys, ["[a", "b"]);
    // One value that starts a JSON list and is not one: a parameter error naming the flag.
    let (code, _, err) = run_cli(&["kms", "untag-resource", "--key-id", "k", "--tag-keys", "[a"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(
        err.contains("Error parsing parameter '--tag-keys': Invalid JSON"),
        "{err}"
    );
}

#[test]
fn shorthand_values_lose_their_quotes_and_keep_the_commas_and_blanks_inside() {
    let context = |value: &str| {
        let r = request_of(&[
            "kms",
            "encrypt",
            "--key-id",
            "k",
            "--plaintext",
            "aGVsbG8=",
            "--encryption-context",
            value,
        ])
        .unwrap_or_else(|e| panic!("{value}: {e}"));
        let Request::Encrypt(e) = r else {
            panic!("wrong request")
        };
        e.encryption_context
    };
    let c = context("k='x y'");
    assert_eq!(c.get("k").map(String::as_str), Some("x y"));
    let c = context(r#"k="a,b",n=1"#);
    assert_eq!(c.get("k").map(String::as_str), Some("a,b"));
    assert_eq!(c.get("n").map(String::as_str), Some("1"));
    let c = context(r"k=a\,b,n=2");
    assert_eq!(c.get("k").map(String::as_str), Some("a,b"));
    assert_eq!(c.get("n").map(String::as_str), Some("2"));
}

#[test]
fn a_base64_ciphertext_wrapped_over_lines_reads_as_the_aws_cli_reads_it() {
    // `base64` wraps at 76 columns; `"$(base64 ct.bin)"` keeps the newlines.
    let bytes: Vec<u8> = (0u8..=99).collect();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
    let wrapped = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert!(wrapped.matches('\n').count() >= 2, "{wrapped}");
    let r = request_of(&["kms", "decrypt", "--ciphertext-blob", &wrapped]).unwrap();
    let Request::Decrypt(d) = r else {
        panic!("wrong request")
    };
    assert_eq!(d.ciphertext_blob, bytes);
}

#[test]
fn the_cloudhsm_verbs_take_awss_flags_refusing_by_name_those_kmscks_does_not_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let refused = |line: &[&str], member: &str| {
        let mut argv = vec!["--data-dir", d, "cloudhsm"];
        argv.extend(line);
        let (code, _, err) = run_cli(&argv);
        assert_eq!(code, EXIT_SERVICE, "{line:?}: {err}");
        assert!(
            err.contains("(CloudHsmInvalidRequestException)") && err.contains(member),
            "{line:?}: {err}"
        );
    };
    refused(&["create-cluster", "--mode", "NON_FIPS"], "Mode");
    refused(
        &["create-cluster", "--network-type", "DUALSTACK"],
        "NetworkType",
    );
    refused(
        &[
            "create-cluster",
            "--backup-retention-policy",
            "Type=DAYS,Value=90",
        ],
        "BackupRetentionPolicy",
    );
    refused(
        &[
            "create-hsm",
            "--cluster-id",
            "cluster-aaaaaaaaaaa",
            "--availability-zone",
            "us-east-1a",
            "--ip-address",
            "10.0.0.9",
        ],
        "IpAddress",
    );
    refused(&["describe-backups", "--sort-ascending"], "SortAscending");
    refused(&["describe-backups", "--shared"], "Shared");
    // AWS's defaults are what kmscks simulates: taken.
    for line in [
        &["create-cluster", "--mode", "FIPS", "--network-type", "IPV4"][..],
        &["describe-backups", "--no-shared", "--no-sort-ascending"][..],
    ] {
        let mut argv = vec!["--data-dir", d, "cloudhsm"];
        argv.extend(line);
        let (code, _, err) = run_cli(&argv);
        assert_eq!(code, EXIT_OK, "{line:?}: {err}");
    }
}

#[test]
fn the_word_help_after_a_verb_prints_its_help_as_aws_does_and_a_flags_value_help_is_a_value() {
    // `aws kms encrypt help`: the verb's help, exit 0, its required flags not needed.
    let (code, out, err) = run_cli(&["kms", "encrypt", "help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("--key-id"), "{out}");
    assert!(
        out.contains("kmscks kms encrypt"),
        "the usage names the verb: {out}"
    );
    assert_eq!(out, run_cli(&["kms", "encrypt", "--help"]).1);
    // Anywhere among the flags, as argparse reads a positional.
    let (code, out, _) = run_cli(&["cloudhsm", "fault", "hsm-down", "help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--hsm-id"), "{out}");
    let (code, out, _) = run_cli(&["kms", "list-keys", "help", "--limit", "5"]);
    assert_eq!(code, 0);
    assert!(out.contains("--limit"), "{out}");
    // `help` as a flag's value is that value: this description is sent, not the help printed.
    let (code, out, err) = run_cli(&[
        "kms",
        "create-key",
        "--description",
        "help",
        "--generate-cli-skeleton",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("--description"),
        "a skeleton, not help: {out}"
    );
    // Any other stray word is still a usage error.
    let (code, _, err) = run_cli(&["kms", "encrypt", "helps"]);
    assert_eq!(code, 252, "{err}");
    // `help` first and more words after: the help, as `aws`'s help command ignores them.
    let (code, out, _) = run_cli(&["kms", "list-keys", "help", "b=2"]);
    assert_eq!(code, 0);
    assert!(out.contains("--limit"), "{out}");
}

#[test]
fn a_word_no_flag_takes_is_an_unknown_option_as_aws_reports_it_not_a_bad_help_word() {
    // A map flag takes one value: `b=2` is a word of its own, refused before any call.
    let (code, out, err) = run_cli(&[
        "kms",
        "encrypt",
        "--key-id",
        "alias/demo",
        "--plaintext",
        "aGk=",
        "--encryption-context",
        "a=1",
        "b=2",
    ]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert_eq!(out, "");
    assert!(err.starts_with("\nusage: kmscks "), "{err}");
    assert!(err.ends_with("\n\nUnknown options: b=2\n"), "{err}");
    assert!(
        !err.contains(HELP_WORD_ID),
        "no internal argument named: {err}"
    );
    // Several words, among flags: argparse's order, the first word (its `help` slot) last.
    let (code, _, err) = run_cli(&["kms", "list-keys", "b=2", "--limit", "5", "c=3"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(err.ends_with("\nUnknown options: c=3, b=2\n"), "{err}");
    // `help` after another word is not the help word: an unknown option too.
    let (code, out, err) = run_cli(&["kms", "list-keys", "b=2", "help"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert_eq!(out, "");
    assert!(err.ends_with("\nUnknown options: help, b=2\n"), "{err}");
    // On a fault verb (a leaf of its own table, not a verb of the verb table): the same.
    let (code, _, err) = run_cli(&[
        "cloudhsm",
        "fault",
        "network-heal",
        "--cluster-id",
        "cluster-aaaaaaaaaaa",
        "extra",
    ]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(err.ends_with("\nUnknown options: extra\n"), "{err}");
}

#[test]
fn cli_input_json_that_does_not_read_is_reported_without_its_text() {
    let secret = "MyS3cretKmsuserPw";
    let input =
        format!(r#"{{"CustomKeyStoreId":"cks-1234567890abcdef0","KeyStorePassword":"{secret}",}}"#);
    let (code, out, err) = run_cli(&["kms", "update-custom-key-store", "--cli-input-json", &input]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert_eq!(out, "");
    assert!(!err.contains(secret), "{err}");
    assert_eq!(
        err,
        "\nError parsing parameter '--cli-input-json': Invalid JSON received: syntax error at \
         line 1, column 84\n"
    );
}

#[test]
fn a_password_in_cli_input_json_goes_into_the_request_and_never_into_the_json_object() {
    let secret = "MyS3cretKmsuserPw";
    let json =
        format!(r#"{{"CustomKeyStoreId":"cks-1234567890abcdef0","KeyStorePassword":"{secret}"}}"#);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, json.as_bytes()).unwrap();
    let paramfile = format!("file://{}", file.path().display());
    for given in [json.as_str(), paramfile.as_str()] {
        let line = ["kms", "update-custom-key-store", "--cli-input-json", given];
        let (verb, leaf) = verb_of(&line);
        let input = request_input(verb, &leaf).unwrap();
        // The member stays (it was given), holding nothing: what is serialized lacks the secret.
        assert_eq!(input.obj["KeyStorePassword"], Value::String(String::new()));
        let serialized = serde_json::to_string(&input.obj).unwrap();
        assert!(!serialized.contains(secret), "{given}: {serialized}");
        match request_of(&line).unwrap() {
            Request::UpdateCustomKeyStore(r) => assert_eq!(
                r.key_store_password.as_ref().map(Password::expose),
                Some(secret),
                "{given}"
            ),
            other => panic!("{given} sends {other:?}"),
        }
    }
    // The flag given too overrides the member, which is still taken out of the object.
    let line = [
        "kms",
        "update-custom-key-store",
        "--cli-input-json",
        &json,
        "--key-store-password",
        "FromTheFlag",
    ];
    let (verb, leaf) = verb_of(&line);
    let input = request_input(verb, &leaf).unwrap();
    let serialized = serde_json::to_string(&input.obj).unwrap();
    assert!(!serialized.contains(secret), "{serialized}");
    match request_of(&line).unwrap() {
        Request::UpdateCustomKeyStore(r) => assert_eq!(
            r.key_store_password.as_ref().map(Password::expose),
            Some("FromTheFlag")
        ),
        other => panic!("sends {other:?}"),
    }
}

#[test]
fn a_wrong_typed_member_is_named_with_the_type_it_takes_never_with_its_value() {
    for (input, member) in [
        (
            r#"{"CustomKeyStoreId":"cks-1234567890abcdef0","KeyStorePassword":123456789}"#,
            "KeyStorePassword",
        ),
        (
            r#"{"CustomKeyStoreId":"cks-1234567890abcdef0","KeyStorePassword":"pw","NewCustomKeyStoreName":123456789}"#,
            "NewCustomKeyStoreName",
        ),
    ] {
        let (code, out, err) =
            run_cli(&["kms", "update-custom-key-store", "--cli-input-json", input]);
        assert_eq!(code, EXIT_USAGE, "{err}");
        assert_eq!(out, "");
        assert!(!err.contains("123456789"), "{err}");
        assert!(
            err.contains(&format!(
                "Invalid value for parameter {member}: expected a string"
            )),
            "{err}"
        );
    }
}

#[test]
fn blob_files_written_by_base64_round_trip_through_file_urls_as_with_aws() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let text = |args: &[&str]| {
        let mut argv = vec!["--data-dir", d, "--output", "text"];
        argv.extend(args);
        let (code, out, err) = run_cli(&argv);
        assert_eq!(code, 0, "{args:?}: {err}");
        out.trim_end().to_owned()
    };
    let id = text(&["--query", "KeyMetadata.KeyId", "kms", "create-key"]);
    // `echo -n secret | base64 > pt.b64`: file:// is the base64's bytes, not its text's.
    let pt = dir.path().join("pt.b64");
    std::fs::write(&pt, "c2VjcmV0\n").unwrap();
    let ct = text(&[
        "--query",
        "CiphertextBlob",
        "kms",
        "encrypt",
        "--key-id",
        &id,
        "--plaintext",
        &format!("file://{}", pt.display()),
    ]);
    // `base64 ct.bin > ct.b64`: wrapped at 76 columns.
    let ct_file = dir.path().join("ct.b64");
    let wrapped: String = ct
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned() + "\n")
        .collect();
    assert!(wrapped.matches('\n').count() >= 2, "{wrapped}");
    std::fs::write(&ct_file, wrapped).unwrap();
    let plaintext = text(&[
        "--query",
        "Plaintext",
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &format!("file://{}", ct_file.display()),
    ]);
    assert_eq!(plaintext, "c2VjcmV0", "the plaintext is `secret`");
}

#[test]
fn cli_binary_format_raw_in_base64_out_takes_a_blob_as_the_bytes_given_wherever_the_flag_is() {
    let plaintext = |line: &[&str]| match request_of(line) {
        Ok(Request::Encrypt(r)) => Ok(r.plaintext.expose().to_vec()),
        Ok(other) => panic!("{line:?} sends {other:?}"),
        Err(e) => Err(e.to_string()),
    };
    let encrypt = ["kms", "encrypt", "--key-id", "k", "--plaintext", "hello"];
    // The default is base64, in which `hello` is not a whole value.
    let e = plaintext(&encrypt).unwrap_err();
    assert!(e.contains("Invalid base64"), "{e}");
    let mut before = vec!["--cli-binary-format", "raw-in-base64-out"];
    before.extend(encrypt);
    assert_eq!(plaintext(&before).unwrap(), b"hello");
    let mut after = encrypt.to_vec();
    after.extend(["--cli-binary-format", "raw-in-base64-out"]);
    assert_eq!(plaintext(&after).unwrap(), b"hello");
    // `base64` named: as the default.
    let mut named = vec!["--cli-binary-format", "base64"];
    named.extend(["kms", "encrypt", "--key-id", "k", "--plaintext", "aGVsbG8="]);
    assert_eq!(plaintext(&named).unwrap(), b"hello");
    // Another format is a usage error naming the two.
    let (code, _, err) = run_cli(&["--cli-binary-format", "raw", "kms", "list-keys"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(
        err.contains("base64") && err.contains("raw-in-base64-out"),
        "{err}"
    );
}

#[test]
fn a_blob_member_of_cli_input_json_reads_as_the_same_value_given_as_its_flag() {
    // `base64` wraps at 76 columns; a JSON string holding its output keeps the newlines.
    let bytes: Vec<u8> = (0u8..=99).collect();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned() + "\n")
        .collect();
    let input = serde_json::json!({ "CiphertextBlob": wrapped }).to_string();
    let Request::Decrypt(d) = request_of(&["kms", "decrypt", "--cli-input-json", &input]).unwrap()
    else {
        panic!("not a Decrypt")
    };
    assert_eq!(d.ciphertext_blob, bytes);
    // A secret blob (a plaintext) the same way; a flag given too overrides it.
    let plaintext = |line: &[&str]| match request_of(line).unwrap() {
        Request::Encrypt(r) => r.plaintext.expose().to_vec(),
        other => panic!("{line:?} sends {other:?}"),
    };
    let input = r#"{"KeyId": "k", "Plaintext": "aGVs\nbG8=\n"}"#;
    assert_eq!(
        plaintext(&["kms", "encrypt", "--cli-input-json", input]),
        b"hello"
    );
    assert_eq!(
        plaintext(&[
            "kms",
            "encrypt",
            "--cli-input-json",
            input,
            "--plaintext",
            "d29ybGQ="
        ]),
        b"world"
    );
    // Even over a member that is not base64: the flag's value is the one read.
    assert_eq!(
        plaintext(&[
            "kms",
            "encrypt",
            "--cli-input-json",
            r#"{"KeyId": "k", "Plaintext": "not base64!"}"#,
            "--plaintext",
            "d29ybGQ="
        ]),
        b"world"
    );
    // --cli-binary-format applies to the members as to the flags.
    assert_eq!(
        plaintext(&[
            "--cli-binary-format",
            "raw-in-base64-out",
            "kms",
            "encrypt",
            "--cli-input-json",
            r#"{"KeyId": "k", "Plaintext": "hello"}"#,
        ]),
        b"hello"
    );
    // A member that is not base64: a parameter error naming it, not its text.
    let (code, out, err) = run_cli(&[
        "kms",
        "encrypt",
        "--cli-input-json",
        r#"{"KeyId": "k", "Plaintext": "MyS3cret!!"}"#,
    ]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("'--cli-input-json': Invalid base64 in member Plaintext: "),
        "{err}"
    );
    assert!(!err.contains("MyS3cret"), "{err}");
}

#[test]
fn a_plaintext_not_base64_is_refused_naming_neither_a_character_nor_its_offset() {
    // `!` is symbol 33; a base64 error would name it and where it is in the plaintext.
    for line in [
        &[
            "kms",
            "encrypt",
            "--key-id",
            "k",
            "--plaintext",
            "MyS3cret!!",
        ][..],
        &[
            "kms",
            "encrypt",
            "--cli-input-json",
            r#"{"KeyId": "k", "Plaintext": "MyS3cret!!"}"#,
        ],
    ] {
        let (code, out, err) = run_cli(line);
        assert_eq!(code, EXIT_USAGE, "{line:?}: {err}");
        assert_eq!(out, "");
        assert!(err.contains("not base64 text"), "{line:?}: {err}");
        assert!(
            !err.contains("symbol") && !err.contains("offset") && !err.contains("33"),
            "{line:?}: {err}"
        );
    }
    // A ciphertext is no secret: its error says where it stops being base64.
    let (code, _, err) = run_cli(&["kms", "decrypt", "--ciphertext-blob", "MyS3cret!!"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert!(err.contains("Invalid symbol 33"), "{err}");
}

#[test]
fn a_batch_item_that_does_not_read_is_named_by_member_never_by_what_it_holds() {
    // Items hold plaintexts: serde's message for this one names the blank (symbol 32) and its
    // offset in the plaintext.
    let (code, out, err) = run_cli(&[
        "kms",
        "encrypt-batch",
        "--items",
        r#"[{"KeyId":"alias/demo","Plaintext":"my secret!"}]"#,
    ]);
    assert_eq!(code, EXIT_USAGE, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("Invalid value for parameter Items"), "{err}");
    assert!(
        !err.contains("symbol") && !err.contains("offset") && !err.contains("base64"),
        "{err}"
    );
}

#[test]
fn a_query_that_fails_on_the_answer_is_the_querys_error_not_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = run_cli(&[
        "--data-dir",
        d,
        "--query",
        "abs(`\"x\"`)",
        "kms",
        "list-keys",
    ]);
    assert_eq!(code, EXIT_OTHER, "{err}");
    assert_eq!(out, "");
    assert!(
        err.starts_with("\nBad value for --query: Runtime error"),
        "{err}"
    );
    assert!(!err.contains("cannot write the output"), "{err}");
}

#[test]
fn socket_and_data_dir_together_are_a_usage_error_wherever_on_the_line_each_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let sock = dir.path().join("none.sock");
    let sock = sock.to_str().unwrap();
    for line in [
        &["--socket", sock, "--data-dir", d, "kms", "list-keys"][..],
        &["kms", "list-keys", "--data-dir", d, "--socket", sock],
        // Split over two levels: clap checks each level's flags on their own.
        &["--socket", sock, "kms", "list-keys", "--data-dir", d],
        &["--data-dir", d, "kms", "list-keys", "--socket", sock],
        // --endpoint-url's conflicts, split the same way.
        &[
            "--endpoint-url",
            "http://127.0.0.1:1",
            "kms",
            "list-keys",
            "--data-dir",
            d,
        ],
    ] {
        let (code, out, err) = run_cli(line);
        assert_eq!(code, EXIT_USAGE, "{line:?}: {err}");
        assert_eq!(out, "", "{line:?}");
        assert!(err.contains("cannot be used with"), "{line:?}: {err}");
        assert!(
            !std::path::Path::new(d).exists(),
            "{line:?}: the data directory was not opened"
        );
    }
}

#[test]
fn request_json_text_is_written_once_into_a_buffer_of_its_exact_size() {
    // An encrypt-batch object: its Items hold plaintexts' base64, which a grown (reallocated)
    // buffer would leave behind unwiped.
    let item = serde_json::json!({"KeyId": "alias/demo", "Plaintext": "c2VjcmV0".repeat(100)});
    let obj = serde_json::json!({ "Items": vec![item; 20] });
    let text =
        wiping_json(|w| serde_json::to_writer(w, &obj).map_err(std::io::Error::from)).unwrap();
    assert_eq!(text.capacity(), text.len());
    assert_eq!(&text[..], serde_json::to_vec(&obj).unwrap());
}

#[test]
fn the_readme_gives_cli_read_timeouts_default_and_a_line_without_it_waits_that_long() {
    let readme = include_str!("../../../../README.md");
    let said = format!("`--cli-read-timeout SECONDS` (default {DEFAULT_READ_TIMEOUT_SECS},");
    assert!(readme.contains(&said), "README lacks {said}");
    let limit = |args: &[&str]| {
        let m = command().try_get_matches_from(args).unwrap();
        match Target::from_matches(&m) {
            Target::Socket(_, limit) | Target::Http(_, _, limit) => limit,
            Target::DataDir(..) => panic!("{args:?} works in process"),
        }
    };
    let secs: u64 = DEFAULT_READ_TIMEOUT_SECS.parse().unwrap();
    let line = ["kmscks", "--socket", "/s", "kms", "list-keys"];
    assert_eq!(limit(&line), Some(Duration::from_secs(secs)));
    let line = [
        "kmscks",
        "--endpoint-url",
        "http://127.0.0.1:1",
        "kms",
        "list-keys",
    ];
    let line = [&line[..], &["--cli-read-timeout", "7"]].concat();
    assert_eq!(limit(&line), Some(Duration::from_secs(7)));
    let line = ["kmscks", "--cli-read-timeout", "0", "kms", "list-keys"];
    assert_eq!(limit(&line), None, "0 waits for as long as it takes");
}
