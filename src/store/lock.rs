//! The exclusive lock on a data directory: `<dir>/LOCK`, held for the life of a `DataDir`.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::Result;

/// Name of the lock file inside a data directory.
pub(super) const LOCK_FILE: &str = "LOCK";

/// Opens `<dir>/LOCK` and takes an exclusive, non-blocking lock on it. The lock is released
/// when the returned file is dropped (closed).
pub(crate) fn acquire(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(super::NOFOLLOW)
        .mode(0o600)
        .open(&path)
        .map_err(|e| super::io_error("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(crate::err!(
            StoreInUseException,
            "data directory {} is in use by another process",
            dir.display()
        )),
        Err(TryLockError::Error(e)) => Err(super::io_error("lock", &path, e)),
    }
}
