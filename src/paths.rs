//! Default locations, per user: where the daemon keeps its data and listens, and so where the
//! CLI looks for it. `KMSCKS_SOCKET` overrides the socket for every program.

use std::path::PathBuf;

/// Environment variable naming the daemon's socket.
pub(crate) const SOCKET_ENV: &str = "KMSCKS_SOCKET";

fn uid() -> u32 {
    // The real uid of this process; std exposes it through the metadata of /proc/self.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// `$KMSCKS_SOCKET`, else `$XDG_RUNTIME_DIR/kmscks.sock`, else `/tmp/kmscks-<uid>.sock`.
pub fn default_socket() -> PathBuf {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("kmscks.sock"),
        None => PathBuf::from(format!("/tmp/kmscks-{}.sock", uid())),
    }
}

/// `$XDG_DATA_HOME/kmscks`, else `~/.local/share/kmscks`, else `./kmscks-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("kmscks");
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/kmscks"),
        None => PathBuf::from("kmscks-data"),
    }
}
