//! The daemon end to end over its Unix socket: every operation of the table reachable, the
//! four-step getting-started flow, pipelined requests answered by id, bootstrap, and the
//! `kmscksd` binary's life cycle (SIGTERM, stale socket, a second daemon on a live socket).

mod daemon_support;
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use daemon_support::{open_tempdir, Raw, TestDaemon};
use kmscks::api::hsm::*;
use kmscks::api::kms::*;
use kmscks::ops::{Op, Request, Response};
use kmscks::secret::{Password, SecretBytes};
use kmscks::types::{HsmUserRole, Origin};
use kmscks::ErrorKind;
use serde_json::json;

/// A request of `op` with every member empty (built from the table, not a second list): members
/// without a serde default get the first of "", 0, false, [], {} that their type accepts.
fn empty_request(op: Op) -> Request {
    let mut fields = serde_json::Map::new();
    let candidates = [json!(""), json!(0), json!(false), json!([]), json!({})];
    'fill: for _ in 0..20 {
        let doc = json!({ op.name(): fields.clone() });
        let e = match serde_json::from_value::<Request>(doc) {
            Ok(r) => return r,
            Err(e) => e.to_string(),
        };
        let Some(missing) = e
            .split('`')
            .nth(1)
            .filter(|_| e.starts_with("missing field"))
        else {
            break;
        };
        for value in &candidates {
            let mut trial = fields.clone();
            trial.insert(missing.to_owned(), value.clone());
            match serde_json::from_value::<Request>(json!({ op.name(): trial.clone() })) {
                Ok(_) => {
                    fields = trial;
                    continue 'fill;
                }
                Err(e2) if e2.to_string().starts_with("missing field") => {
                    fields = trial;
                    continue 'fill;
                }
                Err(e2) => {
                    // An enum member: take its first variant.
                    let e2 = e2.to_string();
                    // serde lists them as "expected `A`", "expected `A` or `B`" or
                    // "expected one of `A`, `B`, …".
                    if let Some(list) = e2.split("expected ").nth(1) {
                        // Try each variant: a unit variant parses from its name alone.
                        for variant in list.split('`').skip(1).step_by(2) {
                            let mut trial = fields.clone();
                            trial.insert(missing.to_owned(), json!(variant));
                            let doc = json!({ op.name(): trial.clone() });
                            let progress = match serde_json::from_value::<Request>(doc) {
                                Ok(_) => true,
                                Err(e3) => e3.to_string().starts_with("missing field"),
                            };
                            if progress {
                                fields = trial;
                                continue 'fill;
                            }
                        }
                    }
                }
            }
        }
        break;
    }
    panic!(
        "cannot build an empty {} request from {fields:?}",
        op.name()
    )
}

#[test]
fn every_operation_is_reachable() {
    let d = TestDaemon::start(|c| c.bootstrap = true);
    let mut c = d.connect();
    for &op in Op::ALL {
        let req = empty_request(op);
        let id = c.send(&req);
        let reply = c
            .recv()
            .unwrap_or_else(|| panic!("{}: connection closed", op.name()));
        assert_eq!(reply.header.request_id, id, "{}", op.name());
        assert_eq!(reply.header.op, op.code(), "{}", op.name());
        match reply.result {
            Ok(resp) => assert_eq!(resp.op(), op),
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    ErrorKind::UnknownOperationException | ErrorKind::SerializationException
                ),
                "{} not reachable: {e}",
                op.name()
            ),
        }
    }
    // And the connection is still good after all that.
    let r = c.call(&Request::ListKeys(ListRequest::default()));
    assert!(!expect!(r, Response::ListKeys).keys.is_empty());
}

#[test]
fn getting_started_over_the_socket() {
    let d = TestDaemon::start(|_| {});
    let mut c = d.connect();
    // 1. An ACTIVE cluster with two HSMs in two zones, and kmsuser.
    let cluster = expect!(
        c.call(&Request::CreateCluster(CreateClusterRequest::default())),
        Response::CreateCluster
    )
    .cluster;
    let cluster_id = cluster.cluster_id.to_string();
    for zone in cluster.subnet_mapping.keys().take(2) {
        expect!(
            c.call(&Request::CreateHsm(CreateHsmRequest {
                cluster_id: cluster_id.clone(),
                availability_zone: zone.clone(),
                region: None,
            })),
            Response::CreateHsm
        );
    }
    let init = expect!(
        c.call(&Request::InitializeClusterWithNewCa(ClusterIdRequest {
            cluster_id: cluster_id.clone(),
            region: None,
        })),
        Response::InitializeClusterWithNewCa
    );
    let anchor = init.trust_anchor.expect("a trust anchor");
    expect!(
        c.call(&Request::CreateUser(UserRequest {
            cluster_id: cluster_id.clone(),
            username: "kmsuser".into(),
            role: Some(HsmUserRole::CryptoUser),
            password: Password::new("kmsuserPassw0rd"),
        })),
        Response::CreateUser
    );
    // 2. The store.
    let store_id = expect!(
        c.call(&Request::CreateCustomKeyStore(
            CreateCustomKeyStoreRequest {
                custom_key_store_name: "ExampleKeyStore".into(),
                cloud_hsm_cluster_id: Some(cluster_id.clone()),
                trust_anchor_certificate: Some(anchor),
                key_store_password: Some(Password::new("kmsuserPassw0rd")),
                custom_key_store_type: None,
            }
        )),
        Response::CreateCustomKeyStore
    )
    .custom_key_store_id;
    // 3. Connect and wait (the wait runs off the event loop).
    expect!(
        c.call(&Request::ConnectCustomKeyStore(CustomKeyStoreIdRequest {
            custom_key_store_id: store_id.clone(),
        })),
        Response::ConnectCustomKeyStore
    );
    let entry = expect!(
        c.call(&Request::WaitForConnection(WaitForConnectionRequest {
            custom_key_store_id: store_id.clone(),
            timeout_millis: 30_000,
        })),
        Response::WaitForConnection
    );
    assert_eq!(entry.custom_key_store_id, store_id);
    // 4. A key in the store, used.
    let key = expect!(
        c.call(&Request::CreateKey(CreateKeyRequest {
            custom_key_store_id: Some(store_id.clone()),
            origin: Some(Origin::AwsCloudhsm),
            ..Default::default()
        })),
        Response::CreateKey
    )
    .key_metadata;
    let ct = expect!(
        c.call(&Request::Encrypt(EncryptRequest {
            key_id: key.arn.clone(),
            plaintext: SecretBytes::new(b"over the socket".to_vec()),
            ..Default::default()
        })),
        Response::Encrypt
    );
    let pt = expect!(
        c.call(&Request::Decrypt(DecryptRequest {
            ciphertext_blob: ct.ciphertext_blob,
            ..Default::default()
        })),
        Response::Decrypt
    );
    assert_eq!(pt.plaintext.expose(), b"over the socket");
    // AWS errors carry the exception name and message.
    let e = c
        .call(&Request::DescribeCustomKeyStores(
            DescribeCustomKeyStoresRequest {
                custom_key_store_id: Some("cks-0000000000000000f".into()),
                ..Default::default()
            },
        ))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CustomKeyStoreNotFoundException);
    assert!(!e.message().is_empty());
}

#[test]
fn pipelined_requests_are_answered_by_id() {
    let d = TestDaemon::start(|c| c.bootstrap = true);
    let mut c = d.connect();
    // Many requests in flight, of mixed kinds, in one stream: the batcher groups runs of one
    // kind, the rest go one by one, and every reply carries its request's id.
    let mut expected: HashMap<u64, (Op, Vec<u8>)> = HashMap::new();
    let mut frames = Vec::new();
    for i in 0..300u64 {
        let id = 1000 + i;
        let text = format!("message {i}").into_bytes();
        let req = match i % 7 {
            0..=3 => Request::Encrypt(EncryptRequest {
                key_id: "alias/demo".into(),
                plaintext: SecretBytes::new(text.clone()),
                ..Default::default()
            }),
            4 | 5 => Request::GenerateDataKey(GenerateDataKeyRequest {
                key_id: "alias/demo".into(),
                number_of_bytes: Some(32),
                ..Default::default()
            }),
            _ => Request::DescribeKey(KeyIdRequest {
                key_id: "alias/demo".into(),
                ..Default::default()
            }),
        };
        expected.insert(id, (req.op(), text));
        kmscks::protocol::encode_request(&mut frames, id, &req);
    }
    // A bad item in a batch fails alone.
    let bad = Request::Encrypt(EncryptRequest {
        key_id: "alias/missing".into(),
        plaintext: SecretBytes::new(b"x".to_vec()),
        ..Default::default()
    });
    kmscks::protocol::encode_request(&mut frames, 5000, &bad);
    std::io::Write::write_all(&mut c.stream, &frames).unwrap();

    let mut ciphertexts = Vec::new();
    let mut seen = 0;
    while seen < 301 {
        let reply = c.recv().expect("every request answered");
        seen += 1;
        let id = reply.header.request_id;
        if id == 5000 {
            assert_eq!(
                reply.result.unwrap_err().kind(),
                ErrorKind::NotFoundException
            );
            continue;
        }
        let (op, text) = expected
            .remove(&id)
            .unwrap_or_else(|| panic!("unknown or repeated id {id}"));
        assert_eq!(reply.header.op, op.code());
        match reply.result.unwrap() {
            Response::Encrypt(r) => ciphertexts.push((r.ciphertext_blob, text)),
            Response::GenerateDataKey(r) => {
                assert_eq!(r.plaintext.expect("a data key").expose().len(), 32)
            }
            Response::DescribeKey(r) => assert!(r.key_metadata.enabled),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(expected.is_empty());
    // The ciphertexts decrypt to what was sent (pipelined again).
    for (blob, _) in &ciphertexts {
        c.send(&Request::Decrypt(DecryptRequest {
            ciphertext_blob: blob.clone(),
            ..Default::default()
        }));
    }
    for (_, text) in &ciphertexts {
        let r = expect!(c.recv().unwrap().result, Response::Decrypt);
        assert_eq!(r.plaintext.expose(), &text[..]);
    }
}

#[test]
fn a_control_plane_request_off_the_loop_still_comes_before_the_connections_later_frames() {
    let d = TestDaemon::start(|c| c.bootstrap = true);
    let mut c = d.connect();
    let demo = c.call(&Request::DescribeKey(KeyIdRequest {
        key_id: "alias/demo".into(),
        ..Default::default()
    }));
    let demo = expect!(demo, Response::DescribeKey).key_metadata.key_id;
    // In one write: alias changes (run on the control thread) each followed by an Encrypt
    // through the alias (run on the loop). Each Encrypt must see the change before it.
    let mut frames = Vec::new();
    for i in 0..20u64 {
        let alias = format!("alias/ordered-{i}");
        let create = Request::CreateAlias(AliasRequest {
            alias_name: alias.clone(),
            target_key_id: demo.clone(),
        });
        kmscks::protocol::encode_request(&mut frames, 2 * i + 1, &create);
        let encrypt = Request::Encrypt(EncryptRequest {
            key_id: alias,
            plaintext: SecretBytes::new(b"after the alias".to_vec()),
            ..Default::default()
        });
        kmscks::protocol::encode_request(&mut frames, 2 * i + 2, &encrypt);
    }
    std::io::Write::write_all(&mut c.stream, &frames).unwrap();
    for _ in 0..40 {
        let reply = c.recv().expect("every request answered");
        assert!(
            reply.result.is_ok(),
            "request {} failed: {:?}",
            reply.header.request_id,
            reply.result.err()
        );
    }
}

#[test]
fn pipelined_requests_decoded_in_place_and_with_contexts_share_a_batch_and_answer_in_order() {
    let d = TestDaemon::start(|c| c.bootstrap = true);
    let mut c = d.connect();
    let context = |i: u64| {
        let mut ctx = EncryptionContext::new();
        if i % 3 == 1 {
            ctx.insert("item".into(), i.to_string());
        }
        ctx
    };
    // One write: Encrypts without a context (decoded in place), with one (decoded owned), one
    // asking for a dry run and one with a grant token kmscks never issued.
    let mut frames = Vec::new();
    for i in 0..24u64 {
        let encrypt = Request::Encrypt(EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: SecretBytes::new(vec![i as u8; 1 + i as usize]),
            encryption_context: context(i),
            dry_run: i == 5,
            grant_tokens: if i == 8 {
                vec!["not-a-token".into()]
            } else {
                vec![]
            },
            ..Default::default()
        });
        kmscks::protocol::encode_request(&mut frames, 100 + i, &encrypt);
    }
    std::io::Write::write_all(&mut c.stream, &frames).unwrap();
    let mut blobs = Vec::new();
    for i in 0..24u64 {
        let reply = c.recv().expect("every request answered");
        assert_eq!(reply.header.request_id, 100 + i, "answered in order");
        match i {
            5 => assert_eq!(
                reply.result.unwrap_err().kind(),
                ErrorKind::DryRunOperationException
            ),
            8 => assert_eq!(
                reply.result.unwrap_err().kind(),
                ErrorKind::InvalidGrantTokenException
            ),
            _ => blobs.push((i, expect!(reply.result, Response::Encrypt).ciphertext_blob)),
        }
    }
    let mut frames = Vec::new();
    for (i, blob) in &blobs {
        let decrypt = Request::Decrypt(DecryptRequest {
            ciphertext_blob: blob.clone(),
            encryption_context: context(*i),
            ..Default::default()
        });
        kmscks::protocol::encode_request(&mut frames, 200 + i, &decrypt);
    }
    std::io::Write::write_all(&mut c.stream, &frames).unwrap();
    for (i, _) in &blobs {
        let reply = c.recv().expect("every request answered");
        assert_eq!(reply.header.request_id, 200 + i, "answered in order");
        let plain = expect!(reply.result, Response::Decrypt).plaintext;
        assert_eq!(plain.expose(), &vec![*i as u8; 1 + *i as usize][..]);
    }
}

#[test]
fn restart_keeps_the_data_and_bootstrap_is_idempotent() {
    let dir = open_tempdir();
    let data = dir.path().join("data");
    let ct;
    {
        let d = TestDaemon::start(|c| {
            c.bootstrap = true;
            c.data_dir = data.clone();
        });
        let mut c = d.connect();
        ct = expect!(
            c.call(&Request::Encrypt(EncryptRequest {
                key_id: "alias/demo".into(),
                plaintext: SecretBytes::new(b"kept".to_vec()),
                ..Default::default()
            })),
            Response::Encrypt
        );
    }
    let daemon = kmscks::daemon::Daemon::bind(kmscks::daemon::DaemonConfig {
        data_dir: data,
        socket: dir.path().join("again.sock"),
        bootstrap: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        daemon.bootstrap_report(),
        Some(&kmscks::daemon::Bootstrap::AlreadyInitialized)
    );
    let pt = daemon
        .kms()
        .decrypt(&DecryptRequest {
            ciphertext_blob: ct.ciphertext_blob,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(pt.plaintext.expose(), b"kept");
}

/// A spawned kmscksd, with its stdout lines read up to "listening on", answering Hello.
struct Spawned {
    child: Child,
    out: Vec<String>,
}

/// Spawns kmscksd with `args` (which name its `--socket`) and returns once it is ready
/// ([`support::wait_ready`]); fails at once, with its output, if it exits before listening.
fn spawn_daemon(args: &[&str]) -> Spawned {
    let socket = args
        .iter()
        .position(|a| *a == "--socket")
        .and_then(|i| args.get(i + 1))
        .expect("spawn_daemon's args name the socket");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmscksd"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("kmscksd: listening on");
        out.push(line);
        if done {
            break;
        }
    }
    if !out.iter().any(|l| l.starts_with("kmscksd: listening on")) {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        panic!(
            "kmscksd exited ({status}) before listening:\n{}\n{err}",
            out.join("\n")
        );
    }
    support::wait_ready(Path::new(socket), support::READY_TIMEOUT);
    Spawned { child, out }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn binary_bootstraps_serves_and_stops_on_sigterm() {
    let dir = open_tempdir();
    let socket = dir.path().join("run/kmscks.sock");
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
        "--bootstrap",
    ];
    let mut d = spawn_daemon(&args);
    let printed = d.out.join("\n");
    assert!(printed.contains("alias/demo"), "{printed}");
    assert!(
        printed.contains("kmscks kms encrypt --key-id alias/demo"),
        "{printed}"
    );
    assert!(printed.contains(socket.to_str().unwrap()), "{printed}");
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(&socket).unwrap();
        assert!(meta.file_type().is_socket());
        // The default mode: the daemon's user only; the directory it created is private too.
        assert_eq!(meta.mode() & 0o777, 0o600);
        let run = std::fs::metadata(dir.path().join("run")).unwrap();
        assert_eq!(run.mode() & 0o777, 0o700);
    }
    let mut c = Raw::connect(&socket);
    expect!(
        c.call(&Request::Encrypt(EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: SecretBytes::new(b"hi".to_vec()),
            ..Default::default()
        })),
        Response::Encrypt
    );

    // A second daemon on the live socket refuses to start and leaves it alone.
    let other_data = dir.path().join("other");
    let second = Command::new(env!("CARGO_BIN_EXE_kmscksd"))
        .args([
            "--data-dir",
            other_data.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already listening"), "{err}");
    assert!(socket.exists());
    expect!(
        c.call(&Request::ListKeys(ListRequest::default())),
        Response::ListKeys
    );

    // SIGTERM: clean exit, socket removed.
    sigterm(&d.child);
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket file was left behind");
    assert!(c.closed());

    // Restart on the same data: bootstrap does nothing, says so, the key is still there.
    let mut d = spawn_daemon(&args);
    let printed = d.out.join("\n");
    assert!(printed.contains("nothing created"), "{printed}");
    let mut c = Raw::connect(&socket);
    let keys = expect!(
        c.call(&Request::ListKeys(ListRequest::default())),
        Response::ListKeys
    );
    assert_eq!(keys.keys.len(), 1);
    drop(c);
    sigterm(&d.child);
    assert!(d.child.wait().unwrap().success());
}

#[test]
fn binary_replaces_a_stale_socket_file() {
    let dir = open_tempdir();
    let socket = dir.path().join("kmscks.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "a stale socket file to start with");
    let mut d = spawn_daemon(&[
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
    ]);
    let mut c = Raw::connect(&socket);
    expect!(
        c.call(&Request::ListKeys(ListRequest::default())),
        Response::ListKeys
    );
    sigterm(&d.child);
    assert!(d.child.wait().unwrap().success());
    assert!(!socket.exists());
}

#[test]
fn binary_refuses_a_bad_config_file() {
    let dir = open_tempdir();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "sockett = \"/tmp/x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmscksd"))
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sockett") && err.contains("bad.toml"), "{err}");
}

#[test]
fn hello_reports_version_limits_and_principal() {
    let d = TestDaemon::start(|_| {});
    let mut c = d.connect();
    let mut out = Vec::new();
    kmscks::protocol::encode_hello(
        &mut out,
        7,
        &kmscks::protocol::Hello {
            version: kmscks::protocol::VERSION,
            client: "daemon_e2e".into(),
        },
    );
    std::io::Write::write_all(&mut c.stream, &out).unwrap();
    let (h, body) = c.read_frame().unwrap();
    assert_eq!(h.request_id, 7);
    let reply = kmscks::protocol::decode_hello_reply(&h, &body)
        .unwrap()
        .unwrap();
    assert_eq!(reply.version, kmscks::protocol::VERSION);
    assert_eq!(reply.max_body, kmscks::protocol::MAX_BODY);
    assert!(reply.max_in_flight > 0);
    assert_eq!(reply.principal, "arn:aws:iam::111122223333:root");
}

/// A DescribeCustomKeyStores call over `c`.
fn describe_stores_over(c: &mut Raw) -> Result<Response, kmscks::KmsError> {
    c.call(&Request::DescribeCustomKeyStores(
        DescribeCustomKeyStoresRequest::default(),
    ))
}

#[test]
fn emulate_aws_quotas_in_the_config_file_reaches_the_service() {
    // A rate of 0 throttles every request it covers: no timing is involved.
    let quotas = kmscks::daemon::DaemonConfig::from_toml(
        "emulate_aws_quotas = true\nquota_key_store_api_rate = 0\n",
        "quotas.toml",
    )
    .unwrap();
    let d = TestDaemon::start(|c| {
        *c = kmscks::daemon::DaemonConfig {
            data_dir: c.data_dir.clone(),
            socket: c.socket.clone(),
            ..quotas
        }
    });
    let e = describe_stores_over(&mut d.connect()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ThrottlingException);
    assert_eq!(e.message(), "Rate exceeded");
    // Other operations are not covered by that rate.
    expect!(
        d.connect().call(&Request::ListKeys(ListRequest::default())),
        Response::ListKeys
    );

    // Without emulation (the default) the same calls are never throttled.
    let d = TestDaemon::start(|_| {});
    let mut c = d.connect();
    for _ in 0..20 {
        expect!(
            describe_stores_over(&mut c),
            Response::DescribeCustomKeyStores
        );
    }
}

#[test]
fn binary_flag_emulate_aws_quotas_throttles() {
    let dir = open_tempdir();
    let socket = dir.path().join("kmscks.sock");
    let data = dir.path().join("data");
    let mut d = spawn_daemon(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
        "--emulate-aws-quotas",
        "--quota-key-store-api-rate",
        "0",
    ]);
    let mut c = Raw::connect(&socket);
    let e = describe_stores_over(&mut c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ThrottlingException);
    drop(c);
    sigterm(&d.child);
    assert!(d.child.wait().unwrap().success());
}

#[test]
fn a_client_whose_pooled_connections_a_stopped_daemon_closed_sends_its_next_calls_on_new_ones() {
    use kmscks::ops::Backend as _;
    let mut d = TestDaemon::start(|_| {});
    let client = kmscks::Client::connect(&d.socket).unwrap();
    let list = || client.call(&Request::ListKeys(Default::default()));
    // Several threads at once leave several connections in the client's pool.
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                start.wait();
                for _ in 0..50 {
                    list().unwrap();
                }
            });
        }
    });
    d.stop().unwrap();
    // Down: the pooled connections are found closed before anything is sent on them, so the
    // call says nothing listens (it did not run) rather than that its outcome is unknown.
    let e = list().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DependencyTimeoutException, "{e}");
    assert!(e.message().contains("cannot connect"), "{e}");
    d.restart(|_| {});
    for i in 0..20 {
        list().unwrap_or_else(|e| panic!("call {i} after the restart: {e}"));
    }
    // Stopped and started again with no call between: the pool holds connections the old
    // daemon closed, and still no call fails.
    d.stop().unwrap();
    d.restart(|_| {});
    for i in 0..20 {
        list().unwrap_or_else(|e| panic!("call {i} after the second restart: {e}"));
    }
}
