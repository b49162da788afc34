//! Time, through a clock that tests can replace so they can jump past a deletion window.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch. Serialised to JSON as AWS does: epoch seconds, with a
/// fraction where there is one — or, inside [`as_cli_prints`], as the AWS CLI v2 prints it.
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

    /// The time `d` after this one (saturating).
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// How long after `earlier` this time is (zero when it is not after it).
    pub fn since(self, earlier: Timestamp) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// Parses a time as the `aws` CLI takes one: seconds since the epoch (a fraction allowed),
    /// or ISO 8601 / RFC 3339 — a date (`2026-12-03`, midnight UTC), or a date and time (`T` or
    /// a space between; seconds and a fraction optional) in UTC (`Z` or nothing) or with an
    /// offset (`+01:00`).
    pub fn parse_cli(s: &str) -> Option<Timestamp> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let secs: f64 = s.parse().ok()?;
            return (secs.is_finite() && secs < 1e15).then_some(Timestamp((secs * 1000.0) as i64));
        }
        let num = |t: &str| -> Option<u32> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
        };
        let (date, rest) = match s.find(['T', 't', ' ']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mut d = date.splitn(3, '-');
        let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
        let date = time::Date::from_calendar_date(
            i32::try_from(y).ok()?,
            time::Month::try_from(u8::try_from(m).ok()?).ok()?,
            u8::try_from(day).ok()?,
        )
        .ok()?;
        let (clock, offset_secs) = match rest {
            None => (time::Time::MIDNIGHT, 0i64),
            Some(rest) => {
                let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
                    (c, 0)
                } else if let Some(i) = rest.rfind(['+', '-']) {
                    let (c, o) = rest.split_at(i);
                    let sign = if o.starts_with('-') { -1 } else { 1 };
                    let (oh, om) = o[1..].split_once(':').unwrap_or((&o[1..], "0"));
                    (
                        c,
                        sign * (i64::from(num(oh)?) * 3600 + i64::from(num(om)?) * 60),
                    )
                } else {
                    (rest, 0)
                };
                let mut parts = clock.splitn(3, ':');
                let h = num(parts.next()?)?;
                let min = num(parts.next()?)?;
                let (sec, millis) = match parts.next() {
                    None => (0, 0),
                    Some(sec) => match sec.split_once('.') {
                        None => (num(sec)?, 0),
                        Some((s, frac)) => {
                            let f: String = frac.chars().chain("000".chars()).take(3).collect();
                            num(frac)?;
                            (num(s)?, num(&f)?)
                        }
                    },
                };
                let t = time::Time::from_hms_milli(
                    u8::try_from(h).ok()?,
                    u8::try_from(min).ok()?,
                    u8::try_from(sec).ok()?,
                    u16::try_from(millis).ok()?,
                )
                .ok()?;
                (t, offset)
            }
        };
        let nanos = date.with_time(clock).assume_utc().unix_timestamp_nanos();
        let millis = i64::try_from(nanos / 1_000_000).ok()?;
        Some(Timestamp(millis - offset_secs * 1000))
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch, as AWS JSON writes timestamps.
    pub fn epoch_seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// ISO 8601 in UTC as the AWS CLI v2 prints a timestamp (Python's `isoformat()` of the
    /// parsed time): `2026-12-03T07:10:24.123000+00:00`, microseconds shown only when not zero
    /// (`2026-12-03T07:10:24+00:00`).
    pub fn cli_iso8601(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let micros = t.microsecond();
        let fraction = if micros == 0 {
            String::new()
        } else {
            format!(".{micros:06}")
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}+00:00",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

thread_local! {
    /// Whether [`Timestamp`]s serialise as [`Timestamp::cli_iso8601`] on this thread.
    static CLI_TIMESTAMPS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every [`Timestamp`] serialised by a human-readable serializer (JSON) on this
/// thread as the AWS CLI v2 prints it ([`Timestamp::cli_iso8601`]) instead of AWS's wire form
/// (epoch seconds).
///
/// Why a scoped mode rather than a second set of response types: the command line prints the
/// very response types the wire carries, and only the printing differs; the mode is per thread
/// and restored when `f` returns (or unwinds), so no wire encoding ever sees it.
pub fn as_cli_prints<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CLI_TIMESTAMPS.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CLI_TIMESTAMPS.with(|c| c.replace(true)));
    f()
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            if CLI_TIMESTAMPS.with(std::cell::Cell::get) {
                s.serialize_str(&self.cli_iso8601())
            } else if self.0 % 1000 == 0 {
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
            // AWS JSON writes epoch seconds; a string (what the CLI passes on from a flag such
            // as `--valid-to 2027-01-01T00:00:00Z`) is read as `Timestamp::parse_cli` reads it.
            struct Visitor;
            impl serde::de::Visitor<'_> for Visitor {
                type Value = Timestamp;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("seconds since the epoch, or an ISO 8601 time")
                }
                fn visit_f64<E: serde::de::Error>(self, secs: f64) -> Result<Timestamp, E> {
                    Ok(Timestamp((secs * 1000.0).round() as i64))
                }
                fn visit_i64<E: serde::de::Error>(self, secs: i64) -> Result<Timestamp, E> {
                    Ok(Timestamp(secs.saturating_mul(1000)))
                }
                fn visit_u64<E: serde::de::Error>(self, secs: u64) -> Result<Timestamp, E> {
                    Ok(Timestamp(
                        i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000),
                    ))
                }
                fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                    Timestamp::parse_cli(text.trim()).ok_or_else(|| {
                        E::custom(format!(
                            "{text:?} is not a time: use ISO 8601 (2026-12-03T11:18:03Z) or \
                             seconds since the epoch"
                        ))
                    })
                }
            }
            d.deserialize_any(Visitor)
        } else {
            Ok(Timestamp(i64::deserialize(d)?))
        }
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;

    /// Asks for `wake` to be called each time this clock jumps forward by decree rather than
    /// by passing (a [`ManualClock`] being advanced). Background timers keyed to this clock
    /// use it to notice the jump; a clock that only moves with real time ignores it. Only a
    /// weak reference is kept: dropping the waker unsubscribes.
    fn on_jump(&self, wake: Weak<dyn Fn() + Send + Sync>) {
        let _ = wake;
    }
}

/// The callbacks to run when a [`ManualClock`] jumps.
type Wakers = Mutex<Vec<Weak<dyn Fn() + Send + Sync>>>;

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

/// A clock that only moves when told to; clones share the same time. Timers keyed to it (the
/// background worker's connect completion and deletion sweep) fire when it is advanced past
/// them, never by themselves: a test decides when a connection attempt completes.
#[derive(Clone)]
pub struct ManualClock(Arc<ManualInner>);

struct ManualInner {
    millis: AtomicI64,
    wakers: Wakers,
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl ManualClock {
    /// A clock set to `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(ManualInner {
            millis: AtomicI64::new(start.0),
            wakers: Mutex::new(Vec::new()),
        }))
    }

    /// A clock set to the current wall-clock time.
    pub fn starting_now() -> ManualClock {
        ManualClock::new(SystemClock.now())
    }

    /// Moves the clock forward by `days`.
    pub fn advance_days(&self, days: u32) {
        self.advance_millis(i64::from(days) * 86_400_000);
    }

    /// Moves the clock forward by `ms` milliseconds, then wakes every timer keyed to it.
    pub fn advance_millis(&self, ms: i64) {
        self.0.millis.fetch_add(ms, Ordering::SeqCst);
        let live: Vec<_> = {
            let mut wakers = self.0.wakers.lock().unwrap_or_else(|p| p.into_inner());
            wakers.retain(|w| w.strong_count() > 0);
            wakers.iter().filter_map(Weak::upgrade).collect()
        };
        // Called outside the lock: a waker may take locks of its own.
        for wake in live {
            wake();
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: std::time::Duration) {
        self.advance_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.millis.load(Ordering::SeqCst))
    }

    fn on_jump(&self, wake: Weak<dyn Fn() + Send + Sync>) {
        let mut wakers = self.0.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.retain(|w| w.strong_count() > 0);
        wakers.push(wake);
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
    fn the_cli_prints_iso_8601_with_microseconds_and_offset_as_aws_cli_v2() {
        let t = Timestamp(1_796_282_224_123);
        assert_eq!(t.cli_iso8601(), "2026-12-03T07:17:04.123000+00:00");
        assert_eq!(
            Timestamp(1_796_282_224_000).cli_iso8601(),
            "2026-12-03T07:17:04+00:00"
        );
        assert_eq!(
            as_cli_prints(|| serde_json::to_string(&t).unwrap()),
            "\"2026-12-03T07:17:04.123000+00:00\""
        );
        // Outside the scope, and for the wire, it stays epoch seconds.
        assert_eq!(serde_json::to_string(&t).unwrap(), "1796282224.123");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(0));
        let c2 = c.clone();
        c.advance_days(7);
        assert_eq!(c2.now(), Timestamp(7 * 86_400_000));
        assert_eq!(Timestamp(0).plus_days(7), c2.now());
    }

    #[test]
    fn advancing_a_manual_clock_wakes_live_subscribers_and_forgets_dropped_ones() {
        use std::sync::atomic::AtomicUsize;
        let c = ManualClock::new(Timestamp(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        c.on_jump(Arc::downgrade(&wake));
        c.advance_millis(5);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(wake);
        c.advance_millis(5);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a dropped waker is not called"
        );
        assert!(c.0.wakers.lock().unwrap().is_empty(), "and is forgotten");
    }

    #[test]
    fn timestamps_add_durations_and_measure_gaps() {
        let t = Timestamp(1_000);
        assert_eq!(
            t.plus(std::time::Duration::from_millis(250)),
            Timestamp(1_250)
        );
        assert_eq!(
            Timestamp(1_250).since(t),
            std::time::Duration::from_millis(250)
        );
        assert_eq!(t.since(Timestamp(1_250)), std::time::Duration::ZERO);
    }
}
