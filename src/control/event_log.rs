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
//! <dir>/events/events-<first seq>.jsonl.cut-<o>      mode 0600, what recovery cut from offset o
//! ```
//!
//! Events that no journal record holds — failed calls and the data-plane aggregates
//! ([`EventLog::append_unjournaled`]) — go into the same files, marked `"journaled":false`.
//! Every line has its place in the log (`eventSeq`, consecutive over all lines, which names the
//! files) and its place relative to the journal (`journalSeq`: a journaled event's number, or
//! for an unjournaled line the number the next journaled event gets), so recovery can cut the
//! files back to what the journal holds without losing the order.
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
//! that lost its own torn tail no longer holds, with the unjournaled lines written after it —
//! and says which sequence number the files need next; the caller then appends the events of
//! the replayed records from there. After any crash the files hold every journaled event
//! exactly once, in order; unjournaled lines are kept unless they were written after an event
//! the journal lost (or with the unsynced tail of the file). What an open cuts is first copied
//! aside, durably, into `<file>.cut-<offset>` (`store::keep_cut_bytes`, as the journal keeps
//! its torn tail): the unjournaled lines among it are the only record of the calls they log.
//!
//! # Reading
//!
//! [`EventLog::lookup`] reads newest first, a page at a time: a page starts below a line's
//! `eventSeq`, found by file name (each file is named after its first line), so a page reads
//! the one or two files it needs, not the history.
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

use super::event_line::{self, Entry};
use super::state::Change;
use crate::api::kms::TrailEvent;
use crate::kms::state::KmsChange;
use crate::store::{io_error, keep_cut_bytes, sync_dir};
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
    /// The newest [`RING_CAPACITY`] lines, in memory.
    Ring(Ring),
}

/// The in-memory event log of an instance without a data directory.
#[derive(Default)]
pub struct Ring {
    lines: VecDeque<Entry>,
    next_seq: u64,
    journal_next: u64,
}

impl Ring {
    fn push(&mut self, journal_seq: u64, journaled: bool, event: TrailEvent) {
        if self.lines.len() == RING_CAPACITY {
            self.lines.pop_front();
        }
        self.lines.push_back(Entry {
            seq: self.next_seq,
            journal_seq,
            journaled,
            event,
        });
        self.next_seq += 1;
    }
}

/// Which lines a lookup wants, and how many (see [`EventLog::lookup`]).
pub struct Query<'q> {
    /// Only lines below this `eventSeq` (the previous page's token); `None`: from the newest.
    pub before: Option<u64>,
    /// At most this many lines.
    pub max: usize,
    /// Only events at or after this time.
    pub start: Option<Timestamp>,
    /// Only events at or before this time.
    pub end: Option<Timestamp>,
    /// Whether a line is wanted (beyond its time).
    pub wanted: &'q dyn Fn(&Entry) -> bool,
}

/// One page of a lookup: lines newest first, and the `before` of the next page if there may
/// be more.
pub struct Page {
    /// The lines, newest first.
    pub entries: Vec<Entry>,
    /// Where the next page starts (below this `eventSeq`), if anything older may match.
    pub next: Option<u64>,
}

impl EventLog {
    /// An in-memory ring, for an instance without a data directory.
    pub fn in_memory() -> EventLog {
        EventLog::Ring(Ring::default())
    }

    /// Opens (creating it if missing) the event log of `data_dir`, cut back to the events
    /// below `next_seq` (the sequence number the recovered state gives its next event).
    /// Returns it with the sequence number the files need next: the caller appends the
    /// replayed events from there. Deletes rotated files past retention (`now`).
    ///
    /// `journal_from` is the first event the journal still holds (`next_seq` when it holds
    /// none). Files that end below it lost events no crash can lose — the files are synced
    /// before a compaction drops the records holding their events — so lines were removed
    /// from their end; numbering on would give those lines' `eventSeq`s to new events. That
    /// is a `StorageException` naming the newest file and the events missing. (A log with no
    /// line at all, its files removed by hand, starts again.)
    pub fn open(
        data_dir: &Path,
        opts: EventLogOptions,
        now: Timestamp,
        next_seq: u64,
        journal_from: u64,
    ) -> Result<(EventLog, u64)> {
        let (files, need) = EventFiles::open(data_dir, opts, now, next_seq)?;
        if need > 0 && need < journal_from {
            let newest = files.dir.join(file_name(files.files_last_seq()));
            return Err(err!(
                StorageException,
                "event log file {} ends before journal event {need}, and the journal holds \
                 events from {journal_from} on: events {need} to {} were removed from the end \
                 of the event log; restore them, or move the events directory away to start \
                 a new log",
                newest.display(),
                journal_from - 1
            ));
        }
        Ok((EventLog::Files(files), need))
    }

    /// Appends journaled events numbered from `first_seq` (those of one committed record).
    /// Events the files already hold (a lower sequence number) are skipped. On an I/O failure
    /// the events are kept and written before the next ones (they are in the journal either
    /// way); the error says what failed.
    pub fn append<'e>(
        &mut self,
        first_seq: u64,
        events: impl IntoIterator<Item = &'e TrailEvent>,
        now: Timestamp,
    ) -> Result<()> {
        match self {
            EventLog::Files(f) => {
                for (seq, e) in (first_seq..).zip(events) {
                    if seq >= f.journal_next {
                        f.backlog.push_back((seq, true, e.clone()));
                        f.journal_next = seq + 1;
                    }
                }
                f.flush(Some(now))
            }
            EventLog::Ring(ring) => {
                for (seq, e) in (first_seq..).zip(events) {
                    ring.push(seq, true, e.clone());
                    ring.journal_next = seq + 1;
                }
                Ok(())
            }
        }
    }

    /// Appends events no journal record holds (failed calls, data-plane aggregates): written
    /// like the others (no fsync), after the journaled events appended so far.
    pub fn append_unjournaled(
        &mut self,
        events: impl IntoIterator<Item = TrailEvent>,
        now: Timestamp,
    ) -> Result<()> {
        match self {
            EventLog::Files(f) => {
                let at = f.journal_next;
                f.backlog
                    .extend(events.into_iter().map(|e| (at, false, e)));
                f.flush(Some(now))
            }
            EventLog::Ring(ring) => {
                let at = ring.journal_next;
                for e in events {
                    ring.push(at, false, e);
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
            EventLog::Ring(ring) => Ok(ring.lines.iter().map(|e| e.event.clone()).collect()),
        }
    }

    /// One page of the lines `q` wants, newest first.
    pub fn lookup(&self, q: &Query<'_>) -> Result<Page> {
        match self {
            EventLog::Files(f) => f.lookup(q),
            EventLog::Ring(ring) => {
                let mut page = Page {
                    entries: Vec::new(),
                    next: None,
                };
                let below = q.before.unwrap_or(u64::MAX);
                for e in ring.lines.iter().rev().filter(|e| e.seq < below) {
                    if q.start.is_some_and(|s| e.event.time < s) {
                        continue;
                    }
                    if q.end.is_some_and(|t| e.event.time > t) || !(q.wanted)(e) {
                        continue;
                    }
                    if page.entries.len() == q.max {
                        page.next = page.entries.last().map(|l| l.seq);
                        break;
                    }
                    page.entries.push(e.clone());
                }
                Ok(page)
            }
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

/// Where the kept part of the newest file ends.
#[derive(Debug, PartialEq, Eq)]
struct Tail {
    /// The `eventSeq` of its last line.
    last_seq: u64,
    /// The journal sequence number of the next journaled event after it.
    journal_next: u64,
    /// The time of the file's first line.
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
    /// The `eventSeq` of the next line to write.
    next_seq: u64,
    /// The journal sequence number of the next journaled event (appended, maybe not yet
    /// written).
    journal_next: u64,
    /// Lines not yet written (a write failed), oldest first: journal sequence number, whether
    /// journaled, event.
    backlog: VecDeque<(u64, bool, TrailEvent)>,
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

/// The error for the first line of `data` (the file of `first_seq`, at `path`) that is not the
/// event its place says: a line that does not parse, or one whose number is not the one before
/// it plus one (lines removed, added or moved there), naming both numbers. A file's lines are
/// numbered from the `eventSeq` in its name; across files there may be gaps (files removed by
/// hand, as `docs/events.md` allows).
fn out_of_sequence(path: &Path, data: &[u8], first_seq: u64) -> crate::KmsError {
    for (n, (_, line)) in lines(data).enumerate() {
        let expect = first_seq + n as u64;
        match event_line::parse(line) {
            Err(why) => return damaged(path, n + 1, &why),
            Ok(e) if e.seq != expect => return damaged(path, n + 1, &sequence_break(e.seq, expect)),
            Ok(_) => {}
        }
    }
    // Not reached: called on a file one of whose lines is out of sequence.
    damaged(path, 1, "lines out of sequence")
}

/// What a line numbered `seq` where `expect` should be says about the lines around it.
fn sequence_break(seq: u64, expect: u64) -> String {
    if seq > expect {
        let missing = if seq - expect == 1 {
            format!("event {expect} is missing here")
        } else {
            format!("events {expect} to {} are missing here", seq - 1)
        };
        format!("event {seq} where {expect} should be: {missing}")
    } else {
        format!("event {seq} where {expect} should be: an event repeated or moved")
    }
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

        // Cut the newest files back to what the journal holds: the newest file loses its torn
        // or unjournaled tail (and goes if nothing is left of it, the file before it then
        // being cut the same way).
        let mut removed = false;
        let mut current = None;
        while let Some((first_seq, path, len)) = found.pop() {
            let keep_tail = if len == 0 {
                None
            } else {
                let mut file = open_nofollow(&path, OpenOptions::new().read(true).append(true))?;
                let mut data = Vec::new();
                file.read_to_end(&mut data)
                    .map_err(|e| io_error("read event log file", &path, e))?;
                let (keep, tail) = Self::valid_prefix(&path, &data, first_seq, next_seq)?;
                if keep < data.len() {
                    // What is cut goes aside first, durably, as the journal's torn tail does.
                    let cut = (keep as u64, data.len() as u64);
                    let kept = keep_cut_bytes(&file, &path, cut, "event log file")?;
                    tracing::warn!(
                        "event log file {}: {} bytes from offset {keep} do not match the \
                         journal (a torn line, or events of records it lost and lines \
                         written after them): kept in {}, and cut",
                        path.display(),
                        data.len() - keep,
                        kept.display()
                    );
                }
                match tail {
                    Some(tail) => {
                        if keep < data.len() {
                            file.set_len(keep as u64)
                                .and_then(|()| file.sync_all())
                                .map_err(|e| io_error("truncate the tail of", &path, e))?;
                        }
                        Some((file, keep as u64, tail))
                    }
                    None => None,
                }
            };
            match keep_tail {
                Some((file, len, tail)) => {
                    current = Some((file, first_seq, len, tail));
                    break;
                }
                None => {
                    fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
                    removed = true;
                }
            }
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
        let (current, current_len, next_line, need) = match current {
            Some((file, first_seq, len, tail)) => {
                files.push(FileInfo {
                    first_seq,
                    first_time: tail.first_time,
                });
                (Some(file), len, tail.last_seq + 1, tail.journal_next)
            }
            None => (None, 0, 0, 0),
        };
        let mut log = EventFiles {
            dir,
            opts,
            files,
            current,
            current_len,
            dirty: false,
            next_seq: next_line,
            journal_next: need,
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

    /// Parses the first line of the file of `first_seq`: it must be that line.
    fn check_first(path: &Path, line: &[u8], first_seq: u64) -> Result<Timestamp> {
        let entry = event_line::parse(line).map_err(|why| damaged(path, 1, &why))?;
        if entry.seq != first_seq {
            return Err(damaged(
                path,
                1,
                &format!("event {} in the file of event {first_seq}", entry.seq),
            ));
        }
        Ok(entry.event.time)
    }

    /// How many bytes of the newest file to keep: its complete lines that the journal (whose
    /// next event is `next_journal`) still accounts for. Read from the end, so that a file that
    /// needs no cut costs one line: a damaged last line is a torn write and is cut, damage
    /// before it is an error. With something kept, also says where the file ends.
    fn valid_prefix(
        path: &Path,
        data: &[u8],
        first_seq: u64,
        next_journal: u64,
    ) -> Result<(usize, Option<Tail>)> {
        // Everything after the last `\n` is a torn write.
        let mut keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut count = data[..keep].iter().filter(|&&b| b == b'\n').count();
        let mut torn_ok = true;
        let mut end = keep;
        while end > 0 {
            let start = data[..end - 1]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let line_no = count;
            let expect = first_seq + (line_no as u64 - 1);
            match event_line::parse(&data[start..end - 1]) {
                // Lines missing, added or moved before this one: the first line out of
                // sequence is where, found from the start.
                Ok(e) if e.seq != expect => return Err(out_of_sequence(path, data, first_seq)),
                // An event the journal does not hold (it lost its own torn tail), or a line
                // written after one: cut with everything after it.
                Ok(e) if (e.journaled && e.journal_seq >= next_journal)
                    || (!e.journaled && e.journal_seq > next_journal) =>
                {
                    keep = start;
                }
                Ok(e) => {
                    let first_line = &data[..data.iter().position(|&b| b == b'\n').unwrap_or(0)];
                    let first_time = Self::check_first(path, first_line, first_seq)?;
                    let journal_next = e.journal_seq + u64::from(e.journaled);
                    return Ok((
                        keep,
                        Some(Tail {
                            last_seq: e.seq,
                            journal_next,
                            first_time,
                        }),
                    ));
                }
                Err(_) if torn_ok => keep = start,
                Err(why) => return Err(damaged(path, line_no, &why)),
            }
            torn_ok = false;
            end = start;
            count -= 1;
        }
        Ok((0, None))
    }

    /// Writes the backlog; rotates (and expires, when `now` is given) on the way.
    fn flush(&mut self, now: Option<Timestamp>) -> Result<()> {
        while let Some((journal_seq, journaled, event)) = self.backlog.front() {
            let seq = self.next_seq;
            let line = event_line::render(&Entry {
                seq,
                journal_seq: *journal_seq,
                journaled: *journaled,
                event: event.clone(),
            });
            let time = event.time;
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
                match event_line::parse(line) {
                    Ok(e) if e.seq == f.first_seq + i as u64 => events.push(e.event),
                    _ => return Err(out_of_sequence(&path, &data, f.first_seq)),
                }
            }
        }
        events.extend(self.backlog.iter().map(|(.., e)| e.clone()));
        Ok(events)
    }

    /// One page of the lines `q` wants, newest first: starts at the file holding the line just
    /// below `q.before` (found by name), and reads older files only while the page is not full
    /// and their events may still be recent enough.
    fn lookup(&self, q: &Query<'_>) -> Result<Page> {
        let mut page = Page {
            entries: Vec::new(),
            next: None,
        };
        let below = q.before.unwrap_or(u64::MAX);
        // Files whose first line is below `below`: the last of them holds the page's start.
        let mut i = self.files.partition_point(|f| f.first_seq < below);
        while i > 0 {
            i -= 1;
            let f = &self.files[i];
            // Every event of file i comes before the first event of file i + 1: past the
            // start time, nothing older can match.
            if let (Some(start), Some(next)) = (q.start, self.files.get(i + 1)) {
                if next.first_time < start {
                    break;
                }
            }
            let path = self.dir.join(file_name(f.first_seq));
            let data = match read_file(&path) {
                Ok(data) => data,
                // Expired between the listing and now.
                Err(_) if !path.exists() => break,
                Err(e) => return Err(e),
            };
            let all: Vec<(usize, &[u8])> = lines(&data).collect();
            for (n, (_, line)) in all.iter().enumerate().rev() {
                let e = event_line::parse(line).map_err(|why| damaged(&path, n + 1, &why))?;
                if e.seq != f.first_seq + n as u64 {
                    // Read from the end: the first line out of place is found from the start.
                    return Err(out_of_sequence(&path, &data, f.first_seq));
                }
                if e.seq >= below
                    || q.start.is_some_and(|s| e.event.time < s)
                    || q.end.is_some_and(|t| e.event.time > t)
                    || !(q.wanted)(&e)
                {
                    continue;
                }
                if page.entries.len() == q.max {
                    page.next = page.entries.last().map(|l| l.seq);
                    return Ok(page);
                }
                page.entries.push(e);
            }
        }
        Ok(page)
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

    /// The lines of journaled events `seqs` (line and journal numbers alike), as one file.
    fn file_of(seqs: std::ops::Range<u64>) -> Vec<u8> {
        seqs.map(|s| {
            event_line::render(&Entry {
                seq: s,
                journal_seq: s,
                journaled: true,
                event: event(s as usize),
            })
        })
        .collect::<String>()
        .into_bytes()
    }

    #[test]
    fn the_newest_file_keeps_its_whole_lines_below_the_journals_next_seq() {
        let p = Path::new("events-x.jsonl");
        let data = file_of(5..9);
        let ends: Vec<usize> = lines(&data).map(|(at, l)| at + l.len() + 1).collect();
        let kept = |data: &[u8], next: u64| {
            EventFiles::valid_prefix(p, data, 5, next)
                .map(|(keep, tail)| (keep, tail.as_ref().map_or(0, |t| t.last_seq), tail.map_or(Timestamp(-1), |t| t.first_time)))
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
        // Found at the last line, reported at the first out of place.
        let e = kept(&file_of(6..9), 9).unwrap_err();
        let want = "line 1 is damaged: event 6 where 5 should be: event 5 is missing here";
        assert!(e.message().contains(want), "{e}");
        // Line 2 moved to the end: found at the last line, reported at line 2.
        let mut moved = data.clone();
        let line2: Vec<u8> = moved.drain(ends[0]..ends[1]).collect();
        moved.extend_from_slice(&line2);
        let e = kept(&moved, 9).unwrap_err();
        let want = "line 2 is damaged: event 7 where 6 should be: event 6 is missing here";
        assert!(e.message().contains(want), "{e}");
    }

    #[test]
    fn unjournaled_lines_are_kept_unless_written_after_an_event_the_journal_lost() {
        let p = Path::new("events-x.jsonl");
        // Lines 0..4: journaled 0, unjournaled (before journaled 1), journaled 1, unjournaled
        // (before journaled 2).
        let entries = [(0, true), (1, false), (1, true), (2, false)];
        let data: String = entries
            .iter()
            .enumerate()
            .map(|(i, &(j, journaled))| {
                event_line::render(&Entry {
                    seq: i as u64,
                    journal_seq: j,
                    journaled,
                    event: event(i),
                })
            })
            .collect();
        let data = data.into_bytes();
        let ends: Vec<usize> = lines(&data).map(|(at, l)| at + l.len() + 1).collect();
        let tail = |next| EventFiles::valid_prefix(p, &data, 0, next).unwrap();
        // The journal holds 0 and 1: everything stays; the next journaled event is 2.
        let (keep, t) = tail(2);
        assert_eq!((keep, t.as_ref().map(|t| (t.last_seq, t.journal_next))), (data.len(), Some((3, 2))));
        // The journal lost event 1: it goes with the line after it; the line before it stays.
        let (keep, t) = tail(1);
        assert_eq!((keep, t.map(|t| (t.last_seq, t.journal_next))), (ends[1], Some((1, 1))));
        // The journal holds nothing: only lines before event 0 could stay, and there are none.
        assert_eq!(tail(0).0, 0);
    }

    #[test]
    fn a_lookup_page_of_the_ring_is_newest_first_and_says_where_the_next_starts() {
        let mut log = EventLog::in_memory();
        let all: Vec<TrailEvent> = (0..5).map(event).collect();
        log.append(0, &all, Timestamp(0)).unwrap();
        log.append_unjournaled([event(5)], Timestamp(0)).unwrap();
        let every = |_: &Entry| true;
        let q = |before, max| Query {
            before,
            max,
            start: None,
            end: None,
            wanted: &every,
        };
        let page = log.lookup(&q(None, 4)).unwrap();
        let seqs: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [5, 4, 3, 2]);
        assert!(!page.entries[0].journaled && page.entries[0].journal_seq == 5);
        assert_eq!(page.next, Some(2));
        let page = log.lookup(&q(page.next, 4)).unwrap();
        let seqs: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
        assert_eq!((seqs, page.next), (vec![1, 0], None));
    }

    #[test]
    fn lines_leave_out_a_torn_last_piece() {
        let got: Vec<(usize, &[u8])> = lines(b"ab\n\ncd\nef").collect();
        assert_eq!(got, [(0, &b"ab"[..]), (3, &b""[..]), (4, &b"cd"[..])]);
    }
}
