//! The floor under `gdk_random_ratio`: what the machine itself loses when each call seals under
//! a different one of `N` keys instead of the same one.
//!
//! Every GenerateDataKey ends in one AES-256-GCM seal of the data key under the KMS key's
//! subkey, an aws-lc context of several hundred bytes (round keys and GHASH tables). With one
//! key that context stays in L1; with 100,000 keys picked at random it is fetched from memory
//! on nearly every call, and no design that keeps one expanded subkey per key avoids it. This
//! loop does only that work — `N` contexts expanded by aws-lc, a 32-byte data key sealed per
//! call — with the same kind of random pick list, the same alternating rounds and the same
//! duration as the GenerateDataKey loops, so that its ratio is the best any engine on this
//! machine could report, measured in the same run.

use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use super::{random_picks, ScaleError, Throughput, ROUNDS};
use kmscks::engine::counter_nonce;

/// Bytes sealed per call: an AES_256 data key.
const DATA_KEY_LEN: usize = 32;
/// Additional data per call, as long as a blob header with a short encryption context.
const AAD_LEN: usize = 64;
/// Seals between two looks at the clock.
const STRIDE: usize = 256;

/// Random-key ÷ one-key seal throughput over `n` keys, one thread, `duration` per loop (split
/// into [`ROUNDS`] alternating rounds).
pub(crate) fn seal_random_ratio(n: usize, duration: Duration) -> Result<f64, ScaleError> {
    let keys = expanded_keys(n)?;
    let picks = random_picks(n);
    let mut nonces = 0u64;
    let slice = duration / ROUNDS;
    let (mut one, mut random) = (Throughput::default(), Throughput::default());
    for round in 0..ROUNDS as usize {
        let start = round * (picks.len() / ROUNDS as usize);
        let same = &keys[picks[start] as usize];
        one.add(seal_loop(|_| same, &picks, start, slice, &mut nonces)?);
        random.add(seal_loop(
            |i| &keys[i as usize],
            &picks,
            start,
            slice,
            &mut nonces,
        )?);
    }
    Ok(random.per_sec()? / one.per_sec()?)
}

/// `n` AES-256-GCM contexts under random keys, each its own allocation as the engine's are.
fn expanded_keys(n: usize) -> Result<Vec<LessSafeKey>, ScaleError> {
    let fail = |what: &str| ScaleError::Failed(format!("scale report: the floor's {what} failed"));
    (0..n)
        .map(|_| {
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| fail("random key"))?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| fail("key setup"))?;
            Ok(LessSafeKey::new(key))
        })
        .collect()
}

/// Seals for `duration` under `key(pick)` for the picks from `start` on; returns the seals and
/// the time they took. `nonces` numbers every seal of the run, so no nonce repeats.
fn seal_loop<'k>(
    key: impl Fn(u32) -> &'k LessSafeKey,
    picks: &[u32],
    start: usize,
    duration: Duration,
    nonces: &mut u64,
) -> Result<(u64, Duration), ScaleError> {
    // `picks.len()` is a power of two (`pick_count`): the mask wraps the position.
    let mask = picks.len() - 1;
    let aad = [0x5au8; AAD_LEN];
    let mut buf = Vec::with_capacity(DATA_KEY_LEN + 16);
    let (mut at, mut calls) = (start & mask, 0u64);
    let started = Instant::now();
    loop {
        for _ in 0..STRIDE {
            buf.clear();
            buf.extend_from_slice(&[0xa5; DATA_KEY_LEN]);
            let nonce = Nonce::assume_unique_for_key(counter_nonce(*nonces));
            *nonces += 1;
            key(picks[at])
                .seal_in_place_append_tag(nonce, Aad::from(&aad[..]), &mut buf)
                .map_err(|_| ScaleError::Failed("scale report: a floor seal failed".into()))?;
            std::hint::black_box(&buf);
            at = (at + 1) & mask;
            calls += 1;
        }
        let elapsed = started.elapsed();
        if elapsed >= duration {
            return Ok((calls, elapsed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_measures_both_loops_and_reports_a_positive_ratio() {
        let ratio = seal_random_ratio(64, Duration::from_millis(40)).unwrap();
        // Nothing is asserted about speed (64 contexts fit any cache): only that both loops
        // ran and the ratio is a finite positive number.
        assert!(ratio.is_finite() && ratio > 0.0, "{ratio}");
    }
}
