//! Money as integer microcents: 1 USD = 100,000,000 microcents. Never floats.

use std::fmt;

/// Microcents in one US dollar.
pub const MICROCENTS_PER_USD: i64 = 100_000_000;
const FRACTION_DIGITS: usize = 8;

/// An amount of money in microcents (1 USD = 100,000,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Microcents(pub i64);

/// Why a decimal USD string could not be turned into microcents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseUsdError {
    #[error("empty amount")]
    Empty,
    #[error("`{0}` is not a decimal number of US dollars (e.g. 3 or 0.075)")]
    NotDecimal(String),
    #[error("`{0}` has more precision than one microcent (at most 8 decimal places)")]
    TooPrecise(String),
    #[error("`{0}` is negative; prices must be 0 or more")]
    Negative(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

impl Microcents {
    pub const ZERO: Microcents = Microcents(0);

    /// Parses a decimal US-dollar amount (`"3"`, `"0.075"`, `"15.00"`) exactly.
    /// Trailing zeros past the eighth decimal place are accepted; other digits there are not.
    pub fn parse_usd(s: &str) -> Result<Microcents, ParseUsdError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ParseUsdError::Empty);
        }
        let t = t.strip_prefix('$').unwrap_or(t);
        if t.starts_with('-') {
            return Err(ParseUsdError::Negative(s.to_string()));
        }
        let t = t.strip_prefix('+').unwrap_or(t);
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) {
            return Err(ParseUsdError::NotDecimal(s.to_string()));
        }
        let (kept, extra) = if frac.len() > FRACTION_DIGITS { frac.split_at(FRACTION_DIGITS) } else { (frac, "") };
        if extra.bytes().any(|b| b != b'0') {
            return Err(ParseUsdError::TooPrecise(s.to_string()));
        }
        let overflow = || ParseUsdError::Overflow(s.to_string());
        let whole_v: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| overflow())? };
        let mut frac_v: i64 = 0;
        for i in 0..FRACTION_DIGITS {
            let d = kept.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
            frac_v = frac_v * 10 + d;
        }
        whole_v.checked_mul(MICROCENTS_PER_USD).and_then(|v| v.checked_add(frac_v)).map(Microcents).ok_or_else(overflow)
    }

    /// Exact decimal USD rendering without trailing zeros (`300000000` → `"3"`, `7500000` → `"0.075"`).
    pub fn to_usd_string(self) -> String {
        let neg = self.0 < 0;
        let abs = self.0.unsigned_abs();
        let per = MICROCENTS_PER_USD.unsigned_abs();
        let whole = abs / per;
        let frac = abs % per;
        let mut out = if neg { format!("-{whole}") } else { whole.to_string() };
        if frac != 0 {
            let f = format!("{frac:08}");
            out.push('.');
            out.push_str(f.trim_end_matches('0'));
        }
        out
    }
}

impl fmt::Display for Microcents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.to_usd_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_usd_amounts() {
        let cases = [
            ("3", 300_000_000),
            ("15.00", 1_500_000_000),
            ("0.075", 7_500_000),
            ("0.30", 30_000_000),
            (".5", 50_000_000),
            ("5.", 500_000_000),
            ("$1.25", 125_000_000),
            ("0", 0),
            ("0.00000001", 1),
            ("0.000000010000", 1),
            ("1234.56789012", 123_456_789_012),
        ];
        for (input, want) in cases {
            assert_eq!(Microcents::parse_usd(input), Ok(Microcents(want)), "input {input}");
        }
    }

    #[test]
    fn rejects_bad_usd_amounts() {
        assert_eq!(Microcents::parse_usd(""), Err(ParseUsdError::Empty));
        assert!(matches!(Microcents::parse_usd("-1"), Err(ParseUsdError::Negative(_))));
        assert!(matches!(Microcents::parse_usd("0.000000001"), Err(ParseUsdError::TooPrecise(_))));
        for bad in ["abc", "1.2.3", "1e5", ".", "1,5", " 1 2"] {
            assert!(matches!(Microcents::parse_usd(bad), Err(ParseUsdError::NotDecimal(_))), "{bad}");
        }
        assert!(matches!(Microcents::parse_usd("99999999999999999"), Err(ParseUsdError::Overflow(_))));
    }

    #[test]
    fn renders_usd_round_trip() {
        for v in [0i64, 1, 7_500_000, 300_000_000, 123_456_789_012, -250_000_000] {
            let s = Microcents(v).to_usd_string();
            let back = if let Some(pos) = s.strip_prefix('-') {
                Microcents(-Microcents::parse_usd(pos).map(|m| m.0).unwrap_or(i64::MIN))
            } else {
                Microcents::parse_usd(&s).unwrap_or(Microcents(i64::MIN))
            };
            assert_eq!(back, Microcents(v), "{s}");
        }
        assert_eq!(Microcents(7_500_000).to_usd_string(), "0.075");
        assert_eq!(Microcents(300_000_000).to_string(), "$3");
    }
}
