//! The one place the server reads the wall clock ([`Clock`]), and timestamp formatting for the
//! API.
//!
//! Every decision that depends on the time of day — token expiry, credential refresh, retention,
//! report windows, event timestamps — reads the gateway's [`Clock`] (`AppState::clock`), never
//! the system clock directly, so tests move time instead of sleeping. Durations measured on the
//! request path (latency, time to first token) use `Instant` and are not affected.

use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// The gateway's wall clock: the system clock plus an offset that only tests change. Cheap to
/// clone; clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        system_now_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// The same instant as a `SystemTime` (for APIs that take one, such as SigV4 signing).
    pub fn now_system(&self) -> SystemTime {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let d = Duration::from_millis(offset.unsigned_abs());
        if offset >= 0 { SystemTime::now() + d } else { SystemTime::now() - d }
    }

    /// Moves this clock (and its clones) forward by `d`. For tests.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Sets this clock so that it reads `ms` now (and runs on from there). For tests.
    pub fn set_now_ms(&self, ms: i64) {
        self.offset_ms.store(ms.saturating_sub(system_now_ms()), Ordering::Relaxed);
    }
}

/// The system clock, for what is not a decision (log rate limits, file timestamps). Read
/// without chrono (its `Utc::now` builds a calendar date first: ~170 instructions, and this
/// runs on every proxied request).
pub fn system_now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

/// Milliseconds since the Unix epoch of `t`, rounded towards the past (chrono's
/// `timestamp_millis`).
fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // Before the epoch: a negative count.
        Err(e) => {
            let d = e.duration();
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            if d.subsec_nanos() % 1_000_000 == 0 { -ms } else { -ms - 1 }
        }
    }
}

/// RFC 3339 with millisecond precision and a `Z` suffix.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_milliseconds_match_chronos() {
        let ns = |n: u64| Duration::from_nanos(n);
        let epoch = SystemTime::UNIX_EPOCH;
        for t in [
            epoch,
            epoch + ns(1),
            epoch + ns(999_999),
            epoch + ns(1_500_000),
            epoch + ns(1_765_000_000_123_456_789),
            epoch - ns(1),
            epoch - ns(1_000_000),
            epoch - ns(1_500_000),
            epoch - ns(86_400_000_000_001),
        ] {
            assert_eq!(epoch_ms(t), DateTime::<Utc>::from(t).timestamp_millis(), "{t:?}");
        }
        let before = Utc::now().timestamp_millis();
        let now = system_now_ms();
        assert!(before <= now && now <= Utc::now().timestamp_millis());
    }
}
