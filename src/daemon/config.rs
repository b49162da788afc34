//! The daemon's configuration: a TOML file (unknown keys rejected), every key also a flag of
//! `kmscksd`, each with one default. `kmscksd.toml` at the repository root documents every key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::err;
use crate::error::Result;

/// How the daemon runs. Field names are the TOML keys; each is also the `kmscksd` flag of the
/// same name in kebab case (`max_connections` → `--max-connections`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Data directory (created if missing). Default: [`crate::paths::default_data_dir`].
    pub data_dir: PathBuf,
    /// Unix socket path (parent directory created if missing). Default:
    /// [`crate::paths::default_socket`].
    pub socket: PathBuf,
    /// Permission bits of the socket file. Default `0o660`: the daemon's user and group.
    pub socket_mode: u32,
    /// Numeric group to give the socket file (so that group members may connect), or none to
    /// keep the daemon's group. Default: none.
    pub socket_gid: Option<u32>,
    /// Create a ready system (cluster, key store, key `alias/demo`) when the data directory
    /// holds nothing yet. Default: false.
    pub bootstrap: bool,
    /// Connections served at once; more are accepted and closed at once. Default 1024.
    pub max_connections: usize,
    /// A connection that completes no request frame for this long is closed. Default 300.
    pub idle_timeout_secs: u64,
    /// Replies pending for a client that does not read them, beyond which its connection is
    /// closed. Default 8 MiB.
    pub max_pending_reply_bytes: usize,
    /// Longest wait a WaitForConnection request may ask for, in milliseconds. Default 60000.
    pub max_wait_millis: u64,
    /// Log filter (tracing `EnvFilter` syntax: `info`, `kmscks=debug`…); `RUST_LOG`, when set,
    /// wins. Default `info`.
    pub log_level: String,
    /// Data-plane shards (HSM worker threads, each pinned to a core); 0 = one per core.
    /// Default 0.
    pub engine_shards: usize,
    /// AWS account id in every ARN. Default `111122223333`.
    pub account_id: String,
    /// AWS Region in every ARN. Default `us-east-1`.
    pub region: String,
}

impl Default for DaemonConfig {
    fn default() -> DaemonConfig {
        let scope = crate::types::Scope::default();
        DaemonConfig {
            data_dir: crate::paths::default_data_dir(),
            socket: crate::paths::default_socket(),
            socket_mode: 0o660,
            socket_gid: None,
            bootstrap: false,
            max_connections: 1024,
            idle_timeout_secs: 300,
            max_pending_reply_bytes: 8 << 20,
            max_wait_millis: 60_000,
            log_level: "info".into(),
            engine_shards: 0,
            account_id: scope.account_id,
            region: scope.region,
        }
    }
}

impl DaemonConfig {
    /// Parses a TOML document; `origin` names it in errors (a file name).
    ///
    /// Errors: `ValidationException` naming the origin, line and key, for bad TOML, an unknown
    /// key, a value of the wrong type, or a value out of range.
    pub fn from_toml(text: &str, origin: &str) -> Result<DaemonConfig> {
        let config: DaemonConfig = toml::from_str(text).map_err(|e| {
            err!(
                ValidationException,
                "{origin}: {}",
                e.to_string().trim_end()
            )
        })?;
        config
            .validate()
            .map_err(|e| err!(ValidationException, "{origin}: {}", e.message()))?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<DaemonConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            err!(
                ValidationException,
                "cannot read config file {}: {e}",
                path.display()
            )
        })?;
        DaemonConfig::from_toml(&text, &path.display().to_string())
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        if self.socket_mode & !0o777 != 0 {
            return Err(err!(
                ValidationException,
                "socket_mode {:#o} has bits outside 0o777",
                self.socket_mode
            ));
        }
        if self.socket_mode & 0o600 != 0o600 {
            return Err(err!(
                ValidationException,
                "socket_mode {:#o} must let the daemon's user read and write (0o600)",
                self.socket_mode
            ));
        }
        if self.max_connections == 0 {
            return Err(err!(
                ValidationException,
                "max_connections must be at least 1"
            ));
        }
        if self.idle_timeout_secs == 0 {
            return Err(err!(
                ValidationException,
                "idle_timeout_secs must be at least 1"
            ));
        }
        let min_pending = crate::protocol::HEADER_LEN + crate::protocol::MAX_BODY as usize;
        if self.max_pending_reply_bytes < min_pending {
            return Err(err!(
                ValidationException,
                "max_pending_reply_bytes {} is less than one largest frame ({min_pending} bytes)",
                self.max_pending_reply_bytes
            ));
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err!(
                ValidationException,
                "account_id '{}' is not 12 digits",
                self.account_id
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err!(
                ValidationException,
                "region '{}' is not a Region name (lower-case letters, digits, '-')",
                self.region
            ));
        }
        if self.socket.as_os_str().is_empty() || self.data_dir.as_os_str().is_empty() {
            return Err(err!(
                ValidationException,
                "socket and data_dir must not be empty"
            ));
        }
        Ok(())
    }

    /// The account and Region.
    pub fn scope(&self) -> crate::types::Scope {
        crate::types::Scope {
            account_id: self.account_id.clone(),
            region: self.region.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_defaults() {
        assert_eq!(
            DaemonConfig::from_toml("", "t").unwrap(),
            DaemonConfig::default()
        );
    }

    #[test]
    fn keys_parse_and_unknown_keys_are_refused() {
        let c = DaemonConfig::from_toml(
            "socket = \"/tmp/x.sock\"\nsocket_mode = 0o666\nmax_connections = 3\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.socket_mode, 0o666);
        assert_eq!(c.max_connections, 3);
        let e = DaemonConfig::from_toml("max_conections = 3\n", "my.toml").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::ValidationException);
        assert!(e.message().contains("my.toml"), "{e}");
        assert!(e.message().contains("max_conections"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (doc, word) in [
            ("max_connections = 0", "max_connections"),
            ("socket_mode = 0o7777", "socket_mode"),
            ("socket_mode = 0o066", "socket_mode"),
            ("account_id = \"12\"", "account_id"),
            ("region = \"US East\"", "region"),
            ("max_pending_reply_bytes = 10", "max_pending_reply_bytes"),
        ] {
            let e = DaemonConfig::from_toml(doc, "t").unwrap_err();
            assert!(e.message().contains(word), "{doc}: {e}");
        }
    }
}
