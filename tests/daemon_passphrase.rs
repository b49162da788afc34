//! The daemon and the passphrase that seals its key files: a warning without one, refused
//! without one when `--require-passphrase` is given, a passphrase file with group or other
//! access refused, `KMSCKS_PASSPHRASE` removed from the daemon's environment once read and its
//! value wiped from `/proc/<pid>/environ`.
//!
//! Only one test here changes this process's environment (`the_daemon_removes_…`); the others
//! run `kmscksd` as a child with an environment of its own.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use kmscks::daemon::{Daemon, DaemonConfig};

const PASSPHRASE: &str = "KMSCKS_PASSPHRASE";
const PASSPHRASE_FILE: &str = "KMSCKS_PASSPHRASE_FILE";

/// Runs kmscksd on `dir` with `args`, without any passphrase variable unless `env` sets one;
/// for runs that are expected to stop at start.
fn run_kmscksd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmscksd"));
    cmd.arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--socket")
        .arg(dir.join("kmscks.sock"))
        .args(args)
        .env_remove(PASSPHRASE)
        .env_remove(PASSPHRASE_FILE)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn require_passphrase_refuses_to_start_without_one() {
    let t = tempfile::tempdir().unwrap();
    let out = run_kmscksd(t.path(), &["--require-passphrase"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("require_passphrase is set but no passphrase was given")
            && stderr.contains(PASSPHRASE_FILE),
        "{stderr}"
    );
    // Refused before anything was made.
    assert!(!t.path().join("kmscks.sock").exists());
    assert!(!t.path().join("data").exists());
    // An empty variable is no passphrase either.
    let out = run_kmscksd(t.path(), &["--require-passphrase"], &[(PASSPHRASE, "")]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_passphrase_file_readable_by_group_or_others_is_refused_naming_path_and_mode() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("passphrase");
    std::fs::write(&file, "correct horse battery staple\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_kmscksd(t.path(), &[], &[(PASSPHRASE_FILE, file.to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("has mode 0644"), "{stderr}");
    assert!(!t.path().join("data").exists());
}

#[test]
fn both_passphrase_variables_set_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("passphrase");
    std::fs::write(&file, "x").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_kmscksd(
        t.path(),
        &[],
        &[(PASSPHRASE_FILE, file.to_str().unwrap()), (PASSPHRASE, "y")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("set only one"), "{stderr}");
}

/// Spawns kmscksd on `dir` with `env`, waits for "listening on", reads its
/// `/proc/<pid>/environ`, stops it with SIGTERM; returns that environ and its stderr.
fn start_and_stop(dir: &Path, env: &[(&str, &str)]) -> (Vec<u8>, String) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmscksd"));
    cmd.arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--socket")
        .arg(dir.join("kmscks.sock"))
        .env_remove(PASSPHRASE)
        .env_remove(PASSPHRASE_FILE)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let listening = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .any(|l| l.starts_with("kmscksd: listening on"));
    let environ = std::fs::read(format!("/proc/{}/environ", child.id()));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(listening, "kmscksd did not start ({status}): {stderr}");
    assert!(status.success(), "{status}: {stderr}");
    let environ = environ.expect("/proc/<pid>/environ of our own child is readable");
    (environ, stderr)
}

#[test]
fn kmscksd_wipes_kmscks_passphrase_from_proc_environ_after_start() {
    let t = tempfile::tempdir().unwrap();
    let secret = "a passphrase nobody should find in proc";
    let (environ, stderr) = start_and_stop(t.path(), &[(PASSPHRASE, secret)]);
    assert!(
        !environ
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "the passphrase is still in /proc/<pid>/environ"
    );
    assert!(sealed(&t.path().join("data/keys/kms-master.key")));
    assert!(!stderr.contains("no passphrase"), "{stderr}");
}

#[test]
fn kmscksd_without_a_passphrase_warns_what_is_stored_in_the_clear_and_how_to_set_one() {
    let t = tempfile::tempdir().unwrap();
    let (_, stderr) = start_and_stop(t.path(), &[]);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr.contains("no passphrase: the wrapping keys in")
            && stderr.contains("are stored in the clear")
            && stderr.contains(PASSPHRASE_FILE)
            && stderr.contains("--require-passphrase"),
        "{stderr}"
    );
    assert!(!sealed(&t.path().join("data/keys/kms-master.key")));
}

/// Whether the key file `path` is sealed (kind byte 1 at offset 5).
fn sealed(path: &Path) -> bool {
    std::fs::read(path).unwrap()[5] == 1
}

#[test]
fn the_daemon_removes_kmscks_passphrase_from_its_environment_after_start() {
    let t = tempfile::tempdir().unwrap();
    let config = DaemonConfig {
        data_dir: t.path().join("data"),
        socket: t.path().join("kmscks.sock"),
        require_passphrase: true,
        ..DaemonConfig::default()
    };
    std::env::remove_var(PASSPHRASE_FILE);
    std::env::set_var(PASSPHRASE, "an environment passphrase");
    let daemon = Daemon::bind(config.clone()).expect("starts with the passphrase");
    assert_eq!(
        std::env::var_os(PASSPHRASE),
        None,
        "still in the environment"
    );
    let master = t.path().join("data/keys/kms-master.key");
    assert!(sealed(&master), "the master key file is sealed");
    drop(daemon);

    // Started again with the variable gone, it refuses (the files are sealed, and it is
    // required); with the same passphrase in a 0600 file it starts.
    let e = Daemon::bind(config.clone()).unwrap_err();
    assert!(e.message().contains("require_passphrase"), "{e}");
    let file = t.path().join("passphrase");
    std::fs::write(&file, "an environment passphrase\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::env::set_var(PASSPHRASE_FILE, &file);
    let daemon = Daemon::bind(config.clone()).expect("starts with the passphrase file");
    // The file's variable names no secret: it stays.
    assert!(std::env::var_os(PASSPHRASE_FILE).is_some());
    drop(daemon);
    // A wrong passphrase in the file stops the open.
    std::fs::write(&file, "another passphrase").unwrap();
    let e = Daemon::bind(config).unwrap_err();
    assert!(e.message().contains("wrong passphrase"), "{e}");
    std::env::remove_var(PASSPHRASE_FILE);
}
