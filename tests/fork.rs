//! A process that forks after opening kmscks (as a program linking the C library may): the
//! child holds copies of the parent's random pools and nonce counters, so it must refuse to
//! seal or to write rather than repeat the parent's (subkey, nonce) pairs and data keys. The
//! parent goes on as before. A child that closes what it inherited neither hangs nor panics
//! (the parent's threads are not in it), and lets go of the data directory, so that the
//! parent can open it again, or the child itself once the parent has closed it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;

use kmscks::api::kms::{CreateKeyRequest, GenerateDataKeyRequest};
use kmscks::types::DataKeySpec;
use kmscks::{ErrorKind, Kms, KmsError};

/// The exit codes the child reports its findings with.
const REFUSED: i32 = 0;
const SERVED: i32 = 10;
const OTHER_ERROR: i32 = 20;
const PANICKED: i32 = 30;

fn verdict<T>(r: Result<T, KmsError>) -> i32 {
    match r {
        Err(e) if e.kind() == ErrorKind::KMSInternalException && e.message().contains("fork") => {
            REFUSED
        }
        Ok(_) => SERVED,
        Err(_) => OTHER_ERROR,
    }
}

/// How long a child may take before it counts as hung: `SIGALRM` ends it then.
const CHILD_DEADLINE_SECS: u32 = 30;

/// Held by each test for its whole run: a child forked by one test holds copies of every
/// descriptor of this process, another test's data-directory lock among them, until it
/// exits; a test that reopens a directory must not meet such a copy.
static FORKING: Mutex<()> = Mutex::new(());

fn forking() -> std::sync::MutexGuard<'static, ()> {
    FORKING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Forks; the child runs `child` and exits with its code ([`PANICKED`] if it panicked: it
/// never unwinds into the test harness's copy), the parent gets the child's pid. A child
/// still running after [`CHILD_DEADLINE_SECS`] is killed by its alarm.
#[allow(unsafe_code)]
fn fork_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child runs only `child` — kmscks calls (which check the fork generation
    // before taking any lock, and allocate: glibc's malloc is reset for the child at fork) —
    // and then `_exit`, which runs no destructor and no test-harness code.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: `alarm` only arms this process's timer.
            unsafe { libc::alarm(CHILD_DEADLINE_SECS) };
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(PANICKED);
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => pid,
        _ => panic!("fork failed: {}", std::io::Error::last_os_error()),
    }
}

/// Waits for the child `pid` and returns its exit code; fails the test if it hung.
#[allow(unsafe_code)]
fn wait_child(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waits for our own child, writing its status into a local.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid");
    assert!(
        !(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM),
        "the child hung: still running after {CHILD_DEADLINE_SECS} s"
    );
    assert!(libc::WIFEXITED(status), "the child exited normally");
    libc::WEXITSTATUS(status)
}

/// Runs `child` in a forked child process and returns its exit code.
fn in_forked_child(child: impl FnOnce() -> i32) -> i32 {
    wait_child(fork_child(child))
}

fn data_key_request(key: &str) -> GenerateDataKeyRequest {
    GenerateDataKeyRequest {
        key_id: key.to_string(),
        key_spec: Some(DataKeySpec::Aes256),
        ..Default::default()
    }
}

/// What the tests of a child closing its handle share: a data directory opened with one key
/// in it (in the default key store), and a socket pair for the parent and the child to say
/// where they are.
struct Scene {
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
    _dir: tempfile::TempDir,
    path: PathBuf,
    key: String,
    /// Taken (dropped) by the child in its copy, and by the parent in its own.
    kms: Option<Kms>,
    parent_end: UnixStream,
    child_end: UnixStream,
}

fn scene() -> Scene {
    let one_at_a_time = forking();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let kms = Kms::open(&path).unwrap();
    let key = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let (parent_end, child_end) = UnixStream::pair().unwrap();
    Scene {
        _one_at_a_time: one_at_a_time,
        _dir: dir,
        path,
        key,
        kms: Some(kms),
        parent_end,
        child_end,
    }
}

#[test]
fn a_forked_child_refuses_data_keys_and_writes_while_the_parent_goes_on() {
    let _one_at_a_time = forking();
    let kms = Kms::in_memory();
    let key = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let request = data_key_request(&key);
    // The parent has drawn from its pools and started a subkey epoch before the fork.
    let before = kms.generate_data_key(&request).unwrap();

    let code = in_forked_child(|| {
        let data_key = verdict(kms.generate_data_key(&request));
        let write = verdict(kms.create_key(&CreateKeyRequest::default()));
        data_key.max(write)
    });
    assert_eq!(
        code, REFUSED,
        "the child refused both (10: served, 20: other error)"
    );

    let after = kms.generate_data_key(&request).unwrap();
    assert_ne!(before.ciphertext_blob, after.ciphertext_blob);
    assert!(kms.create_key(&CreateKeyRequest::default()).is_ok());
}

#[test]
fn a_forked_child_that_drops_its_handle_lets_the_parent_reopen_the_directory_while_it_lives() {
    let mut s = scene();
    // The background worker, the engine's shard threads and the data directory's compaction
    // are the parent's threads: none of them is in the child, so nothing there may wait for
    // them or for a lock one of them held.
    let child = fork_child(|| {
        drop(s.kms.take());
        let mut parent_done = [0u8; 1];
        // Alive until the parent has reopened the directory (or gone).
        let _ = (&s.child_end).write_all(b"c");
        let _ = (&s.child_end).read(&mut parent_done);
        0
    });
    drop(s.child_end); // so that the child's end, closed, reads as the end
    let mut child_closed = [0u8; 1];
    if (&s.parent_end).read_exact(&mut child_closed).is_err() {
        let code = wait_child(child);
        panic!("the child ended before it had closed its handle: exit {code} (30: panicked)");
    }

    drop(s.kms.take());
    let reopened = Kms::open(&s.path);
    (&s.parent_end).write_all(b"p").unwrap();
    assert_eq!(wait_child(child), 0, "30: the child panicked");
    let reopened = reopened.expect("the child's copy of the directory lock was closed");
    reopened
        .generate_data_key(&data_key_request(&s.key))
        .unwrap();
}

#[test]
fn a_forked_child_that_drops_its_handle_opens_the_directory_itself_once_the_parent_closed_it() {
    let mut s = scene();
    // As the README advises: the child opens kmscks again, here the same directory, once the
    // parent has let go of it.
    let child = fork_child(|| {
        drop(s.kms.take());
        let mut parent_closed = [0u8; 1];
        if (&s.child_end).read_exact(&mut parent_closed).is_err() {
            return OTHER_ERROR;
        }
        match Kms::open(&s.path) {
            Ok(mine) => verdict(mine.generate_data_key(&data_key_request(&s.key))),
            Err(_) => OTHER_ERROR,
        }
    });
    drop(s.kms.take());
    (&s.parent_end).write_all(b"p").unwrap();
    assert_eq!(
        wait_child(child),
        SERVED,
        "the child reopened the directory and served from it (20: it could not; 30: it panicked)"
    );
}
