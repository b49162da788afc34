//! One client connection: its socket, identity, and the reused, capped read and write buffers,
//! with what the quotas need to know about them: the bytes they hold, the replies not yet
//! written, and when a whole frame last went in or out (the idle timeout counts frames, not
//! bytes).

use std::io::{self, Read, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use mio::net::UnixStream;

use super::dispatch::Job;
use super::identity::Peer;
use super::quota::UidMemory;
use crate::protocol::{parse_header, HEADER_LEN, MAX_BODY};
use crate::Kms;

/// The read buffer never grows past this: two largest frames, so that after the complete
/// frames of a read are handled the rest (less than one frame) always leaves room to read.
pub(crate) const READ_CAP: usize = 2 * (HEADER_LEN + MAX_BODY as usize);
/// Initial read buffer size, and what an idle connection's buffer shrinks back to.
pub(crate) const READ_START: usize = 64 << 10;
/// A drained write buffer whose capacity exceeds this is shrunk back to it, so that an idle
/// connection holds little beyond what its uid's memory quota counts.
const WRITE_KEEP: usize = READ_START;
/// Written replies at the head of the write buffer are dropped once they are this many bytes
/// and at least half the buffer, so that a client that keeps reading (but never all) does not
/// make the buffer grow without bound.
const WRITE_COMPACT: usize = 64 << 10;

/// How a read pass ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filled {
    /// Nothing more to read now.
    WouldBlock,
    /// The buffer is at its cap: handle its frames, then read again.
    Full,
    /// The byte limit given was reached (memory quota): more may be waiting on the socket.
    Limited,
    /// The peer closed its side.
    Eof,
}

pub(crate) struct Conn {
    pub stream: UnixStream,
    /// Distinguishes this connection from a later one in the same slot.
    pub serial: u64,
    pub peer: Peer,
    /// The engine handle acting as the peer's principal.
    pub kms: Kms,
    /// Read buffer: `rbuf[..filled]` holds unread bytes; its length is its usable size.
    pub rbuf: Vec<u8>,
    pub filled: usize,
    /// Replies not yet written: `wbuf[wpos..]`.
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    /// End of the reply frames of `wbuf` already counted in `unsent`.
    scanned: usize,
    /// End of the reply frames of `wbuf` already written whole.
    delivered: usize,
    /// Reply frames in `wbuf` not yet written whole.
    pub unsent: usize,
    /// Last request frame received whole or reply frame written whole.
    pub last_progress: Instant,
    /// The peer closed its side: no more bytes will come.
    pub eof: bool,
    /// An event reported the peer's side closed (`EPOLLRDHUP`/`EPOLLHUP`): reads must go on
    /// to the end of the stream, since no later event will come for it.
    pub hangup: bool,
    /// Reading stopped for lack of room (reply cap, in-flight limit, memory quota): read
    /// again once replies are written or the uid's memory goes down.
    pub stalled: bool,
    /// A batch request being answered a slice per event-loop turn.
    pub job: Option<Job>,
    /// What the requests answered off the loop (on a helper or control thread) are charged
    /// until answered (0: none).
    pub offloaded: usize,
    /// Bytes charged to the uid's memory quota for this connection.
    pub charged: usize,
    /// The uid's memory, whose room this connection reads without the quotas' lock.
    pub uid_memory: UidMemory,
    /// No more input is handled; the connection closes once its replies are flushed.
    pub closing: bool,
    /// Whether WRITABLE interest is registered.
    pub writable_interest: bool,
    /// Requests handed to a helper thread, not yet answered.
    pub in_flight: usize,
    /// The Hello was answered; until then only a Hello is accepted.
    pub greeted: bool,
    /// A slow HSM served a request of this connection (`Fault::SlowHsm`): its replies are not
    /// written, nor more requests read, before this time.
    pub held_until: Option<Instant>,
    /// The length of the frame at the start of `rbuf` once its header is read and its body
    /// is not (see [`Conn::track_partial`]).
    pub next_len: Option<usize>,
    /// That length, charged whole before its body is read (0: nothing reserved).
    pub reserved: usize,
    /// Set when the connection closes: a control-plane call of it still waiting for its
    /// control thread is then dropped unrun (nobody is left to answer), its charge given back.
    /// One per connection, shared with each call it sends there.
    pub gone: Arc<AtomicBool>,
}

impl Conn {
    pub(super) fn new(
        stream: UnixStream,
        serial: u64,
        peer: Peer,
        uid_memory: UidMemory,
        kms: Kms,
    ) -> Conn {
        Conn {
            stream,
            serial,
            peer,
            kms,
            rbuf: vec![0; READ_START],
            filled: 0,
            wbuf: Vec::new(),
            wpos: 0,
            scanned: 0,
            delivered: 0,
            unsent: 0,
            last_progress: Instant::now(),
            eof: false,
            hangup: false,
            stalled: false,
            job: None,
            offloaded: 0,
            charged: 0,
            uid_memory,
            closing: false,
            writable_interest: false,
            in_flight: 0,
            greeted: false,
            held_until: None,
            next_len: None,
            reserved: 0,
            gone: Arc::default(),
        }
    }

    /// Reads until the socket would block, the peer closed, the buffer is at its cap, or
    /// `limit` more bytes were read.
    ///
    /// A read that returns fewer bytes than asked has drained the socket (epoll(7): for
    /// stream sockets a short read means the input is exhausted), so it counts as
    /// [`Filled::WouldBlock`] without a second read to see `EAGAIN`: that read would sit
    /// between a request and its answer. Bytes arriving after it raise a new edge-triggered
    /// event. Not after a hangup event ([`Conn::hangup`]): the end of the stream raises no
    /// further event, so reading goes on until it is seen.
    pub(super) fn fill(&mut self, limit: usize) -> io::Result<Filled> {
        let stop = self.filled.saturating_add(limit);
        loop {
            if self.filled >= stop {
                return Ok(Filled::Limited);
            }
            if self.filled == self.rbuf.len() {
                if self.rbuf.len() >= READ_CAP {
                    return Ok(Filled::Full);
                }
                // To exactly what this read may take, not twice the buffer: `limit` is what
                // the quotas allowed (a reserved frame's rest, or at most a floor's worth),
                // and the buffer then holds no more than that, which [`Conn::memory`]
                // charges. Requests carry plaintexts: growing wipes the allocation left.
                let grown = stop.min(READ_CAP);
                let more = grown - self.rbuf.len();
                crate::secret::reserve_exact_wiping(&mut self.rbuf, more);
                self.rbuf.resize(grown, 0);
            }
            let end = self.rbuf.len().min(stop);
            match self.stream.read(&mut self.rbuf[self.filled..end]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(Filled::Eof);
                }
                Ok(n) => {
                    self.filled += n;
                    let short = self.filled < end;
                    if short && !self.hangup {
                        return Ok(Filled::WouldBlock);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Filled::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the first `n` bytes of the read buffer (the frames handled).
    pub(super) fn consume(&mut self, n: usize) {
        let old = self.filled;
        self.rbuf.copy_within(n..old, 0);
        self.filled -= n;
        // Request bodies hold plaintexts and passwords: leave no copy behind.
        crate::secret::wipe(&mut self.rbuf[self.filled..old]);
        // A grown buffer left mostly empty goes back to its start size (what it holds fits),
        // moved whole: shrinking in place could free its tail, which held the frames handled,
        // unwiped.
        if self.rbuf.len() > READ_START && self.filled <= READ_START / 2 {
            let mut small = vec![0; READ_START];
            small[..self.filled].copy_from_slice(&self.rbuf[..self.filled]);
            let mut grown = std::mem::replace(&mut self.rbuf, small);
            crate::secret::wipe_vec(&mut grown);
        }
    }

    /// Keeps [`Conn::next_len`] and the reservation in step after frames were handled:
    /// `consumed` bytes of them (the frame at the start, reserved or not, among them), and
    /// `incomplete` when what is left begins with a frame not yet whole.
    pub(super) fn track_partial(&mut self, consumed: usize, incomplete: bool) {
        if consumed > 0 {
            self.reserved = 0;
        }
        self.next_len = None;
        if incomplete && self.filled >= HEADER_LEN {
            // Its header was checked as the frames were handled; a bad one ended them.
            if let Ok(Some(h)) = parse_header(&self.rbuf[..self.filled]) {
                self.next_len = Some(h.frame_len()).filter(|&n| n > self.filled);
            }
        }
    }

    /// Bytes of replies not yet written.
    pub(super) fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// What this connection holds against its uid's memory quota: request bytes read and not
    /// yet handled, or the read buffer's whole length once it grew past its start size (or
    /// what is reserved for the frame being read; a batch being answered counts its frame),
    /// replies not yet written.
    pub(super) fn memory(&self) -> usize {
        let read = if self.rbuf.len() > READ_START {
            self.rbuf.len()
        } else {
            self.filled
        };
        read.max(self.reserved)
            + self.pending()
            + self.offloaded
            + self.job.as_ref().map_or(0, Job::frame_bytes)
    }

    /// Requests decoded and not yet answered on the socket, besides those on helper threads:
    /// reply frames not yet written whole, and a batch being answered.
    pub(super) fn outstanding(&self) -> usize {
        self.unsent + usize::from(self.job.is_some())
    }

    /// Counts the reply frames appended to the write buffer since the last call. Every
    /// appended reply is a whole frame (the encoders write header and body at once).
    pub(super) fn count_replies(&mut self) {
        while let Some(end) = frame_end(&self.wbuf, self.scanned) {
            self.scanned = end;
            self.unsent += 1;
        }
    }

    /// Writes pending replies until done or the socket would block. Returns true when all are
    /// written. Each reply frame written whole is progress for the idle timeout.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.count_replies();
                    return Err(e);
                }
            }
        }
        if self.wpos < self.wbuf.len() {
            // Some replies wait for the socket: count those appended since the last call and
            // those written whole, walking the frames.
            self.count_replies();
            let mut whole = 0;
            while let Some(end) = frame_end(&self.wbuf, self.delivered) {
                if end > self.wpos {
                    break;
                }
                self.delivered = end;
                whole += 1;
            }
            if whole > 0 {
                self.unsent -= whole;
                self.last_progress = Instant::now();
            }
            if self.delivered >= WRITE_COMPACT && self.delivered * 2 >= self.wbuf.len() {
                self.compact();
            }
            return Ok(false);
        }
        // Everything is written, so every reply in the buffer went out whole: none is unsent,
        // and no walk over the frames is needed to know it (it was a visible part of a loop's
        // time at 2, 256: each step waits on the length the step before read).
        debug_assert_eq!(
            whole_frames_end(&self.wbuf, self.scanned),
            self.wbuf.len(),
            "the write buffer holds whole reply frames only"
        );
        if self.delivered < self.wbuf.len() {
            self.last_progress = Instant::now();
        }
        self.unsent = 0;
        // Replies hold plaintexts and data keys: wipe them once sent. Only the length needs
        // it: the buffer's spare capacity never holds a reply (every cut of it wipes what it
        // drops, every growth wipes the allocation it leaves).
        crate::secret::truncate_wiping(&mut self.wbuf, 0);
        self.wpos = 0;
        self.scanned = 0;
        self.delivered = 0;
        if self.wbuf.capacity() > WRITE_KEEP {
            self.wbuf.shrink_to(WRITE_KEEP);
        }
        Ok(true)
    }

    /// Drops the replies at the head of the write buffer that were written whole, wiping the
    /// bytes this leaves behind; cuts at a frame boundary, so the frame cursors stay valid.
    fn compact(&mut self) {
        let n = self.delivered;
        crate::secret::drop_front_wiping(&mut self.wbuf, n);
        self.wpos -= n;
        self.scanned -= n;
        self.delivered = 0;
    }
}

/// The end of the last whole frame of the run of them that starts at `start` of `buf`.
fn whole_frames_end(buf: &[u8], mut start: usize) -> usize {
    while let Some(end) = frame_end(buf, start) {
        start = end;
    }
    start
}

/// The end of the frame that starts at `start` of `buf`, if the frame is whole there.
fn frame_end(buf: &[u8], start: usize) -> Option<usize> {
    // The daemon's own replies: their headers are valid, only their length is read.
    let end = start + crate::protocol::written_frame_len(buf.get(start..)?)?;
    (end <= buf.len()).then_some(end)
}

impl Drop for Conn {
    fn drop(&mut self) {
        crate::secret::wipe_vec(&mut self.rbuf);
        crate::secret::wipe_vec(&mut self.wbuf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection over one end of a socket pair, and the peer's end.
    fn pair() -> (Conn, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let peer = super::super::identity::peer_credentials(&ours).unwrap();
        let config = super::super::DaemonConfig::default();
        let mut quotas: super::super::quota::Quotas = super::super::quota::Quotas::new(&config, 0);
        quotas.admit(peer.uid).unwrap();
        let memory = quotas.memory_of(peer.uid);
        let conn = Conn::new(
            UnixStream::from_std(ours),
            1,
            peer,
            memory,
            Kms::in_memory(),
        );
        (conn, theirs)
    }

    #[test]
    fn a_short_read_counts_as_drained_and_later_bytes_are_read_by_the_next_fill() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"first").unwrap();
        assert_eq!(conn.fill(READ_CAP).unwrap(), Filled::WouldBlock);
        assert_eq!(&conn.rbuf[..conn.filled], b"first");
        peer.write_all(b" second").unwrap();
        assert_eq!(conn.fill(READ_CAP).unwrap(), Filled::WouldBlock);
        assert_eq!(&conn.rbuf[..conn.filled], b"first second");
        assert!(!conn.eof);
    }

    #[test]
    fn after_a_hangup_event_one_fill_reads_the_last_bytes_and_the_end_of_the_stream() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"last words").unwrap();
        drop(peer);
        conn.hangup = true;
        assert_eq!(conn.fill(READ_CAP).unwrap(), Filled::Eof);
        assert_eq!(&conn.rbuf[..conn.filled], b"last words");
        assert!(conn.eof);
    }

    #[test]
    fn a_fill_stops_at_its_limit_with_more_waiting() {
        let (mut conn, mut peer) = pair();
        peer.write_all(&[7u8; 100]).unwrap();
        assert_eq!(conn.fill(40).unwrap(), Filled::Limited);
        assert_eq!(conn.filled, 40);
        assert_eq!(conn.fill(READ_CAP).unwrap(), Filled::WouldBlock);
        assert_eq!(conn.filled, 100);
    }

    #[test]
    fn a_frame_read_whole_grows_the_buffer_to_its_length_and_all_the_buffer_holds_is_charged() {
        // The largest frame, and one just over twice the start size: doubling had left
        // 2 MiB and 256 KiB buffers, charged a megabyte and one byte.
        for whole in [HEADER_LEN + MAX_BODY as usize, 2 * READ_START + 1] {
            let (mut conn, mut peer) = pair();
            // As `read_limit` leaves it once the header is read: the whole frame charged.
            conn.reserved = whole;
            let sender = std::thread::spawn(move || {
                peer.write_all(&vec![0x5A; whole - 1]).unwrap();
                peer
            });
            let deadline = Instant::now() + std::time::Duration::from_secs(20);
            while conn.filled < whole - 1 {
                assert!(Instant::now() < deadline, "read {} of {whole}", conn.filled);
                let limit = whole - conn.filled;
                assert_ne!(conn.fill(limit).unwrap(), Filled::Eof);
            }
            let _peer = sender.join().unwrap();
            assert_eq!(conn.rbuf.len(), whole, "grown to the frame's length");
            assert!(conn.rbuf.capacity() <= whole, "{}", conn.rbuf.capacity());
            assert!(conn.memory() >= conn.rbuf.capacity());
            // Handled, the buffer goes back to its start size and its charge with it.
            let handled = conn.filled;
            conn.consume(handled);
            conn.track_partial(handled, false);
            assert_eq!(conn.rbuf.len(), READ_START);
            assert_eq!(conn.memory(), 0);
        }
    }

    #[test]
    fn a_buffer_grown_past_its_start_size_is_charged_its_length_though_little_is_left_in_it() {
        let (mut conn, mut peer) = pair();
        let sent = READ_START + 40_000;
        // From a thread of its own: more than a socket's buffer may hold.
        let sender = std::thread::spawn(move || {
            peer.write_all(&vec![1u8; sent]).unwrap();
            peer
        });
        while conn.filled < sent {
            assert_ne!(conn.fill(READ_START).unwrap(), Filled::Eof);
        }
        let _peer = sender.join().unwrap();
        let held = conn.rbuf.len();
        // Each `fill` may grow the buffer to what it has read plus its limit, before it learns
        // that no more is coming: how far depends on how the bytes arrived.
        assert!(held > READ_START && held <= sent + READ_START, "{held}");
        // What is left is more than half the start size: the buffer is kept, and charged.
        conn.consume(READ_START - 10_000);
        assert_eq!(conn.filled, 50_000);
        assert_eq!(conn.rbuf.len(), held);
        assert_eq!(conn.memory(), held);
    }

    /// The first `n` bytes of `v`'s allocation, past its length too.
    fn allocation_prefix(v: &mut Vec<u8>, n: usize) -> Vec<u8> {
        let mut bytes = v.clone();
        let spare = n.saturating_sub(v.len());
        // SAFETY: the tests below only read bytes they wrote before (the filler, the replies).
        #[allow(unsafe_code)]
        bytes.extend(
            v.spare_capacity_mut()[..spare]
                .iter()
                .map(|b| unsafe { b.assume_init() }),
        );
        bytes
    }

    const SECRET: u8 = 0xAB;

    /// Appends the reply to a GenerateDataKey whose data key is 32 [`SECRET`] bytes.
    fn data_key_reply(out: &mut Vec<u8>, id: u64) {
        let op = crate::ops::Op::GenerateDataKey;
        crate::protocol::encode_data_key_reply(out, id, op, b"blob", Some(&[SECRET; 32]), "arn");
    }

    fn secrets(bytes: &[u8]) -> usize {
        bytes.iter().filter(|&&b| b == SECRET).count()
    }

    #[test]
    fn a_flush_wipes_the_replies_it_wrote_and_leaves_none_in_the_buffer() {
        let (mut conn, mut peer) = pair();
        // Every byte of the allocation written once (with a filler), so the test may read it.
        conn.wbuf = vec![0x55; WRITE_KEEP];
        conn.wbuf.clear();
        for id in 0..100 {
            data_key_reply(&mut conn.wbuf, id);
        }
        let written = conn.wbuf.len();
        assert_eq!(secrets(&conn.wbuf), 100 * 32);
        assert!(conn.flush().unwrap(), "the replies fit the socket's buffer");
        let mut got = vec![0u8; written];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(secrets(&got), 100 * 32, "the data keys reached the peer");
        assert!(conn.wbuf.is_empty());
        assert_eq!(conn.wbuf.capacity(), WRITE_KEEP, "the allocation is kept");
        let after = allocation_prefix(&mut conn.wbuf, WRITE_KEEP);
        assert_eq!(
            secrets(&after),
            0,
            "no data key is left in the buffer's allocation"
        );
    }

    #[test]
    fn replies_are_outstanding_until_written_whole_and_none_once_all_are_written() {
        let (mut conn, mut peer) = pair();
        // More replies than the socket's buffer takes while the peer reads nothing.
        let mut frames = 0;
        while conn.wbuf.len() < 4 << 20 {
            data_key_reply(&mut conn.wbuf, frames);
            frames += 1;
        }
        let frame_len = conn.wbuf.len() / frames as usize;
        assert!(
            !conn.flush().unwrap(),
            "the socket cannot take 4 MiB at once"
        );
        let sent_whole = conn.wpos / frame_len;
        assert!(sent_whole > 0 && sent_whole < frames as usize);
        assert_eq!(conn.outstanding(), frames as usize - sent_whole);
        // More replies while those wait: counted at the next flush.
        for id in frames..frames + 10 {
            data_key_reply(&mut conn.wbuf, id);
        }
        let total = frames as usize + 10;
        // The peer reads everything as it comes; flushing until all is written.
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; total * frame_len];
            peer.read_exact(&mut got).unwrap();
        });
        let before = conn.last_progress;
        let mut written = false;
        while !written {
            written = conn.flush().unwrap();
            assert!(conn.outstanding() <= total);
            if !written {
                // Waits for the peer to make room (the socket reports it writable).
                std::thread::yield_now();
            }
        }
        reader.join().unwrap();
        assert_eq!(conn.outstanding(), 0, "every reply was written whole");
        assert!(
            conn.last_progress > before,
            "writing them whole is progress"
        );
        assert!(conn.wbuf.is_empty());
    }

    #[test]
    fn a_reply_too_large_for_a_frame_is_cut_back_leaving_no_secret_behind() {
        use crate::api::kms::GenerateRandomResponse;
        use crate::ops::{Op, Response};
        let mut out = vec![0x55; 2 * (MAX_BODY as usize + 4096)];
        let room = out.len();
        out.clear();
        data_key_reply(&mut out, 1);
        // Encoded whole into the buffer, then cut back and answered with an error instead.
        let big = Response::GenerateRandom(GenerateRandomResponse {
            plaintext: crate::secret::SecretBytes::new(vec![SECRET; MAX_BODY as usize + 1]),
        });
        crate::protocol::encode_response(&mut out, 2, Op::GenerateRandom.code(), &Ok(big));
        assert_eq!(out.capacity(), room, "the buffer did not move");
        assert!(
            out.len() < 1024,
            "an error reply in its place: {} bytes",
            out.len()
        );
        let whole = allocation_prefix(&mut out, room);
        assert_eq!(
            secrets(&whole),
            32,
            "only the data key's reply holds secret bytes"
        );
    }
}
