//! Anthropic `usage` objects into [`Usage`] buckets. `input_tokens` excludes cache reads and
//! writes; `cache_read_input_tokens` are reads; `cache_creation.ephemeral_5m_input_tokens` /
//! `ephemeral_1h_input_tokens` split the writes by TTL, and writes the split does not account
//! for (no `cache_creation` object, or a split summing less than `cache_creation_input_tokens`)
//! go to `cache_write_unknown`. Thinking is inside `output_tokens`, so `reasoning` stays 0.

use serde::Deserialize;

use crate::Usage;
use crate::json_scan::{count, minus};

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RawUsage {
    #[serde(default, deserialize_with = "count")]
    input_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    output_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    cache_read_input_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    cache_creation_input_tokens: Option<i64>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct CacheCreation {
    #[serde(default, deserialize_with = "count")]
    ephemeral_5m_input_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    ephemeral_1h_input_tokens: Option<i64>,
}

impl RawUsage {
    /// Streams report usage in `message_start` and again, cumulatively, in `message_delta`:
    /// every field present in the newer report replaces the older one (never added).
    pub(crate) fn merge(&mut self, newer: RawUsage) {
        fn take(old: &mut Option<i64>, new: Option<i64>) {
            if new.is_some() {
                *old = new;
            }
        }
        take(&mut self.input_tokens, newer.input_tokens);
        take(&mut self.output_tokens, newer.output_tokens);
        take(&mut self.cache_read_input_tokens, newer.cache_read_input_tokens);
        take(&mut self.cache_creation_input_tokens, newer.cache_creation_input_tokens);
        if newer.cache_creation.is_some() {
            self.cache_creation = newer.cache_creation;
        }
    }

    pub(crate) fn normalize(&self) -> Usage {
        let total_writes = self.cache_creation_input_tokens.unwrap_or(0);
        let (w5m, w1h, unknown) = match self.cache_creation {
            Some(c) => {
                let w5m = c.ephemeral_5m_input_tokens.unwrap_or(0);
                let w1h = c.ephemeral_1h_input_tokens.unwrap_or(0);
                (w5m, w1h, minus(total_writes, w5m.saturating_add(w1h)))
            }
            None => (0, 0, total_writes),
        };
        Usage {
            input: self.input_tokens.unwrap_or(0),
            output: self.output_tokens.unwrap_or(0),
            reasoning: 0,
            cached_input: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_5m: w5m,
            cache_write_1h: w1h,
            cache_write_unknown: unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(s: &str) -> RawUsage {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn split_by_ttl() {
        let u = raw(r#"{"input_tokens": 12, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 20000,
                "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
                "output_tokens": 150, "service_tier": "standard"}"#)
        .normalize();
        assert_eq!(
            u,
            Usage {
                input: 12,
                output: 150,
                cached_input: 20000,
                cache_write_5m: 1000,
                cache_write_1h: 2000,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn unsplit_and_partially_split_writes_are_unknown() {
        let u = raw(r#"{"input_tokens": 5, "cache_creation_input_tokens": 1500, "output_tokens": 9}"#).normalize();
        assert_eq!(u, Usage { input: 5, output: 9, cache_write_unknown: 1500, ..Usage::default() });
        let u = raw(r#"{"input_tokens": 5, "cache_creation_input_tokens": 1500, "output_tokens": 9,
                "cache_creation": {"ephemeral_5m_input_tokens": 1000}}"#)
        .normalize();
        assert_eq!(
            u,
            Usage { input: 5, output: 9, cache_write_5m: 1000, cache_write_unknown: 500, ..Usage::default() }
        );
        let u = raw(r#"{"cache_creation_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 7}}"#)
            .normalize();
        assert_eq!(u, Usage { cache_write_5m: 7, ..Usage::default() });
    }

    #[test]
    fn merge_replaces_never_adds() {
        let mut u = raw(
            r#"{"input_tokens": 50, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 0, "output_tokens": 1}"#,
        );
        u.merge(raw(r#"{"output_tokens": 310}"#));
        assert_eq!(u.normalize(), Usage { input: 50, output: 310, cached_input: 1000, ..Usage::default() });
        u.merge(raw(r#"{"input_tokens": 2679, "cache_read_input_tokens": 1000, "output_tokens": 310, "cache_creation_input_tokens": null}"#));
        assert_eq!(u.normalize(), Usage { input: 2679, output: 310, cached_input: 1000, ..Usage::default() });
    }
}
