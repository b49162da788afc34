//! What the socket benches share: the request they send (GenerateDataKey of `alias/demo`), the
//! reply the echo floor answers it with (a GenerateDataKey reply of the same size as the
//! daemon's), and a daemon served in this process, so that daemon and floor are measured with
//! the same client code and the same bytes.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use kmscks::api::kms::{GenerateDataKeyRequest, GenerateDataKeyResponse};
use kmscks::daemon::{Daemon, DaemonConfig, Shutdown};
use kmscks::ops::{Op, Request, Response};
use kmscks::protocol::encode_response;
use kmscks::secret::SecretBytes;
use kmscks::types::DataKeySpec;

use crate::support;

/// The request every socket bench sends: a 256-bit data key under the bootstrapped
/// `alias/demo`.
pub(crate) fn request() -> Request {
    Request::GenerateDataKey(GenerateDataKeyRequest {
        key_id: "alias/demo".into(),
        key_spec: Some(DataKeySpec::Aes256),
        ..Default::default()
    })
}

/// The whole reply frame the echo floor answers [`request`] with: the daemon's answer's size.
pub(crate) fn echo_reply() -> Vec<u8> {
    let mut reply = Vec::new();
    let resp = Ok(Response::GenerateDataKey(GenerateDataKeyResponse {
        ciphertext_blob: vec![7; 92],
        plaintext: Some(SecretBytes::zeroed(32)),
        key_id: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            .into(),
    }));
    encode_response(&mut reply, 0, Op::GenerateDataKey.code(), &resp);
    reply
}

/// A bootstrapped daemon serving on a thread of this process until dropped.
pub(crate) struct ServedDaemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    shutdown: Shutdown,
    serving: Option<JoinHandle<kmscks::error::Result<()>>>,
}

impl ServedDaemon {
    /// A daemon with `event_loops` loops (0: one per core), ready on its socket.
    pub(crate) fn start(event_loops: usize) -> ServedDaemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = DaemonConfig {
            data_dir: dir.path().join("data"),
            socket: dir.path().join("kmscks.sock"),
            bootstrap: true,
            event_loops,
            ..DaemonConfig::default()
        };
        let daemon = Daemon::bind(config).expect("daemon binds");
        let socket = daemon.socket().to_path_buf();
        let shutdown = Shutdown::new();
        let serving = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || daemon.serve(shutdown))
        };
        support::wait_ready(&socket, support::READY_TIMEOUT);
        ServedDaemon {
            _dir: dir,
            socket,
            shutdown,
            serving: Some(serving),
        }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for ServedDaemon {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(serving) = self.serving.take() {
            let out = serving.join();
            if !std::thread::panicking() {
                out.expect("the daemon thread did not panic")
                    .expect("the daemon stops cleanly");
            }
        }
    }
}
