//! A request rate that may be under one a second. AWS states some request quotas in fractions
//! (GenerateDataKeyPair of an RSA_4096 pair: 0.1 a second, one in ten seconds), which a whole
//! number of requests per second cannot hold; [`RequestRate`] counts thousandths, so that
//! every rate AWS publishes is exact, and reads and writes as a decimal number of requests per
//! second (`0.1`, `25`) in the daemon's flags and config file.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Thousandths of a request in one request.
const MILLIS_PER_REQUEST: u32 = 1000;

/// Requests per second, to a thousandth of a request. 0 refuses every request it covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestRate {
    millis: u32,
}

impl RequestRate {
    /// No request at all.
    pub const ZERO: RequestRate = RequestRate { millis: 0 };

    /// `n` requests per second (at most what the type holds, 4,294,967 a second).
    pub const fn per_second(n: u32) -> RequestRate {
        RequestRate {
            millis: n.saturating_mul(MILLIS_PER_REQUEST),
        }
    }

    /// `millis` thousandths of a request per second (100: one request in ten seconds).
    pub const fn from_millis(millis: u32) -> RequestRate {
        RequestRate { millis }
    }

    /// The rate in thousandths of a request per second.
    pub const fn millis(self) -> u32 {
        self.millis
    }
}

/// Why a text or number is not a [`RequestRate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateError(String);

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a request rate: a number of requests per second, 0 or more, with at \
             most three decimals (e.g. 25 or 0.1), at most {}",
            self.0,
            RequestRate::from_millis(u32::MAX)
        )
    }
}

impl std::error::Error for RateError {}

impl FromStr for RequestRate {
    type Err = RateError;

    /// Parses a decimal number of requests per second: digits, optionally a point and one to
    /// three more digits. Parsed as text, not as a float, so that `0.1` is exactly 100
    /// thousandths.
    fn from_str(s: &str) -> Result<RequestRate, RateError> {
        let bad = || RateError(s.to_owned());
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (s.contains('.') && !digits(fraction)) || fraction.len() > 3 {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        // Right-padded to thousandths: "5" → 500, "05" → 50, "005" → 5.
        let fraction: u32 = format!("{fraction:0<3}").parse().map_err(|_| bad())?;
        whole
            .checked_mul(MILLIS_PER_REQUEST)
            .and_then(|m| m.checked_add(fraction))
            .map(RequestRate::from_millis)
            .ok_or_else(bad)
    }
}

impl fmt::Display for RequestRate {
    /// The decimal number of requests per second, without trailing zeros (`25`, `0.5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (
            self.millis / MILLIS_PER_REQUEST,
            self.millis % MILLIS_PER_REQUEST,
        );
        if fraction == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{fraction:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl Serialize for RequestRate {
    /// A whole rate as an integer, another as a float (TOML `25`, `0.1`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.millis.is_multiple_of(MILLIS_PER_REQUEST) {
            s.serialize_u32(self.millis / MILLIS_PER_REQUEST)
        } else {
            s.serialize_f64(f64::from(self.millis) / f64::from(MILLIS_PER_REQUEST))
        }
    }
}

impl<'de> Deserialize<'de> for RequestRate {
    /// An integer, a float or a string, each as [`FromStr`] reads it (a float through its
    /// shortest decimal text, so that `0.1` is exactly 100 thousandths).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RequestRate, D::Error> {
        struct Rate;
        impl Visitor<'_> for Rate {
            type Value = RequestRate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of requests per second, e.g. 25 or 0.1")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RequestRate, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RequestRate, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RequestRate, E> {
                // `{v}` is the shortest text that reads back as `v`: 0.1 prints "0.1".
                let text = format!("{v}");
                let text = text.strip_suffix(".0").unwrap_or(&text);
                text.parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RequestRate, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_reads_and_writes_as_a_decimal_number_of_requests_per_second() {
        for (text, millis) in [
            ("25", 25_000),
            ("0.1", 100),
            ("0.5", 500),
            ("1.25", 1250),
            ("0", 0),
            ("0.001", 1),
        ] {
            let rate: RequestRate = text.parse().unwrap();
            assert_eq!(rate.millis(), millis, "{text}");
            assert_eq!(rate.to_string(), text);
        }
        assert_eq!("7.50".parse::<RequestRate>().unwrap().to_string(), "7.5");
        assert_eq!(RequestRate::per_second(3), RequestRate::from_millis(3000));
    }

    #[test]
    fn a_rate_refuses_signs_exponents_more_than_three_decimals_and_overflow() {
        for text in [
            "", "-1", "+1", "1e3", "0.0001", ".5", "5.", "1.2.3", "x", "4294968",
        ] {
            let e = text.parse::<RequestRate>().unwrap_err();
            assert!(e.to_string().contains("not a request rate"), "{text}: {e}");
        }
    }

    #[test]
    fn a_rate_goes_through_toml_as_an_integer_or_a_float() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Doc {
            rate: RequestRate,
        }
        for (toml_text, millis) in [("rate = 25", 25_000), ("rate = 0.1", 100)] {
            let doc: Doc = toml::from_str(toml_text).unwrap();
            assert_eq!(doc.rate.millis(), millis);
            assert_eq!(toml::to_string(&doc).unwrap().trim(), toml_text);
        }
        assert!(toml::from_str::<Doc>("rate = -1").is_err());
        assert!(toml::from_str::<Doc>("rate = 0.0001").is_err());
    }
}
