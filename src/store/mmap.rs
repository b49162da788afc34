//! The one place in `store` that maps a file into memory (and so the one `unsafe` block).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::Mmap;

/// Maps a finished snapshot file read-only.
pub(crate) fn map_snapshot(file: &File) -> io::Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because another writer could change or truncate the file
    // while it is mapped. The only files mapped here are `snapshot-<gen>.bin` files of a data
    // directory that this process holds the exclusive `LOCK` on; they are written completely
    // as `.tmp`, fsynced, and atomically renamed into place, and never written again (a later
    // compaction writes a new file under a new name and only unlinks this one, which leaves
    // the mapping valid). No other kmscks process may open the directory while we hold it.
    // The compaction thread, which maps the base snapshot it folds, runs only while the
    // `DataDir` (and so the lock) lives: dropping the `DataDir` joins it first.
    unsafe { Mmap::map(file) }
}
