//! The data directory lock against another process. In a test binary of its own: spawning a
//! process copies every descriptor of this process (including other tests' locks) until the
//! child execs, which would make unrelated tests in the same binary see their directory in use.

mod support;

use kmscks::store::DataDir;
use kmscks::ErrorKind;
use support::Need;

/// The store key of these tests (any fixed key: nothing here is written by a `Kms`).
fn auth() -> kmscks::store::StoreAuth {
    kmscks::store::StoreAuth::derive(&kmscks::secret::KeyMaterial::from_slice(&[7u8; 32]).unwrap())
}

#[test]
fn lock_held_by_another_process_is_store_in_use() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    if !support::runnable(&[Need::Tool("flock")]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    drop(DataDir::open(t.path(), auth()).unwrap());
    // flock(1) takes the same flock(2) lock that File::try_lock takes on Linux.
    let mut child = Command::new("flock")
        .args(["-n", "-x"])
        .arg(t.path().join("LOCK"))
        .args(["-c", "echo locked; read _ || true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) is on PATH (checked above) and runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let e = DataDir::open(t.path(), auth()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StoreInUseException);
    drop(child.stdin.take()); // EOF ends `read`, the child exits and releases the lock
    assert!(child.wait().unwrap().success());
    DataDir::open(t.path(), auth()).unwrap();
}
