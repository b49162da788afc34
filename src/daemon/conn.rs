//! One client connection: its socket, identity, and the reused, capped read and write buffers.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::UnixStream;

use super::identity::Peer;
use crate::protocol::{HEADER_LEN, MAX_BODY};
use crate::Kms;

/// The read buffer never grows past this: two largest frames, so that after the complete
/// frames of a read are handled the rest (less than one frame) always leaves room to read.
pub(crate) const READ_CAP: usize = 2 * (HEADER_LEN + MAX_BODY as usize);
/// Initial read buffer size, and what an idle connection's buffer shrinks back to.
pub(crate) const READ_START: usize = 64 << 10;
/// A drained write buffer whose capacity exceeds this is shrunk back to [`READ_START`].
const WRITE_KEEP: usize = 1 << 20;

/// How a read pass ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filled {
    /// Nothing more to read now.
    WouldBlock,
    /// The buffer is at its cap: handle its frames, then read again.
    Full,
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
    /// Last completed request frame or write progress.
    pub last_progress: Instant,
    /// No more input is handled; the connection closes once its replies are flushed.
    pub closing: bool,
    /// Whether WRITABLE interest is registered.
    pub writable_interest: bool,
    /// Requests handed to a helper thread, not yet answered.
    pub in_flight: usize,
    /// The Hello was answered; until then only a Hello is accepted.
    pub greeted: bool,
}

impl Conn {
    pub(super) fn new(stream: UnixStream, serial: u64, peer: Peer, kms: Kms) -> Conn {
        Conn {
            stream,
            serial,
            peer,
            kms,
            rbuf: vec![0; READ_START],
            filled: 0,
            wbuf: Vec::new(),
            wpos: 0,
            last_progress: Instant::now(),
            closing: false,
            writable_interest: false,
            in_flight: 0,
            greeted: false,
        }
    }

    /// Reads until the socket would block, the peer closed, or the buffer is at its cap.
    pub(super) fn fill(&mut self) -> io::Result<Filled> {
        loop {
            if self.filled == self.rbuf.len() {
                if self.rbuf.len() >= READ_CAP {
                    return Ok(Filled::Full);
                }
                let grown = (self.rbuf.len() * 2).min(READ_CAP);
                self.rbuf.resize(grown, 0);
            }
            match self.stream.read(&mut self.rbuf[self.filled..]) {
                Ok(0) => return Ok(Filled::Eof),
                Ok(n) => self.filled += n,
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
        if self.filled == 0 && self.rbuf.len() > READ_START {
            self.rbuf.truncate(READ_START);
            self.rbuf.shrink_to_fit();
        }
    }

    /// Bytes of replies not yet written.
    pub(super) fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Writes pending replies until done or the socket would block. Returns true when all are
    /// written.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Replies hold plaintexts and data keys: wipe them once sent.
        crate::secret::wipe_vec(&mut self.wbuf);
        self.wpos = 0;
        if self.wbuf.capacity() > WRITE_KEEP {
            self.wbuf.shrink_to(READ_START);
        }
        Ok(true)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        crate::secret::wipe_vec(&mut self.rbuf);
        crate::secret::wipe_vec(&mut self.wbuf);
    }
}
