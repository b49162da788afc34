//! Pooled randomness: one `aws_lc_rs::rand::fill` call per 4 KiB instead of one per request.
//!
//! A call to aws-lc's generator costs ~500 ns of fixed overhead on this machine, more than an
//! AES-GCM seal of a small message (see `perf-anchors.md` §1). Each engine shard therefore owns
//! a [`RandomPool`]: a 4 KiB block drawn from aws-lc in one call, handed out front to back.
//! Bytes are zeroized in the pool as soon as they are handed out, so the pool never keeps a
//! copy of a data key or salt it gave away.

use crate::err;
use crate::error::Result;

/// Size of one refill, in bytes.
pub const POOL_BLOCK: usize = 4096;

/// A per-shard pool of random bytes (not `Sync`: one owner at a time, no locking).
pub struct RandomPool {
    /// Cache-line aligned, so writes here never share a line with another core's data.
    buf: Box<crossbeam::utils::CachePadded<[u8; POOL_BLOCK]>>,
    /// Bytes before `pos` were handed out (and zeroized); bytes from `pos` on are unused.
    pos: usize,
}

impl RandomPool {
    /// An empty pool; the first `fill` draws the first block.
    pub fn new() -> RandomPool {
        RandomPool {
            buf: Box::new(crossbeam::utils::CachePadded::new([0u8; POOL_BLOCK])),
            pos: POOL_BLOCK,
        }
    }

    fn refill(&mut self) -> Result<()> {
        aws_lc_rs::rand::fill(&mut self.buf[..])
            .map_err(|_| err!(KMSInternalException, "the system random generator failed"))?;
        self.pos = 0;
        Ok(())
    }

    /// Fills `out` with random bytes from the pool (refilling it as needed).
    pub fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < out.len() {
            if self.pos == POOL_BLOCK {
                self.refill()?;
            }
            let n = (out.len() - done).min(POOL_BLOCK - self.pos);
            let src = &mut self.buf[self.pos..self.pos + n];
            out[done..done + n].copy_from_slice(src);
            crate::secret::wipe(src);
            self.pos += n;
            done += n;
        }
        Ok(())
    }

    /// `n` fresh random bytes as a secret (no zero-fill pass before the copy).
    pub fn secret(&mut self, n: usize) -> Result<crate::secret::SecretBytes> {
        let mut v = crate::secret::SecretBytes::new(Vec::with_capacity(n));
        self.extend(v.expose_mut(), n)?;
        Ok(v)
    }

    /// Appends `n` random bytes to `out` (no zero-fill pass before the copy). `out` should
    /// have room: growing it here leaves the bytes it held in the old allocation. On an error
    /// some bytes may have been appended.
    pub fn extend(&mut self, out: &mut Vec<u8>, n: usize) -> Result<()> {
        let mut left = n;
        while left > 0 {
            if self.pos == POOL_BLOCK {
                self.refill()?;
            }
            let k = left.min(POOL_BLOCK - self.pos);
            let src = &mut self.buf[self.pos..self.pos + k];
            out.extend_from_slice(src);
            crate::secret::wipe(src);
            self.pos += k;
            left -= k;
        }
        Ok(())
    }

    /// `n` fresh random bytes as a new vector.
    pub fn take(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.fill(&mut v)?;
        Ok(v)
    }

    /// A fixed-size array of random bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        self.fill(&mut a)?;
        Ok(a)
    }

    /// Bytes still unused in the current block (for tests).
    pub fn remaining(&self) -> usize {
        POOL_BLOCK - self.pos
    }
}

impl Default for RandomPool {
    fn default() -> RandomPool {
        RandomPool::new()
    }
}

impl Drop for RandomPool {
    fn drop(&mut self) {
        crate::secret::wipe(&mut self.buf[..]);
    }
}

impl std::fmt::Debug for RandomPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RandomPool(<{} bytes left>)", self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_distinct_bytes_and_zeroizes_them() {
        let mut p = RandomPool::new();
        let a = p.take(32).unwrap();
        let b = p.take(32).unwrap();
        assert_ne!(a, b);
        assert_eq!(p.remaining(), POOL_BLOCK - 64);
        assert!(
            p.buf[..64].iter().all(|&x| x == 0),
            "handed-out bytes must be wiped"
        );
    }

    #[test]
    fn spans_refills_and_large_requests() {
        let mut p = RandomPool::new();
        let _ = p.take(POOL_BLOCK - 10).unwrap();
        let v = p.take(100).unwrap();
        assert_eq!(v.len(), 100);
        assert_eq!(p.remaining(), POOL_BLOCK - 90);
        let s = p.secret(POOL_BLOCK + 3).unwrap();
        assert_eq!(s.len(), POOL_BLOCK + 3);
        assert!(s.expose().iter().any(|&x| x != 0));
        let big = p.take(3 * POOL_BLOCK + 5).unwrap();
        assert_eq!(big.len(), 3 * POOL_BLOCK + 5);
        assert!(big.iter().any(|&x| x != 0));
    }
}
