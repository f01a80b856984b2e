//! How the console writes numbers, money and times for people. Pure functions; money is
//! integer microcents throughout (1 USD = 100,000,000), rounded half-up to cents with integer
//! arithmetic, never through floats.

use chrono::{DateTime, Datelike, Utc};
use tollgate_core::money::Microcents;

/// Microcents in one cent.
const PER_CENT: u64 = 1_000_000;

/// Digits with thousands separators: `1234567` → `1,234,567`.
pub fn int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Money for people: `$1,234.56`; `< $0.01` for a tiny non-zero amount; `$0.00` for zero.
pub fn usd(microcents: i64) -> String {
    if microcents == 0 {
        return "$0.00".into();
    }
    let neg = microcents < 0;
    let cents = (microcents.unsigned_abs() + PER_CENT / 2) / PER_CENT;
    if cents == 0 {
        return if neg { "> -$0.01".into() } else { "< $0.01".into() };
    }
    let sign = if neg { "-" } else { "" };
    let dollars = i64::try_from(cents / 100).unwrap_or(i64::MAX);
    format!("{sign}${}.{:02}", int(dollars), cents % 100)
}

/// Short money for chart axes: `$0`, `$0.25`, `$12`, `$1.2k`, `$3.4M`.
pub fn usd_compact(microcents: i64) -> String {
    if microcents <= 0 {
        return "$0".into();
    }
    if microcents < 1_000_000 {
        // below a cent (fine axis steps): exact
        return format!("${}", Microcents(microcents).to_usd_string());
    }
    let cents = (microcents.unsigned_abs() + PER_CENT / 2) / PER_CENT;
    if cents < 1_000 {
        if cents.is_multiple_of(100) {
            return format!("${}", cents / 100);
        }
        return format!("${}.{:02}", cents / 100, cents % 100);
    }
    let dollars = (cents + 50) / 100;
    format!("${}", compact_u(dollars))
}

fn compact_u(n: u64) -> String {
    let unit = |v: u64, div: u64, suffix: &str| {
        let tenths = (v * 10 + div / 2) / div;
        if tenths.is_multiple_of(10) || tenths >= 1_000 {
            format!("{}{suffix}", (tenths + 5) / 10)
        } else {
            format!("{}.{}{suffix}", tenths / 10, tenths % 10)
        }
    };
    match n {
        0..1_000 => n.to_string(),
        1_000..999_950 => unit(n, 1_000, "k"),
        999_950..999_950_000 => unit(n, 1_000_000, "M"),
        _ => unit(n, 1_000_000_000, "B"),
    }
}

/// Short counts for chart axes and KPIs: `999`, `12.3k`, `4.5M`.
pub fn compact(n: i64) -> String {
    if n < 0 { format!("-{}", compact_u(n.unsigned_abs())) } else { compact_u(n.unsigned_abs()) }
}

/// A price per 1M tokens: exact, with at least two decimals (`$3.00`, `$0.075`, `$0.30`).
pub fn rate(microcents_per_million: i64) -> String {
    let s = Microcents(microcents_per_million).to_usd_string();
    let s = match s.split_once('.') {
        None => format!("{s}.00"),
        Some((_, frac)) if frac.len() == 1 => format!("{s}0"),
        Some(_) => s,
    };
    format!("${s}")
}

/// A price per 1M tokens as the override form takes it (plain dollars: `3`, `0.075`).
pub fn rate_input(microcents_per_million: i64) -> String {
    Microcents(microcents_per_million).to_usd_string()
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// `Nov 24, 2026`.
pub fn date(ms: i64) -> String {
    utc(ms).format("%b %-d, %Y").to_string()
}

/// `Nov 24, 2026 14:05 UTC`.
pub fn date_time(ms: i64) -> String {
    utc(ms).format("%b %-d, %Y %H:%M UTC").to_string()
}

/// `2026-11-24T14:05:00Z` (what the Cost & Usage URL carries).
pub fn iso(ms: i64) -> String {
    utc(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-11-24T14:05` (an `<input type="datetime-local">` value, UTC).
pub fn datetime_local(ms: i64) -> String {
    utc(ms).format("%Y-%m-%dT%H:%M").to_string()
}

/// A window for a chart subtitle: `Nov 1 – Nov 24, 2026`, or with both years when they differ.
/// `end_ms` is exclusive: a window ending at midnight shows the day before.
pub fn date_range(start_ms: i64, end_ms: i64) -> String {
    let (s, e) = (utc(start_ms), utc(end_ms - 1));
    if s.date_naive() == e.date_naive() {
        return date(start_ms);
    }
    if s.year() == e.year() {
        format!("{} – {}", s.format("%b %-d"), e.format("%b %-d, %Y"))
    } else {
        format!("{} – {}", s.format("%b %-d, %Y"), e.format("%b %-d, %Y"))
    }
}

/// How long ago: `just now`, `5 minutes ago`, `3 hours ago`, `2 days ago`, else the date.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    let plural = |n: i64, unit: &str| if n == 1 { format!("1 {unit} ago") } else { format!("{n} {unit}s ago") };
    match s {
        0..45 => "just now".into(),
        45..3_600 => plural((s / 60).max(1), "minute"),
        3_600..86_400 => plural(s / 3_600, "hour"),
        86_400..2_592_000 => plural(s / 86_400, "day"),
        _ => date(then_ms),
    }
}

/// HTML-escapes text for attribute values and element content.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rounds_half_up_to_cents() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(1), "< $0.01");
        assert_eq!(usd(499_999), "< $0.01");
        assert_eq!(usd(500_000), "$0.01");
        assert_eq!(usd(123_456_000_000), "$1,234.56");
        assert_eq!(usd(123_455_500_000), "$1,234.56");
        assert_eq!(usd(123_455_499_999), "$1,234.55");
        assert_eq!(usd(100_000_000), "$1.00");
        assert_eq!(usd(-250_000_000), "-$2.50");
        assert_eq!(usd(i64::MAX), "$92,233,720,368.55");
    }

    #[test]
    fn compact_money_and_counts() {
        assert_eq!(usd_compact(0), "$0");
        assert_eq!(usd_compact(25_000_000), "$0.25");
        assert_eq!(usd_compact(250_000), "$0.0025");
        assert_eq!(usd_compact(1_200_000_000), "$12");
        assert_eq!(usd_compact(123_000_000_000), "$1.2k");
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1_000), "1k");
        assert_eq!(compact(12_345), "12.3k");
        assert_eq!(compact(999_999), "1M");
        assert_eq!(compact(4_500_000), "4.5M");
        assert_eq!(compact(2_000_000_000), "2B");
    }

    #[test]
    fn numbers_and_rates() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1_000), "1,000");
        assert_eq!(int(-1_234_567), "-1,234,567");
        assert_eq!(rate(300_000_000), "$3.00");
        assert_eq!(rate(30_000_000), "$0.30");
        assert_eq!(rate(7_500_000), "$0.075");
        assert_eq!(rate(0), "$0.00");
        assert_eq!(rate_input(7_500_000), "0.075");
    }

    #[test]
    fn times() {
        let nov24 = 1_795_478_400_000; // 2026-11-24T00:00:00Z
        assert_eq!(iso(nov24), "2026-11-24T00:00:00Z");
        assert_eq!(date(nov24), "Nov 24, 2026");
        assert_eq!(date_range(nov24 - 23 * 86_400_000, nov24 + 86_400_000), "Nov 1 – Nov 24, 2026");
        assert_eq!(date_range(nov24, nov24 + 3_600_000), "Nov 24, 2026");
        assert_eq!(date_range(nov24 - 340 * 86_400_000, nov24), "Dec 19, 2025 – Nov 23, 2026");
        assert_eq!(ago(nov24, nov24 + 10_000), "just now");
        assert_eq!(ago(nov24, nov24 + 5 * 60_000), "5 minutes ago");
        assert_eq!(ago(nov24, nov24 + 3_600_000), "1 hour ago");
        assert_eq!(ago(nov24, nov24 + 2 * 86_400_000), "2 days ago");
        assert_eq!(ago(nov24, nov24 + 40 * 86_400_000), "Nov 24, 2026");
        assert_eq!(datetime_local(nov24), "2026-11-24T00:00");
    }

    #[test]
    fn escaping() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
