//! Exact money and time: `Nano` (i128 nano-iSC, checked arithmetic), decimal
//! string parsing/printing (spec §3, §11 "Input syntax"), and the billing
//! month. No floating point anywhere.

use super::error::Rejection;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Unix seconds, UTC (spec §3). Every event carries one.
pub type UnixSeconds = i64;

/// A billing month: 365 days × 86,400 s / 12 (spec §3).
pub const SECONDS_PER_MONTH: i64 = 2_628_000;
/// Seconds in a day, for `daily_rate` (spec §11 "Views").
pub const SECONDS_PER_DAY: i64 = 86_400;
/// nano-iSC per iSC: amounts have at most 9 fractional digits (spec §3).
pub const NANO_PER_ISC: i128 = 1_000_000_000;
/// Largest single top-up: 10^9 iSC (spec §3).
pub const MAX_TOP_UP: Nano = Nano(1_000_000_000 * NANO_PER_ISC);
/// Largest balance: 10^12 iSC (spec §3).
pub const MAX_BALANCE: Nano = Nano(1_000_000_000_000 * NANO_PER_ISC);
/// Largest monthly unit price: 10^6 iSC (spec §3).
pub const MAX_MONTHLY_UNIT_PRICE: Nano = Nano(1_000_000 * NANO_PER_ISC);
/// Largest configured monthly rate of one account: 10^15 iSC. Not in the
/// spec; chosen so that `rate × seconds` can never overflow i128 for any
/// instant up to year 9999, and far above any real PBX estate.
pub const MAX_ACCOUNT_MONTHLY_RATE: Nano = Nano(1_000_000_000_000_000 * NANO_PER_ISC);
/// The last instant an operator cares about: 9999-12-31T23:59:59Z (spec §11
/// "Edges of the bounds"); runouts after it are reported as "never".
pub const MAX_REPORTED_INSTANT: UnixSeconds = 253_402_300_799;
/// Longest decimal string accepted, so parsing work is bounded.
const MAX_DECIMAL_LEN: usize = 64;

/// An exact amount of iSC in nano-iSC (10^-9 iSC). Signed so statements can
/// carry debits; balances are never negative (asserted where they change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nano(pub i128);

impl Nano {
    pub const ZERO: Nano = Nano(0);

    /// Parses a decimal string of the form `[0-9]+(\.[0-9]{1,9})?` exactly
    /// (spec §11): no sign, exponent, spaces, separators, leading or trailing
    /// dot, and at most 9 fractional digits (even zeros).
    pub fn parse(text: &str) -> Result<Nano, Rejection> {
        let bad = |why: &str| Rejection::invalid(format!("invalid amount {text:?}: {why}"));
        if text.is_empty() {
            return Err(bad("it is empty; write a decimal number such as \"12.5\""));
        }
        if text.len() > MAX_DECIMAL_LEN {
            return Err(bad("it is too long"));
        }
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !digits_only(int_part) {
            return Err(bad(
                "only digits and one decimal point are allowed (no sign, exponent, spaces or separators, and a digit before the point)",
            ));
        }
        let frac = frac_part.unwrap_or("");
        if frac_part.is_some() && frac.is_empty() {
            return Err(bad("a decimal point must be followed by digits"));
        }
        if !digits_only(frac) {
            return Err(bad("only digits and one decimal point are allowed"));
        }
        if frac.len() > 9 {
            return Err(bad(
                "at most 9 decimal places are allowed (1 nano-iSC is the smallest unit)",
            ));
        }
        let int_trimmed = int_part.trim_start_matches('0');
        // 10^15 iSC is far above every bound; anything longer is out of range anyway.
        if int_trimmed.len() > 16 {
            return Err(bad("it is out of range"));
        }
        let mut value: i128 = 0;
        for b in int_trimmed.bytes() {
            value = value * 10 + i128::from(b - b'0');
        }
        let mut frac_value: i128 = 0;
        for i in 0..9 {
            let digit = frac.as_bytes().get(i).map_or(0, |b| i128::from(b - b'0'));
            frac_value = frac_value * 10 + digit;
        }
        Ok(Nano(value * NANO_PER_ISC + frac_value))
    }

    /// Parses and checks `low <= value <= high`, naming the field in errors.
    pub fn parse_bounded(text: &str, what: &str, low: Nano, high: Nano) -> Result<Nano, Rejection> {
        let value =
            Nano::parse(text).map_err(|r| Rejection::invalid(format!("{what}: {}", r.message)))?;
        if value < low || value > high {
            return Err(Rejection::invalid(format!(
                "{what} {text} is out of bounds: it must be between {low} and {high} iSC"
            )));
        }
        Ok(value)
    }

    pub fn checked_add(self, other: Nano) -> Option<Nano> {
        self.0.checked_add(other.0).map(Nano)
    }
    pub fn checked_sub(self, other: Nano) -> Option<Nano> {
        self.0.checked_sub(other.0).map(Nano)
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Nano {
    /// Prints the shortest exact decimal: `12.5`, `0`, `-0.000000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let negative = self.0 < 0;
        let abs = self.0.unsigned_abs();
        let int = abs / NANO_PER_ISC as u128;
        let frac = abs % NANO_PER_ISC as u128;
        let sign = if negative { "-" } else { "" };
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{sign}{int}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// Binary formats store the raw i128; human-readable ones (JSON exports,
/// reports) a decimal string, so no reader ever sees a float.
impl Serialize for Nano {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i128(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Nano {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Nano, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let (negative, digits) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            let value = Nano::parse(digits).map_err(serde::de::Error::custom)?;
            Ok(if negative { Nano(-value.0) } else { value })
        } else {
            i128::deserialize(d).map(Nano)
        }
    }
}

/// `num / den` rounded half-to-even; `num >= 0`, `den > 0` (spec §6).
pub fn div_round_half_even(num: i128, den: i128) -> i128 {
    debug_assert!(num >= 0 && den > 0);
    // Most accruals fit in 64 bits, where division is a hardware instruction.
    let (q, r) = match (u64::try_from(num), u64::try_from(den)) {
        (Ok(n), Ok(d)) => (i128::from(n / d), i128::from(n % d)),
        _ => {
            let (n, d) = (num as u128, den as u128);
            ((n / d) as i128, (n % d) as i128)
        }
    };
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
        std::cmp::Ordering::Less => q,
    }
}

/// The rounded debit of `seconds` at `monthly_rate` (spec §6):
/// `rate × s / 2_628_000`, half-to-even to the nano. `None` on overflow
/// (impossible inside the bounds; callers treat it as an invariant breach).
pub fn accrual(monthly_rate: Nano, seconds: i64) -> Option<Nano> {
    let num = monthly_rate.0.checked_mul(i128::from(seconds))?;
    Some(Nano(div_round_half_even(
        num,
        i128::from(SECONDS_PER_MONTH),
    )))
}

/// The smallest whole `s` with `rate × s / 2_628_000 >= balance`, compared
/// exactly (spec §6 depletion); `rate > 0`.
pub fn seconds_to_deplete(balance: Nano, monthly_rate: Nano) -> i64 {
    debug_assert!(monthly_rate.is_positive() && balance.0 >= 0);
    let need = balance.0 * i128::from(SECONDS_PER_MONTH);
    // Small balances fit 64 bits, where division is one instruction.
    if let (Ok(n), Ok(r)) = (u64::try_from(need), u64::try_from(monthly_rate.0)) {
        return i64::try_from(n.div_ceil(r)).unwrap_or(i64::MAX);
    }
    // Both are non-negative: unsigned division has a fast path for a
    // divisor of 64 bits (the signed one does not).
    let s = (need as u128).div_ceil(monthly_rate.0 as u128);
    i64::try_from(s).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<i128, Code> {
        Nano::parse(s).map(|n| n.0).map_err(|r| r.code)
    }
    use super::super::error::Code;

    #[test]
    fn parses_the_allowed_forms() {
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("120.5"), Ok(120_500_000_000));
        assert_eq!(p("007"), Ok(7_000_000_000));
        assert_eq!(p("0.000000001"), Ok(1));
        assert_eq!(p("10"), p("10.0"));
        assert_eq!(p("1000000000000"), Ok(1_000_000_000_000 * NANO_PER_ISC));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            " 1",
            "1 ",
            "-5",
            "+5",
            "1e3",
            ".5",
            "5.",
            "1,000",
            "1_000",
            "0.0000000010",
            "1..2",
            "1.2.3",
            "١",
            "NaN",
            "inf",
            "99999999999999999999999",
        ] {
            assert_eq!(
                p(bad),
                Err(Code::InvalidArgument),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn prints_shortest_exact_decimal() {
        assert_eq!(Nano(120_500_000_000).to_string(), "120.5");
        assert_eq!(Nano(0).to_string(), "0");
        assert_eq!(Nano(1).to_string(), "0.000000001");
        assert_eq!(Nano(-1_500_000_000).to_string(), "-1.5");
    }

    #[test]
    fn half_to_even_ties() {
        // 2.5 → 2, 3.5 → 4, 2.6 → 3, 2.4 → 2
        assert_eq!(div_round_half_even(25, 10), 2);
        assert_eq!(div_round_half_even(35, 10), 4);
        assert_eq!(div_round_half_even(26, 10), 3);
        assert_eq!(div_round_half_even(24, 10), 2);
        // A monthly rate of 1 nano over 1_314_000 s (half a month) is 0.5 nano → 0;
        // over 3_942_000 s (1.5 months) it is 1.5 nano → 2.
        assert_eq!(accrual(Nano(1), 1_314_000), Some(Nano(0)));
        assert_eq!(accrual(Nano(1), 3_942_000), Some(Nano(2)));
    }

    #[test]
    fn depletion_seconds_is_exact_ceiling() {
        // 1 iSC at 2.628 iSC/month = 1 nano... per s: 1e9*2628000/2.628e9 = 1_000_000 s exactly.
        assert_eq!(
            seconds_to_deplete(Nano(NANO_PER_ISC), Nano(2_628_000_000)),
            1_000_000
        );
        // One nano more needs one more second.
        assert_eq!(
            seconds_to_deplete(Nano(NANO_PER_ISC + 1), Nano(2_628_000_000)),
            1_000_001
        );
        assert_eq!(seconds_to_deplete(Nano(0), Nano(5)), 0);
    }

    #[test]
    fn json_uses_decimal_strings() {
        assert_eq!(
            serde_json::to_string(&Nano(1_500_000_000)).unwrap(),
            "\"1.5\""
        );
        let back: Nano = serde_json::from_str("\"-1.5\"").unwrap();
        assert_eq!(back, Nano(-1_500_000_000));
    }
}
