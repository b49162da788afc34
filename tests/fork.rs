//! A process that forks after opening kmscks (as a program linking the C library may): the
//! child holds copies of the parent's random pools and nonce counters, so it must refuse to
//! seal or to write rather than repeat the parent's (subkey, nonce) pairs and data keys. The
//! parent goes on as before.

use kmscks::api::kms::{CreateKeyRequest, GenerateDataKeyRequest};
use kmscks::types::DataKeySpec;
use kmscks::{ErrorKind, Kms, KmsError};

/// The exit codes the child reports its findings with.
const REFUSED: i32 = 0;
const SERVED: i32 = 10;
const OTHER_ERROR: i32 = 20;

fn verdict<T>(r: Result<T, KmsError>) -> i32 {
    match r {
        Err(e) if e.kind() == ErrorKind::KMSInternalException && e.message().contains("fork") => {
            REFUSED
        }
        Ok(_) => SERVED,
        Err(_) => OTHER_ERROR,
    }
}

/// Runs `child` in a forked child process and returns its exit code.
#[allow(unsafe_code)]
fn in_forked_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs only `child` — kmscks calls that check the fork generation before
    // taking any lock, and allocate (glibc's malloc is reset for the child at fork) — and then
    // `_exit`, which runs no destructor and no test-harness code. The parent only waits.
    match unsafe { libc::fork() } {
        0 => {
            let code = child();
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => {
            let mut status = 0;
            let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(waited, pid, "waitpid");
            assert!(libc::WIFEXITED(status), "the child exited normally");
            libc::WEXITSTATUS(status)
        }
        _ => panic!("fork failed: {}", std::io::Error::last_os_error()),
    }
}

#[test]
fn a_forked_child_refuses_data_keys_and_writes_while_the_parent_goes_on() {
    let kms = Kms::in_memory();
    let key = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let request = GenerateDataKeyRequest {
        key_id: key.clone(),
        key_spec: Some(DataKeySpec::Aes256),
        ..Default::default()
    };
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
