//! Identity over the socket: a client running as another uid (under `setpriv`) is the principal
//! `arn:aws:iam::<account>:user/uid-<N>`; it is denied by the default key policy, allowed what
//! a policy statement grants it and nothing more, and refused cluster administration and fault
//! injection. The socket keeps mode 0660 and is given group 1001 (`socket_gid`), so that uid
//! 1001 with gid 1001 may connect while uid 1002 (another group) cannot connect at all: the file
//! mode decides who reaches the daemon, key policies decide what each uid may do.
//!
//! A grant lets another uid use a key the key policy keeps from it, until it is retired or
//! revoked.
//!
//! The client is this test binary itself, re-run with `--ignored --exact helper_client` and its
//! instructions in environment variables.

mod daemon_support;
mod support;

use std::process::Command;

use daemon_support::{Raw, TestDaemon};
use support::Need;

use kmscks::api::hsm::Fault;
use kmscks::api::hsm::{CreateClusterRequest, DescribeClustersRequest, InjectFaultRequest};
use kmscks::api::kms::*;
use kmscks::ops::{Request, Response};
use kmscks::secret::SecretBytes;

const SOCKET_ENV: &str = "KMSCKS_HELPER_SOCKET";
const ACTION_ENV: &str = "KMSCKS_HELPER_ACTION";
const ARG_ENV: &str = "KMSCKS_HELPER_ARG";

/// The client, run as another uid: performs one action and prints `RESULT <outcome>`.
#[test]
#[ignore = "a helper: run by the identity test under setpriv"]
fn helper_client() {
    let socket = std::env::var(SOCKET_ENV).expect("run by the identity test");
    let action = std::env::var(ACTION_ENV).unwrap();
    let arg = std::env::var(ARG_ENV).unwrap_or_default();
    let stream = match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            println!("RESULT connect-denied");
            return;
        }
        Err(e) => panic!("connect: {e}"),
    };
    drop(stream);
    let mut c = Raw::connect(std::path::Path::new(&socket));
    let req = match action.as_str() {
        "encrypt" => Request::Encrypt(EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: SecretBytes::new(b"from another uid".to_vec()),
            ..Default::default()
        }),
        "decrypt" => Request::Decrypt(DecryptRequest {
            ciphertext_blob: hex_decode(&arg),
            ..Default::default()
        }),
        "retire-grant" => Request::RetireGrant(RetireGrantRequest {
            grant_token: Some(arg),
            ..Default::default()
        }),
        "create-cluster" => Request::CreateCluster(CreateClusterRequest::default()),
        "describe-clusters" => Request::DescribeClusters(DescribeClustersRequest::default()),
        "inject-fault" => Request::InjectFault(InjectFaultRequest {
            cluster_id: arg,
            fault: Fault::NetworkDown,
        }),
        other => panic!("unknown action {other}"),
    };
    match c.call(&req) {
        Ok(_) => println!("RESULT ok"),
        Err(e) => println!("RESULT {} {}", e.aws_name(), e.message()),
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs the helper as `uid`:`uid` and returns its outcome line.
fn as_uid(uid: u32, socket: &std::path::Path, action: &str, arg: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            "helper_client",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SOCKET_ENV, socket)
        .env(ACTION_ENV, action)
        .env(ARG_ENV, arg)
        .output()
        .expect("setpriv runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper as uid {uid} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no RESULT line: {stdout}"))
        .to_owned()
}

/// A bootstrapped daemon whose socket the helper's uid can reach (group 1001, mode 0660),
/// root's connection to it, and alias/demo's metadata; `None` (skipped, saying why) without
/// root or `setpriv`, which switching uid and giving the socket another group both need.
fn shared_daemon() -> Option<(TestDaemon, Raw, KeyMetadata)> {
    if !support::runnable(&[Need::Root, Need::Tool("setpriv")]) {
        return None;
    }
    let d = TestDaemon::start(|c| {
        c.bootstrap = true;
        c.socket_mode = 0o660;
        c.socket_gid = Some(1001);
    });
    let mut root = d.connect();
    let key = expect!(
        root.call(&Request::DescribeKey(KeyIdRequest {
            key_id: "alias/demo".into(),
            ..Default::default()
        })),
        Response::DescribeKey
    )
    .key_metadata;
    Some((d, root, key))
}

#[test]
fn another_uid_gets_what_key_policies_grant_and_no_cluster_admin() {
    let Some((d, mut root, key)) = shared_daemon() else {
        return;
    };
    let cluster_id = expect!(
        root.call(&Request::DescribeClusters(
            DescribeClustersRequest::default()
        )),
        Response::DescribeClusters
    )
    .clusters[0]
        .cluster_id
        .to_string();
    let ct = expect!(
        root.call(&Request::Encrypt(EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: SecretBytes::new(b"root's secret".to_vec()),
            ..Default::default()
        })),
        Response::Encrypt
    );
    let ct_hex = kmscks::types::hex::encode(&ct.ciphertext_blob);

    // Default policy: the account root only.
    let out = as_uid(1001, &d.socket, "encrypt", "");
    assert!(out.starts_with("AccessDeniedException"), "{out}");
    assert!(
        out.contains("uid-1001"),
        "the message names the principal: {out}"
    );
    // Another group cannot even connect to the 0660 socket.
    assert_eq!(as_uid(1002, &d.socket, "encrypt", ""), "connect-denied");

    // Grant uid 1001 Encrypt (and only that) on the key.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "uid1001", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:user/uid-1001"},
             "Action": "kms:Encrypt", "Resource": "*"}
        ]
    });
    expect!(
        root.call(&Request::PutKeyPolicy(PutKeyPolicyRequest {
            key_id: key.key_id.clone(),
            policy_name: Some("default".into()),
            policy: policy.to_string(),
            bypass_policy_lockout_safety_check: false,
        })),
        Response::PutKeyPolicy
    );
    assert_eq!(as_uid(1001, &d.socket, "encrypt", ""), "ok");
    let out = as_uid(1001, &d.socket, "decrypt", &ct_hex);
    assert!(out.starts_with("AccessDeniedException"), "{out}");

    // Cluster administration and fault injection: the daemon's uid only.
    for (action, arg) in [
        ("create-cluster", ""),
        ("describe-clusters", ""),
        ("inject-fault", cluster_id.as_str()),
    ] {
        let out = as_uid(1001, &d.socket, action, arg);
        assert!(out.starts_with("AccessDeniedException"), "{action}: {out}");
    }
    // Root still can.
    expect!(
        root.call(&Request::Decrypt(DecryptRequest {
            ciphertext_blob: ct.ciphertext_blob,
            ..Default::default()
        })),
        Response::Decrypt
    );
}

#[test]
fn a_grant_lets_another_uid_use_a_key_until_it_is_revoked_or_retired() {
    let Some((d, mut root, key)) = shared_daemon() else {
        return;
    };
    let key_id = key.key_id;
    let ct = expect!(
        root.call(&Request::Encrypt(EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: SecretBytes::new(b"root's secret".to_vec()),
            ..Default::default()
        })),
        Response::Encrypt
    );
    let ct_hex = kmscks::types::hex::encode(&ct.ciphertext_blob);
    let out = as_uid(1001, &d.socket, "decrypt", &ct_hex);
    assert!(out.starts_with("AccessDeniedException"), "{out}");

    let create = |ops: Vec<GrantOperation>, root: &mut Raw| {
        expect!(
            root.call(&Request::CreateGrant(CreateGrantRequest {
                key_id: key_id.clone(),
                grantee_principal: "arn:aws:iam::111122223333:user/uid-1001".into(),
                operations: ops,
                ..Default::default()
            })),
            Response::CreateGrant
        )
    };
    // Granted Decrypt: uid 1001 decrypts, and still may not encrypt.
    let g = create(vec![GrantOperation::Decrypt], &mut root);
    assert_eq!(as_uid(1001, &d.socket, "decrypt", &ct_hex), "ok");
    let out = as_uid(1001, &d.socket, "encrypt", "");
    assert!(out.starts_with("AccessDeniedException"), "{out}");
    // Revoked: refused again from the next request on.
    expect!(
        root.call(&Request::RevokeGrant(RevokeGrantRequest {
            key_id: key_id.clone(),
            grant_id: g.grant_id,
            dry_run: false,
        })),
        Response::RevokeGrant
    );
    let out = as_uid(1001, &d.socket, "decrypt", &ct_hex);
    assert!(out.starts_with("AccessDeniedException"), "{out}");

    // A grant its grantee may retire: uid 1001 retires it with its token, and is refused after.
    let g = create(
        vec![GrantOperation::Decrypt, GrantOperation::RetireGrant],
        &mut root,
    );
    assert_eq!(as_uid(1001, &d.socket, "decrypt", &ct_hex), "ok");
    assert_eq!(
        as_uid(1001, &d.socket, "retire-grant", &g.grant_token),
        "ok"
    );
    let out = as_uid(1001, &d.socket, "decrypt", &ct_hex);
    assert!(out.starts_with("AccessDeniedException"), "{out}");
}
