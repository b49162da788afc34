//! Where the KMS event log lives once its events are committed: rotated JSON-lines files beside
//! the journal (`<data-dir>/events/`), or a bounded ring for an instance without a data
//! directory.
//!
//! Why not in the state: the log only grows, so kept in [`State`](super::State) it came to
//! dominate every snapshot and every compaction. Events are still made durable by the journal
//! record that carries them (no extra fsync per write); the state keeps only the next sequence
//! number (`KmsState::next_event_seq`), so replay numbers every event the same way. After a
//! commit the service hands the record's events here; they are written (no fsync) to the
//! newest file. Files are fsynced when they rotate, before a compaction drops the journal
//! records that hold their events, and on drop.
//!
//! # Files
//!
//! ```text
//! <dir>/events/                                mode 0700
//! <dir>/events/events-<first seq, 20 digits>.jsonl   mode 0600, one event per line
//! ```
//!
//! The line format is [`event_line`](super::event_line) (documented in `docs/events.md`). A
//! file is rotated (a new one started) when the next line would take it past
//! [`EventLogOptions::file_bytes`]; a rotated file goes when the file after it starts more than
//! [`EventLogOptions::retain_days`] ago (every event in it is older than that), checked at
//! rotation and at open. The newest file is never removed.
//!
//! # Recovery
//!
//! [`EventLog::open`] is told the sequence number the replayed state will give its next event.
//! It cuts the files back to the events below it — a torn last line, and anything a journal
//! that lost its own torn tail no longer holds — and says which sequence number the files
//! need next; the caller then appends the events of the replayed records from there. After
//! any crash the files hold every journaled event exactly once, in order.
//!
//! Nothing in the data directory is trusted unless this process's user owns it: the directory
//! and files must be ours, not symbolic links (files are opened with `O_NOFOLLOW`) and not
//! readable by group or others; otherwise the open fails with a `StorageException` naming the
//! path and the problem.

use std::collections::VecDeque;
use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::event_line;
use super::state::Change;
use crate::api::kms::TrailEvent;
use crate::kms::state::KmsChange;
use crate::store::{io_error, sync_dir};
use crate::types::Timestamp;
use crate::{err, Result};

/// The event log's directory, inside the data directory.
pub const EVENTS_DIR: &str = "events";
/// Default [`EventLogOptions::file_bytes`].
pub const DEFAULT_FILE_BYTES: u64 = 8 << 20;
/// Default [`EventLogOptions::retain_days`]: CloudTrail's event history keeps 90 days.
pub const DEFAULT_RETAIN_DAYS: u32 = 90;
/// How many events an instance without a data directory keeps (the newest ones).
pub const RING_CAPACITY: usize = 10_000;

const FILE_PREFIX: &str = "events-";
const FILE_SUFFIX: &str = ".jsonl";
/// Digits of the first sequence number in a file name (every `u64` fits).
const SEQ_DIGITS: usize = 20;
/// The longest line read when only a file's first line is wanted (far above any event: a key
/// policy, the largest detail, is at most 32 KiB).
const MAX_LINE_BYTES: usize = 1 << 20;

/// How the event log files rotate and how long they are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLogOptions {
    /// A file is rotated when the next line would take it past this many bytes (a single line
    /// longer than this gets a file of its own).
    pub file_bytes: u64,
    /// Rotated files whose events are all older than this many days are deleted.
    pub retain_days: u32,
}

impl Default for EventLogOptions {
    fn default() -> EventLogOptions {
        EventLogOptions {
            file_bytes: DEFAULT_FILE_BYTES,
            retain_days: DEFAULT_RETAIN_DAYS,
        }
    }
}

/// The KMS events of a record's changes, in order.
pub fn events_of(changes: &[Change]) -> impl Iterator<Item = &TrailEvent> {
    changes.iter().filter_map(|c| match c {
        Change::Kms(KmsChange::Trail(e)) => Some(e),
        _ => None,
    })
}

/// The committed KMS events of one instance.
pub enum EventLog {
    /// Files in the data directory.
    Files(EventFiles),
    /// The newest [`RING_CAPACITY`] events, in memory.
    Ring(VecDeque<TrailEvent>),
}

impl EventLog {
    /// An in-memory ring, for an instance without a data directory.
    pub fn in_memory() -> EventLog {
        EventLog::Ring(VecDeque::new())
    }

    /// Opens (creating it if missing) the event log of `data_dir`, cut back to the events
    /// below `next_seq` (the sequence number the recovered state gives its next event).
    /// Returns it with the sequence number the files need next: the caller appends the
    /// replayed events from there. Deletes rotated files past retention (`now`).
    pub fn open(
        data_dir: &Path,
        opts: EventLogOptions,
        now: Timestamp,
        next_seq: u64,
    ) -> Result<(EventLog, u64)> {
        let (files, need) = EventFiles::open(data_dir, opts, now, next_seq)?;
        Ok((EventLog::Files(files), need))
    }

    /// Appends events numbered from `first_seq` (those of one committed record). Events the
    /// files already hold (a lower sequence number) are skipped. On an I/O failure the events
    /// are kept and written before the next ones (they are in the journal either way); the
    /// error says what failed.
    pub fn append<'e>(
        &mut self,
        first_seq: u64,
        events: impl IntoIterator<Item = &'e TrailEvent>,
        now: Timestamp,
    ) -> Result<()> {
        match self {
            EventLog::Files(f) => {
                for (seq, e) in (first_seq..).zip(events) {
                    if seq >= f.next_seq {
                        f.backlog.push_back((seq, e.clone()));
                    }
                }
                f.flush(Some(now))
            }
            EventLog::Ring(ring) => {
                for e in events {
                    if ring.len() == RING_CAPACITY {
                        ring.pop_front();
                    }
                    ring.push_back(e.clone());
                }
                Ok(())
            }
        }
    }

    /// Makes every appended event durable (the journal records holding them may go next).
    pub fn sync(&mut self) -> Result<()> {
        match self {
            EventLog::Files(f) => f.sync(),
            EventLog::Ring(_) => Ok(()),
        }
    }

    /// Every retained event, oldest first.
    pub fn read_all(&self) -> Result<Vec<TrailEvent>> {
        match self {
            EventLog::Files(f) => f.read_all(),
            EventLog::Ring(ring) => Ok(ring.iter().cloned().collect()),
        }
    }
}

/// One retained file.
#[derive(Debug)]
struct FileInfo {
    first_seq: u64,
    /// The time of its first event.
    first_time: Timestamp,
}

/// The event log files of one data directory (see the module documentation).
#[derive(Debug)]
pub struct EventFiles {
    dir: PathBuf,
    opts: EventLogOptions,
    /// Retained files, oldest first; the last one is appended to.
    files: Vec<FileInfo>,
    /// The newest file, open for appending (`None` until the first event).
    current: Option<File>,
    /// Its length.
    current_len: u64,
    /// Whether it was written since its last fsync.
    dirty: bool,
    /// The sequence number of the next line to write.
    next_seq: u64,
    /// Events not yet written (a write failed), oldest first.
    backlog: VecDeque<(u64, TrailEvent)>,
}

fn file_name(first_seq: u64) -> String {
    format!("{FILE_PREFIX}{first_seq:0w$}{FILE_SUFFIX}", w = SEQ_DIGITS)
}

/// The first sequence number a file name carries, if it names an event log file.
fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Refuses what this process must not trust: a symbolic link, the wrong kind of file, another
/// owner, or access for group or others.
fn check_owned(path: &Path, m: &Metadata, want_dir: bool) -> Result<()> {
    let what = if want_dir {
        "event log directory"
    } else {
        "event log file"
    };
    if m.file_type().is_symlink() {
        return Err(err!(
            StorageException,
            "{what} {} is a symbolic link: refusing to follow it (only files kmscks owns in \
             the data directory are trusted)",
            path.display()
        ));
    }
    if want_dir != m.is_dir() || (!want_dir && !m.is_file()) {
        let kind = if want_dir {
            "a directory"
        } else {
            "a regular file"
        };
        return Err(err!(
            StorageException,
            "{what} {} is not {kind}",
            path.display()
        ));
    }
    if m.uid() != crate::peer::effective_uid() {
        return Err(err!(
            StorageException,
            "{what} {} is owned by uid {}, not by this process's uid {}: refusing to trust it",
            path.display(),
            m.uid(),
            crate::peer::effective_uid()
        ));
    }
    if m.mode() & 0o077 != 0 {
        return Err(err!(
            StorageException,
            "{what} {} has mode {:04o}: it must not be accessible to group or others",
            path.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Opens an event log file without following a symbolic link.
fn open_nofollow(path: &Path, options: &mut OpenOptions) -> Result<File> {
    options
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                err!(
                    StorageException,
                    "event log file {} is a symbolic link: refusing to follow it",
                    path.display()
                )
            } else {
                io_error("open event log file", path, e)
            }
        })
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    open_nofollow(path, OpenOptions::new().read(true))?
        .read_to_end(&mut data)
        .map_err(|e| io_error("read event log file", path, e))?;
    Ok(data)
}

/// The complete lines of `data` (each without its `\n`) and where each starts; a last piece
/// without `\n` (a torn write) is left out.
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = data[at..].iter().position(|&b| b == b'\n')?;
        let line = (at, &data[at..at + len]);
        at += len + 1;
        Some(line)
    })
}

fn damaged(path: &Path, line_no: usize, why: &str) -> crate::KmsError {
    err!(
        StorageException,
        "event log file {} line {line_no} is damaged: {why}",
        path.display()
    )
}

impl EventFiles {
    fn open(
        data_dir: &Path,
        opts: EventLogOptions,
        now: Timestamp,
        next_seq: u64,
    ) -> Result<(EventFiles, u64)> {
        let dir = data_dir.join(EVENTS_DIR);
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| io_error("create directory", &dir, e))?;
                sync_dir(data_dir)?;
            }
            Err(e) => return Err(io_error("stat", &dir, e)),
            Ok(m) => check_owned(&dir, &m, true)?,
        }

        let mut found: Vec<(u64, PathBuf, u64)> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io_error("list", &dir, e))? {
            let entry = entry.map_err(|e| io_error("list", &dir, e))?;
            let Some(seq) = entry.file_name().to_str().and_then(parse_file_name) else {
                continue;
            };
            let path = entry.path();
            let m = fs::symlink_metadata(&path).map_err(|e| io_error("stat", &path, e))?;
            check_owned(&path, &m, false)?;
            found.push((seq, path, m.len()));
        }
        found.sort_by_key(|(seq, ..)| *seq);

        // Cut the newest files back to what the journal holds: files starting at or after
        // `next_seq` go, then the newest remaining one loses its torn or unjournaled tail (and
        // goes too if nothing is left of it).
        let mut removed = false;
        let mut current = None;
        while let Some((first_seq, path, len)) = found.pop() {
            if first_seq >= next_seq || len == 0 {
                fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
                removed = true;
                continue;
            }
            let mut file = open_nofollow(&path, OpenOptions::new().read(true).append(true))?;
            let mut data = Vec::new();
            file.read_to_end(&mut data)
                .map_err(|e| io_error("read event log file", &path, e))?;
            let (keep, last) = Self::valid_prefix(&path, &data, first_seq, next_seq)?;
            if keep == 0 {
                fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
                removed = true;
                continue;
            }
            if keep < data.len() {
                file.set_len(keep as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io_error("truncate the tail of", &path, e))?;
            }
            current = Some((file, first_seq, keep as u64, last));
            break;
        }
        if removed {
            sync_dir(&dir)?;
        }

        // Older files are only read for their first event's time (for retention): opening
        // costs the newest file, not the whole history.
        let mut files = Vec::with_capacity(found.len() + 1);
        for (first_seq, path, _) in &found {
            files.push(FileInfo {
                first_seq: *first_seq,
                first_time: Self::first_time(path, *first_seq)?,
            });
        }
        let (current, current_len, need) = match current {
            Some((file, first_seq, len, (last_seq, first_time))) => {
                files.push(FileInfo {
                    first_seq,
                    first_time,
                });
                (Some(file), len, last_seq + 1)
            }
            None => (None, 0, 0),
        };
        let mut log = EventFiles {
            dir,
            opts,
            files,
            current,
            current_len,
            dirty: false,
            next_seq: need,
            backlog: VecDeque::new(),
        };
        log.expire(now);
        Ok((log, need))
    }

    /// The time of the first event of the file of `first_seq` (read alone, not the file).
    fn first_time(path: &Path, first_seq: u64) -> Result<Timestamp> {
        let mut line = Vec::new();
        let file = open_nofollow(path, OpenOptions::new().read(true))?;
        BufReader::new(file.take(MAX_LINE_BYTES as u64 + 1))
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error("read event log file", path, e))?;
        if line.pop() != Some(b'\n') {
            return Err(damaged(path, 1, "no complete line"));
        }
        Self::check_first(path, &line, first_seq)
    }

    /// Parses the first line of the file of `first_seq`: it must be that event.
    fn check_first(path: &Path, line: &[u8], first_seq: u64) -> Result<Timestamp> {
        let (seq, event) = event_line::parse(line).map_err(|why| damaged(path, 1, &why))?;
        if seq != first_seq {
            return Err(damaged(
                path,
                1,
                &format!("event {seq} in the file of event {first_seq}"),
            ));
        }
        Ok(event.time)
    }

    /// How many bytes of the newest file to keep: its complete lines below `next_seq`. Read
    /// from the end, so that a file that needs no cut costs one line: a damaged last line is a
    /// torn write and is cut, damage before it is an error. Also returns the last sequence
    /// number kept and the first event's time.
    fn valid_prefix(
        path: &Path,
        data: &[u8],
        first_seq: u64,
        next_seq: u64,
    ) -> Result<(usize, (u64, Timestamp))> {
        // Everything after the last `\n` is a torn write.
        let mut keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut count = data[..keep].iter().filter(|&&b| b == b'\n').count();
        let mut torn_ok = true;
        while keep > 0 {
            let start = data[..keep - 1]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let line_no = count;
            let expect = first_seq + (line_no as u64 - 1);
            match event_line::parse(&data[start..keep - 1]) {
                Ok((seq, _)) if seq != expect => {
                    let why = format!("event {seq} where {expect} should be");
                    return Err(damaged(path, line_no, &why));
                }
                Ok((seq, _)) if seq < next_seq => {
                    let first_line = &data[..data.iter().position(|&b| b == b'\n').unwrap_or(0)];
                    let first_time = Self::check_first(path, first_line, first_seq)?;
                    return Ok((keep, (seq, first_time)));
                }
                // An event the journal does not hold (it lost its own torn tail).
                Ok(_) => {}
                Err(_) if torn_ok => {}
                Err(why) => return Err(damaged(path, line_no, &why)),
            }
            torn_ok = false;
            keep = start;
            count -= 1;
        }
        Ok((0, (0, Timestamp(0))))
    }

    /// Writes the backlog; rotates (and expires, when `now` is given) on the way.
    fn flush(&mut self, now: Option<Timestamp>) -> Result<()> {
        while let Some((seq, event)) = self.backlog.front() {
            let (seq, time, line) = (*seq, event.time, event_line::render(*seq, event));
            let full = self.current_len > 0
                && self.current_len + line.len() as u64 > self.opts.file_bytes;
            if self.current.is_none() || full {
                self.rotate(seq, time, now)?;
            }
            let path = self.dir.join(file_name(self.files_last_seq()));
            let file = self
                .current
                .as_mut()
                .expect("rotate leaves a current file or fails");
            if let Err(e) = file.write_all(line.as_bytes()) {
                // Cut what part of the line went out, so the next attempt starts a clean line;
                // if even that fails, the next attempt starts a new file.
                if file.set_len(self.current_len).is_err() {
                    self.current = None;
                }
                let e = io_error("append to event log file", &path, e);
                tracing::warn!("{}; the events stay in the journal and are retried", e);
                return Err(e);
            }
            self.current_len += line.len() as u64;
            self.dirty = true;
            self.next_seq = seq + 1;
            self.backlog.pop_front();
        }
        Ok(())
    }

    fn files_last_seq(&self) -> u64 {
        self.files.last().map_or(0, |f| f.first_seq)
    }

    /// Closes the current file (fsynced) and starts `events-<seq>.jsonl`.
    fn rotate(&mut self, seq: u64, time: Timestamp, now: Option<Timestamp>) -> Result<()> {
        if let Some(old) = self.current.take() {
            if self.dirty {
                let path = self.dir.join(file_name(self.files_last_seq()));
                if let Err(e) = old.sync_data() {
                    self.current = Some(old);
                    return Err(io_error("fsync", &path, e));
                }
                self.dirty = false;
            }
        }
        let path = self.dir.join(file_name(seq));
        if self.files.last().is_some_and(|f| f.first_seq == seq) {
            // The file was started but its first line failed: start it again, empty.
            let file = open_nofollow(&path, OpenOptions::new().read(true).append(true))?;
            file.set_len(0)
                .map_err(|e| io_error("truncate", &path, e))?;
            self.current = Some(file);
            self.current_len = 0;
            return Ok(());
        }
        let file = open_nofollow(
            &path,
            OpenOptions::new().read(true).append(true).create_new(true),
        )?;
        sync_dir(&self.dir)?;
        self.files.push(FileInfo {
            first_seq: seq,
            first_time: time,
        });
        self.current = Some(file);
        self.current_len = 0;
        if let Some(now) = now {
            self.expire(now);
        }
        Ok(())
    }

    /// Deletes the rotated files whose events are all older than the retention.
    fn expire(&mut self, now: Timestamp) {
        let horizon = Timestamp(
            now.millis()
                .saturating_sub(i64::from(self.opts.retain_days) * 86_400_000),
        );
        let mut removed = false;
        // File i's events all come before the first event of file i+1.
        while self.files.len() >= 2 && self.files[1].first_time < horizon {
            let path = self.dir.join(file_name(self.files[0].first_seq));
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Housekeeping: the file stays listed and is tried again at the next
                    // rotation or open.
                    tracing::warn!("{}", io_error("remove expired", &path, e));
                    return;
                }
            }
            self.files.remove(0);
        }
        if removed {
            if let Err(e) = sync_dir(&self.dir) {
                tracing::warn!("{e}");
            }
        }
    }

    fn sync(&mut self) -> Result<()> {
        self.flush(None)?;
        if let (Some(file), true) = (&self.current, self.dirty) {
            file.sync_data().map_err(|e| {
                io_error("fsync", &self.dir.join(file_name(self.files_last_seq())), e)
            })?;
            self.dirty = false;
        }
        Ok(())
    }

    fn read_all(&self) -> Result<Vec<TrailEvent>> {
        let mut events = Vec::new();
        for f in &self.files {
            let path = self.dir.join(file_name(f.first_seq));
            let data = read_file(&path)?;
            for (i, (_, line)) in lines(&data).enumerate() {
                let parsed = event_line::parse(line);
                events.push(parsed.map_err(|why| damaged(&path, i + 1, &why))?.1);
            }
        }
        events.extend(self.backlog.iter().map(|(_, e)| e.clone()));
        Ok(events)
    }
}

impl Drop for EventFiles {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!("{e}; the events are in the journal and are written at the next open");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> TrailEvent {
        TrailEvent {
            time: Timestamp(n as i64),
            event_name: format!("Op{n}"),
            principal: "p".into(),
            detail: "{}".into(),
        }
    }

    #[test]
    fn the_in_memory_ring_keeps_only_the_newest_events_up_to_its_capacity() {
        let mut log = EventLog::in_memory();
        let all: Vec<TrailEvent> = (0..RING_CAPACITY + 3).map(event).collect();
        log.append(0, &all, Timestamp(0)).unwrap();
        let kept = log.read_all().unwrap();
        assert_eq!(kept.len(), RING_CAPACITY);
        assert_eq!(kept.first(), Some(&all[3]));
        assert_eq!(kept.last(), all.last());
    }

    #[test]
    fn file_names_carry_the_first_seq_zero_padded_and_parse_strictly() {
        assert_eq!(file_name(42), "events-00000000000000000042.jsonl");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "events-42.jsonl",
            "events-0000000000000000004x.jsonl",
            "events-00000000000000000042.json",
            "x-00000000000000000042.jsonl",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    /// The lines of events `seqs`, as one file.
    fn file_of(seqs: std::ops::Range<u64>) -> Vec<u8> {
        seqs.map(|s| event_line::render(s, &event(s as usize)))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn the_newest_file_keeps_its_whole_lines_below_the_journals_next_seq() {
        let p = Path::new("events-x.jsonl");
        let data = file_of(5..9);
        let ends: Vec<usize> = lines(&data).map(|(at, l)| at + l.len() + 1).collect();
        let kept = |data: &[u8], next: u64| {
            EventFiles::valid_prefix(p, data, 5, next).map(|(keep, (last, t))| (keep, last, t))
        };
        assert_eq!(kept(&data, 9).unwrap(), (data.len(), 8, Timestamp(5)));
        assert_eq!(kept(&data, 100).unwrap(), (data.len(), 8, Timestamp(5)));
        // Events the journal does not hold are cut.
        assert_eq!(kept(&data, 7).unwrap(), (ends[1], 6, Timestamp(5)));
        assert_eq!(kept(&data, 5).unwrap().0, 0);
        // A torn last line, complete or not, is cut.
        assert_eq!(kept(&data[..data.len() - 3], 9).unwrap().0, ends[2]);
        let mut garbled = data.clone();
        garbled[ends[2] + 2] = b'#';
        assert_eq!(kept(&garbled, 9).unwrap().0, ends[2]);
        // Damage before the last line, or a line out of sequence, is an error when the cut
        // reaches it (earlier lines are not read at open; LookupEvents reports them).
        let mut garbled = data.clone();
        garbled[ends[1] + 2] = b'#';
        assert_eq!(kept(&garbled, 9).unwrap().0, data.len());
        let e = kept(&garbled, 8).unwrap_err();
        assert!(e.message().contains("events-x.jsonl line 3 is damaged"), "{e}");
        let e = kept(&file_of(6..9), 9).unwrap_err();
        assert!(e.message().contains("event 8 where 7 should be"), "{e}");
    }

    #[test]
    fn lines_leave_out_a_torn_last_piece() {
        let got: Vec<(usize, &[u8])> = lines(b"ab\n\ncd\nef").collect();
        assert_eq!(got, [(0, &b"ab"[..]), (3, &b""[..]), (4, &b"cd"[..])]);
    }
}
