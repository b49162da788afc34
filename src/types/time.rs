//! Time, through a clock that tests can replace so they can jump past a deletion window.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch. Serialised to JSON as AWS does: epoch seconds, with a
/// fraction where there is one.
/// On the socket protocol (bincode) it is the millisecond count, a zigzag varint.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    bincode::Encode,
    bincode::Decode,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The time `days` days after this one.
    pub fn plus_days(self, days: u32) -> Timestamp {
        Timestamp(self.0 + i64::from(days) * 86_400_000)
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch, as AWS JSON writes timestamps.
    pub fn epoch_seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            if self.0 % 1000 == 0 {
                s.serialize_i64(self.0 / 1000)
            } else {
                s.serialize_f64(self.epoch_seconds())
            }
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        if d.is_human_readable() {
            let secs = f64::deserialize(d)?;
            Ok(Timestamp((secs * 1000.0).round() as i64))
        } else {
            Ok(Timestamp(i64::deserialize(d)?))
        }
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock set to `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    /// A clock set to the current wall-clock time.
    pub fn starting_now() -> ManualClock {
        ManualClock::new(SystemClock.now())
    }

    /// Moves the clock forward by `days`.
    pub fn advance_days(&self, days: u32) {
        self.advance_millis(i64::from(days) * 86_400_000);
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_millis(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_epoch_seconds() {
        assert_eq!(
            serde_json::to_string(&Timestamp(1_700_000_000_000)).unwrap(),
            "1700000000"
        );
        assert_eq!(
            serde_json::to_string(&Timestamp(1_700_000_000_250)).unwrap(),
            "1700000000.25"
        );
        let t: Timestamp = serde_json::from_str("1700000000.25").unwrap();
        assert_eq!(t, Timestamp(1_700_000_000_250));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(0));
        let c2 = c.clone();
        c.advance_days(7);
        assert_eq!(c2.now(), Timestamp(7 * 86_400_000));
        assert_eq!(Timestamp(0).plus_days(7), c2.now());
    }
}
