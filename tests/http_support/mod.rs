//! A `kmscksd` process serving the AWS JSON endpoint on a free loopback port, for the tests
//! that drive that endpoint (`tests/http.rs` over raw TCP, `tests/aws_clients.rs` with AWS's
//! own clients): started one way, ready when it has announced its address, killed on drop.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `kmscksd`; killed and reaped on drop.
pub(crate) struct Daemon(Child);

impl Daemon {
    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kmscksd --http 127.0.0.1:0 <extra>` on a fresh data directory in `dir`; returns it
/// and the address its endpoint took, once it has announced it.
pub(crate) fn start(dir: &Path, extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmscksd"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--socket")
        .arg(dir.join("kmscks.sock"))
        .args(["--http", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kmscksd is built for integration tests");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let daemon = Daemon(child);
    let addr = loop {
        let line = lines
            .next()
            .expect("kmscksd exited before announcing its HTTP endpoint")
            .expect("kmscksd's stdout is readable");
        if let Some(url) = line.strip_prefix("kmscksd: AWS JSON endpoint at http://") {
            break url.parse().expect("the announced endpoint is an address");
        }
    };
    // Keep reading what it prints, so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (daemon, addr)
}
