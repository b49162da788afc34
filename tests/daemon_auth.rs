//! Trust between the client and the daemon, tried as a second local user would (issue 9, items 1
//! and 3): a squatter on the socket path gets nothing and is refused; a daemon of another uid is
//! refused unless that uid is configured; the per-user default socket directory is refused when it
//! is not private, and a client finds a daemon in a later default directory; GenerateRandom and
//! WaitForConnection are refused to other uids; a grant lets another uid use a key until it is
//! revoked; a connection whose first frame is not a Hello is refused and closed.
//!
//! The second uid comes from `setpriv` (as root); those tests skip with a printed reason
//! elsewhere. The processes run as that uid are this test binary itself (re-run with
//! `--ignored --exact <helper>` and instructions in environment variables) or `kmscksd`.

mod daemon_support;
mod support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use daemon_support::{Raw, TestDaemon};
use support::Need;

use kmscks::api::kms::*;
use kmscks::ops::{Backend, Request, Response};
use kmscks::protocol::{HEADER_LEN, MAGIC, VERSION};
use kmscks::secret::SecretBytes;
use kmscks::{Client, ErrorKind, Kms, KmsConfig};

/// The second uid (and gid): `nobody` on most systems.
const OTHER: u32 = 65534;

const SOCKET_ENV: &str = "KMSCKS_HELPER_SOCKET";
const ACTION_ENV: &str = "KMSCKS_HELPER_ACTION";
const ARG_ENV: &str = "KMSCKS_HELPER_ARG";

// ---- helpers run as another uid ----------------------------------------------------------------

/// The squatter, run as another uid: binds the socket path, says `LISTENING`, then for each of
/// `ARG` connections prints `RECEIVED <bytes>` once the client hangs up (or after 5 s).
#[test]
#[ignore = "a helper: run by the squatter test under setpriv"]
fn helper_squatter() {
    let socket = std::env::var(SOCKET_ENV).expect("run by the squatter test");
    let n: usize = std::env::var(ARG_ENV).unwrap().parse().unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    println!("LISTENING");
    for _ in 0..n {
        let (mut s, _) = listener.accept().unwrap();
        // A client that talks waits for an answer that never comes: stop listening after a
        // while, so that such a client (a regression) fails instead of hanging.
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        println!("RECEIVED {}", got.len());
    }
}

/// A client, run as another uid: performs one action over the raw protocol and prints
/// `RESULT <outcome>`.
#[test]
#[ignore = "a helper: run by the authorization tests under setpriv"]
fn helper_client() {
    let socket = std::env::var(SOCKET_ENV).expect("run by an authorization test");
    let action = std::env::var(ACTION_ENV).unwrap();
    let arg = std::env::var(ARG_ENV).unwrap_or_default();
    let mut c = Raw::connect(Path::new(&socket));
    let req = match action.as_str() {
        "generate-random" => Request::GenerateRandom(GenerateRandomRequest {
            number_of_bytes: Some(1024),
            ..Default::default()
        }),
        "wait-for-connection" => Request::WaitForConnection(WaitForConnectionRequest {
            custom_key_store_id: arg,
            timeout_millis: 0,
        }),
        "describe-stores" => {
            Request::DescribeCustomKeyStores(DescribeCustomKeyStoresRequest::default())
        }
        "encrypt" => Request::Encrypt(EncryptRequest {
            key_id: arg,
            plaintext: SecretBytes::from_slice(b"through a grant"),
            ..Default::default()
        }),
        other => panic!("unknown action {other}"),
    };
    match c.call(&req) {
        Ok(_) => println!("RESULT ok"),
        Err(e) => println!("RESULT {} {}", e.aws_name(), e.message()),
    }
}

/// `setpriv` arguments that run a command as [`OTHER`] with no supplementary groups.
fn as_other() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={OTHER}"),
        &format!("--regid={OTHER}"),
        "--clear-groups",
    ]);
    cmd
}

/// Runs a helper of this binary as [`OTHER`] and returns the child (stdout piped).
fn helper_as_other(helper: &str, socket: &Path, action: &str, arg: &str) -> Child {
    as_other()
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            helper,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SOCKET_ENV, socket)
        .env(ACTION_ENV, action)
        .env(ARG_ENV, arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv runs")
}

/// Runs [`helper_client`] as [`OTHER`]; returns its outcome line.
fn client_as_other(socket: &Path, action: &str, arg: &str) -> String {
    let out = helper_as_other("helper_client", socket, action, arg)
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper as uid {OTHER} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no RESULT line: {stdout}"))
        .to_owned()
}

/// A directory (in a temp dir others can traverse) owned by [`OTHER`], mode 0700.
fn dir_of_other(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(OTHER), Some(OTHER)).unwrap();
    dir
}

/// The `kmscks` CLI with no socket configured by the environment.
fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmscks"));
    cmd.env_remove("KMSCKS_SOCKET")
        .env_remove("KMSCKS_DAEMON_UID")
        .env_remove("RUST_LOG");
    cmd
}

/// Waits for a spawned `kmscksd` to answer Hello on `socket`; panics with its stderr if it
/// exits first.
fn wait_for_kmscksd(child: &mut Child, socket: &Path) {
    support::wait_until(
        &format!("kmscksd to listen on {}", socket.display()),
        support::READY_TIMEOUT,
        || {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(e) = child.stderr.as_mut() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("kmscksd exited ({status}) before listening: {err}");
            }
            socket.exists()
        },
    );
    support::wait_ready(socket, support::READY_TIMEOUT);
}

/// A process this test started, killed and reaped when the test ends (also on a failed
/// assertion, so that no helper outlives its test).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---- item 1: the client authenticates the daemon ---------------------------------------------

#[test]
fn a_squatter_of_another_uid_on_the_socket_path_receives_nothing_and_is_refused() {
    if !support::runnable(&[Need::Root, Need::Tool("setpriv")]) {
        return;
    }
    let tmp = daemon_support::open_tempdir();
    let socket = dir_of_other(tmp.path(), "theirs").join("kmscks.sock");
    // Two connections: the library client's, then the CLI's.
    let mut squatter = Reaped(helper_as_other("helper_squatter", &socket, "", "2"));
    let mut lines = BufReader::new(squatter.0.stdout.take().unwrap()).lines();
    // The next word the squatter prints after `key` (the test harness prints around it).
    let mut next = move |key: &str| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some((_, rest)) = line.split_once(key) {
                return rest.trim().to_owned();
            }
        }
        panic!("the squatter ended without printing {key}");
    };
    next("LISTENING");

    // Root's client refuses before sending a byte.
    let e = Client::connect(&socket).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UntrustedSocketException, "{e}");
    let m = e.message();
    for part in [
        socket.to_str().unwrap(),
        &format!("runs as uid {OTHER}"),
        "trusts only uid 0 (this client's)",
        &format!("socket file's owner is uid {OTHER}"),
    ] {
        assert!(m.contains(part), "missing {part:?} in: {m}");
    }
    assert_eq!(next("RECEIVED"), "0", "the squatter received bytes");

    // The CLI, with a plaintext on its command line, refuses the same way.
    let out = cli()
        .args([
            "kms",
            "encrypt",
            "--socket",
            socket.to_str().unwrap(),
            "--key-id",
            "alias/demo",
            "--plaintext",
            "cm9vdCdzIHNlY3JldA==", // base64 of "root's secret"
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains(&format!("runs as uid {OTHER}")), "{err}");
    assert!(!err.contains("is kmscksd running"), "{err}");
    assert_eq!(next("RECEIVED"), "0", "the squatter received bytes");
    assert!(squatter.0.wait().unwrap().success());
}

#[test]
fn a_daemon_of_another_uid_is_refused_unless_its_uid_is_configured() {
    if !support::runnable(&[Need::Root, Need::Tool("setpriv")]) {
        return;
    }
    let tmp = daemon_support::open_tempdir();
    let theirs = dir_of_other(tmp.path(), "theirs");
    let socket = theirs.join("kmscks.sock");
    let mut daemon = Reaped(
        as_other()
            .arg(env!("CARGO_BIN_EXE_kmscksd"))
            .args(["--data-dir", theirs.join("data").to_str().unwrap()])
            .args(["--socket", socket.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv runs kmscksd"),
    );
    wait_for_kmscksd(&mut daemon.0, &socket);

    // The real daemon, but not of a uid this client trusts.
    let e = Client::connect(&socket).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UntrustedSocketException, "{e}");
    assert!(e.message().contains(&format!("runs as uid {OTHER}")), "{e}");
    assert!(
        e.message().contains(&format!("KMSCKS_DAEMON_UID={OTHER}")),
        "{e}"
    );
    // Configured on the builder: served.
    let c = Client::builder(&socket)
        .daemon_uid(OTHER)
        .connect()
        .unwrap();
    assert!(matches!(
        c.call(&Request::ListKeys(ListRequest::default())),
        Ok(Response::ListKeys(_))
    ));
    // The CLI: refused, then served with KMSCKS_DAEMON_UID.
    let list = |uid: Option<u32>| {
        let mut cmd = cli();
        cmd.args(["kms", "list-keys", "--socket", socket.to_str().unwrap()]);
        if let Some(uid) = uid {
            cmd.env("KMSCKS_DAEMON_UID", uid.to_string());
        }
        cmd.output().unwrap()
    };
    let refused = list(None);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(255), "{err}");
    assert!(err.contains(&format!("runs as uid {OTHER}")), "{err}");
    let served = list(Some(OTHER));
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(String::from_utf8_lossy(&served.stdout).contains("Keys"));
    // A configured uid that is not a number is a clear error, not "trust nobody extra".
    let mut bad = cli();
    bad.args(["kms", "list-keys", "--socket", socket.to_str().unwrap()])
        .env("KMSCKS_DAEMON_UID", "nobody");
    let out = bad.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KMSCKS_DAEMON_UID='nobody'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(daemon);
}

/// `kmscksd` on the default socket with `XDG_RUNTIME_DIR=runtime`; returns the child.
fn kmscksd_on_default_socket(runtime: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmscksd"));
    cmd.args(["--data-dir", data.to_str().unwrap()])
        .env("XDG_RUNTIME_DIR", runtime)
        .env_remove("KMSCKS_SOCKET")
        .env_remove("RUST_LOG");
    cmd
}

#[test]
fn the_default_socket_lives_in_a_private_directory_that_daemon_and_client_create_and_check() {
    let tmp = daemon_support::open_tempdir();
    let runtime = tmp.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = runtime.join("kmscks");
    let socket = dir.join("kmscks.sock");
    let mut daemon = Reaped(
        kmscksd_on_default_socket(&runtime, &tmp.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_kmscksd(&mut daemon.0, &socket);
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&socket).unwrap().mode() & 0o777, 0o600);
    let out = cli()
        .args(["kms", "list-keys"])
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Opened to the group while the daemon runs: the client now refuses it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = cli()
        .args(["kms", "list-keys"])
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains(dir.to_str().unwrap()), "{err}");
    assert!(err.contains("mode 0o770"), "{err}");
    drop(daemon);
}

#[test]
fn a_client_in_a_session_finds_a_daemon_started_without_the_sessions_runtime_directory() {
    // Without `XDG_RUNTIME_DIR` the daemon would take logind's `/run/user/<uid>` when there is
    // one of ours; the home directory is the case here, so that directory must be absent.
    let Some(euid) = support::effective_uid() else {
        eprintln!("skipped: cannot read the effective uid");
        return;
    };
    let run_user = format!("/run/user/{euid}");
    if Path::new(&run_user).exists() {
        eprintln!("skipped: {run_user} exists, so a daemon without XDG_RUNTIME_DIR listens there");
        return;
    }
    let tmp = daemon_support::open_tempdir();
    let home = tmp.path().join("home");
    let session = tmp.path().join("session");
    std::fs::create_dir(&home).unwrap();
    std::fs::create_dir(&session).unwrap();
    let socket = home.join(".local/state/kmscks/kmscks.sock");
    let mut daemon = Reaped(
        kmscksd_on_default_socket(&session, &tmp.path().join("data"))
            .env_remove("XDG_RUNTIME_DIR")
            .env("HOME", &home)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_kmscksd(&mut daemon.0, &socket);
    // The client's session has the variable; nothing listens under it.
    let out = cli()
        .args(["kms", "list-keys"])
        .env("XDG_RUNTIME_DIR", &session)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the client did not find the daemon in {}: {}",
        socket.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!session.join("kmscks").exists());
    drop(daemon);
}

#[test]
fn a_group_writable_default_socket_directory_is_refused_by_the_daemon() {
    let tmp = daemon_support::open_tempdir();
    let dir = tmp.path().join("kmscks");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = kmscksd_on_default_socket(tmp.path(), &tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        dir.to_str().unwrap(),
        "gives access to group or others",
        "mode 0o770",
    ] {
        assert!(err.contains(part), "missing {part:?} in: {err}");
    }
    assert!(!dir.join("kmscks.sock").exists());
    assert_eq!(
        std::fs::metadata(&dir).unwrap().mode() & 0o777,
        0o770,
        "the daemon repaired a directory it should have refused"
    );
}

#[test]
fn a_default_socket_directory_owned_by_another_uid_is_refused_by_daemon_and_client() {
    if !support::runnable(&[Need::Root]) {
        return;
    }
    let tmp = daemon_support::open_tempdir();
    let dir = dir_of_other(tmp.path(), "kmscks");
    let out = kmscksd_on_default_socket(tmp.path(), &tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        dir.to_str().unwrap(),
        "owned by another user",
        &format!("owner uid {OTHER}"),
    ] {
        assert!(err.contains(part), "missing {part:?} in: {err}");
    }
    // A socket planted there (by its owner) is not even connected to.
    let planted = std::os::unix::net::UnixListener::bind(dir.join("kmscks.sock")).unwrap();
    planted.set_nonblocking(true).unwrap();
    let out = cli()
        .args(["kms", "list-keys"])
        .env("XDG_RUNTIME_DIR", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("owned by another user"), "{err}");
    assert!(
        planted.accept().is_err(),
        "the client connected to a socket in a directory it refused"
    );
}

// ---- item 3: authorization gaps ----------------------------------------------------------------

const OTHER_PRINCIPAL: &str = "arn:aws:iam::111122223333:user/uid-65534";

#[test]
fn generate_random_is_refused_to_a_non_root_principal_unless_configured() {
    let request = GenerateRandomRequest {
        number_of_bytes: Some(32),
        ..Default::default()
    };
    let kms = Kms::in_memory();
    let e = kms
        .acting_as(OTHER_PRINCIPAL)
        .generate_random(&request)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDeniedException);
    assert!(e.message().contains("kms:GenerateRandom"), "{e}");
    assert!(e.message().contains(OTHER_PRINCIPAL), "{e}");
    // The account root may.
    assert_eq!(
        kms.generate_random(&request)
            .unwrap()
            .plaintext
            .expose()
            .len(),
        32
    );
    // Granted by configuration: to that principal, or to everyone.
    for granted in [OTHER_PRINCIPAL, "*"] {
        let kms = Kms::in_memory_with(KmsConfig {
            generate_random_principals: vec![granted.to_owned()],
            ..KmsConfig::default()
        });
        kms.acting_as(OTHER_PRINCIPAL)
            .generate_random(&request)
            .unwrap();
        let e = Kms::in_memory_with(KmsConfig {
            generate_random_principals: vec!["arn:aws:iam::111122223333:user/uid-1".into()],
            ..KmsConfig::default()
        })
        .acting_as(OTHER_PRINCIPAL)
        .generate_random(&request)
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDeniedException);
    }
}

#[test]
fn wait_for_connection_is_refused_to_whom_describe_custom_key_stores_is() {
    let kms = Kms::in_memory();
    let store = kmscks::daemon::bootstrap::connected_store(&kms)
        .unwrap()
        .custom_key_store_id;
    let other = kms.acting_as(OTHER_PRINCIPAL);
    let describe = other
        .describe_custom_key_stores(&DescribeCustomKeyStoresRequest::default())
        .unwrap_err();
    let wait = other
        .wait_for_connection(&store, std::time::Duration::ZERO)
        .unwrap_err();
    assert_eq!(describe.kind(), ErrorKind::AccessDeniedException);
    assert_eq!(wait.kind(), describe.kind());
    assert!(wait.message().contains(OTHER_PRINCIPAL), "{wait}");
    // The account root may, and learns the state.
    let entry = kms
        .wait_for_connection(&store, std::time::Duration::ZERO)
        .unwrap();
    assert_eq!(entry.custom_key_store_id, store);
}

#[test]
fn another_uid_is_refused_generate_random_and_wait_for_connection_over_the_socket() {
    if !support::runnable(&[Need::Root, Need::Tool("setpriv")]) {
        return;
    }
    let open = |c: &mut kmscks::daemon::DaemonConfig| {
        c.bootstrap = true;
        c.socket_mode = 0o666;
    };
    let d = TestDaemon::start(open);
    let store = match d
        .connect()
        .call(&Request::DescribeCustomKeyStores(Default::default()))
    {
        Ok(Response::DescribeCustomKeyStores(r)) => {
            r.custom_key_stores[0].custom_key_store_id.clone()
        }
        other => panic!("{other:?}"),
    };
    let out = client_as_other(&d.socket, "generate-random", "");
    assert!(out.starts_with("AccessDeniedException"), "{out}");
    assert!(out.contains("kms:GenerateRandom"), "{out}");
    assert!(out.contains(&format!("uid-{OTHER}")), "{out}");
    let describe = client_as_other(&d.socket, "describe-stores", "");
    let wait = client_as_other(&d.socket, "wait-for-connection", &store);
    assert!(describe.starts_with("AccessDeniedException"), "{describe}");
    assert!(wait.starts_with("AccessDeniedException"), "{wait}");
    assert!(
        !wait.contains(&store),
        "the refusal leaks the store: {wait}"
    );
    // The daemon's own uid may.
    let mut root = d.connect();
    assert!(matches!(
        root.call(&Request::GenerateRandom(GenerateRandomRequest {
            number_of_bytes: Some(16),
            ..Default::default()
        })),
        Ok(Response::GenerateRandom(_))
    ));
    drop(d);

    // generate_random_uids grants it.
    let d = TestDaemon::start(|c| {
        open(c);
        c.generate_random_uids = OTHER.to_string();
    });
    assert_eq!(client_as_other(&d.socket, "generate-random", ""), "ok");
}

#[test]
fn a_grant_lets_another_uid_encrypt_under_a_key_until_it_is_revoked() {
    if !support::runnable(&[Need::Root, Need::Tool("setpriv")]) {
        return;
    }
    let d = TestDaemon::start(|c| {
        c.bootstrap = true;
        c.socket_mode = 0o666;
    });
    let mut root = d.connect();
    let key_id = match root.call(&Request::CreateKey(CreateKeyRequest::default())) {
        Ok(Response::CreateKey(r)) => r.key_metadata.key_id,
        other => panic!("{other:?}"),
    };
    let refused = client_as_other(&d.socket, "encrypt", &key_id);
    assert!(refused.starts_with("AccessDeniedException"), "{refused}");
    assert!(refused.contains("kms:Encrypt"), "{refused}");

    let grantee =
        kmscks::kms::policy::principal_for_uid(&kmscks::types::Scope::default(), OTHER, 0);
    let grant_id = match root.call(&Request::CreateGrant(CreateGrantRequest {
        key_id: key_id.clone(),
        grantee_principal: grantee,
        operations: vec![kmscks::types::GrantOperation::Encrypt],
        ..Default::default()
    })) {
        Ok(Response::CreateGrant(r)) => r.grant_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(client_as_other(&d.socket, "encrypt", &key_id), "ok");

    match root.call(&Request::RevokeGrant(RevokeGrantRequest {
        key_id: key_id.clone(),
        grant_id,
        dry_run: false,
    })) {
        Ok(Response::RevokeGrant(_)) => {}
        other => panic!("{other:?}"),
    }
    let again = client_as_other(&d.socket, "encrypt", &key_id);
    assert!(again.starts_with("AccessDeniedException"), "{again}");
}

/// A 24-byte request header for `op`, written by hand from the documented layout.
fn header(op: u16, id: u64, body_len: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&MAGIC);
    h.push(VERSION);
    h.push(0);
    h.extend_from_slice(&op.to_le_bytes());
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&body_len.to_le_bytes());
    h
}

#[test]
fn a_first_frame_that_is_not_hello_is_refused_and_the_connection_closed() {
    let d = TestDaemon::start(|c| c.bootstrap = true);
    // A whole Encrypt request first.
    let mut c = Raw::connect_without_hello(&d.socket);
    let id = c.send(&Request::Encrypt(EncryptRequest {
        key_id: "alias/demo".into(),
        plaintext: SecretBytes::new(b"no hello".to_vec()),
        ..Default::default()
    }));
    let reply = c.recv().expect("an error reply before the close");
    assert_eq!(reply.header.request_id, id);
    let e = reply.result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SerializationException);
    assert!(e.message().contains("must be a Hello"), "{e}");
    assert!(c.closed());

    // Refused from the header alone: the announced body never comes, the reply does.
    let mut c = Raw::connect_without_hello(&d.socket);
    let op = Request::GenerateRandom(GenerateRandomRequest::default())
        .op()
        .code();
    std::io::Write::write_all(&mut c.stream, &header(op, 41, 4096)).unwrap();
    let reply = c.recv().expect("an error reply before the body");
    assert_eq!(reply.header.request_id, 41);
    assert_eq!(reply.header.op, op);
    assert_eq!(
        reply.result.unwrap_err().kind(),
        ErrorKind::SerializationException
    );
    assert!(c.closed());

    // With the Hello first, the same request is served on the connection.
    let mut c = Raw::connect(&d.socket);
    assert!(matches!(
        c.call(&Request::Encrypt(EncryptRequest {
            key_id: "alias/demo".into(),
            plaintext: SecretBytes::new(b"hello first".to_vec()),
            ..Default::default()
        })),
        Ok(Response::Encrypt(_))
    ));
}
