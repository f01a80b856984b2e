//! Bedrock usage into [`Usage`] buckets.
//!
//! - Converse `usage` (and the `metadata` event of ConverseStream): `inputTokens` excludes
//!   cache reads and writes (like the Anthropic API underneath), `cacheReadInputTokens` are
//!   reads, `cacheWriteInputTokens` writes, split by TTL in `cacheDetails[{ttl, inputTokens}]`
//!   where the model reports it; writes the split does not cover are `cache_write_unknown`.
//!   Nova's InvokeModel `usage` uses the same names with `...TokenCount` for the cache fields.
//! - Totals Bedrock itself reports for InvokeModel: the `x-amzn-bedrock-input-token-count`,
//!   `-output-token-count`, `-cache-read-input-token-count`, `-cache-write-input-token-count`
//!   response headers, and `amazon-bedrock-invocationMetrics` (`inputTokenCount`,
//!   `outputTokenCount`, `cacheReadInputTokenCount`, `cacheWriteInputTokenCount`) in the last
//!   chunk of a stream. These are what Bedrock bills, so they win; the model's own usage (an
//!   Anthropic `usage` object with `cache_creation.ephemeral_5m/1h_input_tokens`) only splits
//!   the cache writes by TTL, and stands alone when no totals came.
//!
//! Bedrock reports no reasoning split (thinking is inside `outputTokens`), so `reasoning` is 0.

use serde::Deserialize;

use crate::Usage;
use crate::json_scan::{count, minus};

/// Converse `TokenUsage` (also Nova's invoke `usage`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConverseUsage {
    #[serde(default, deserialize_with = "count")]
    input_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    output_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count", alias = "cacheReadInputTokenCount")]
    cache_read_input_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count", alias = "cacheWriteInputTokenCount")]
    cache_write_input_tokens: Option<i64>,
    #[serde(default)]
    cache_details: Option<Vec<CacheDetail>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheDetail {
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default, deserialize_with = "count")]
    input_tokens: Option<i64>,
}

impl ConverseUsage {
    pub(crate) fn normalize(&self) -> Usage {
        let writes = self.cache_write_input_tokens.unwrap_or(0);
        let (mut w5m, mut w1h) = (0i64, 0i64);
        for d in self.cache_details.iter().flatten() {
            let n = d.input_tokens.unwrap_or(0);
            match d.ttl.as_deref() {
                Some("5m") => w5m = w5m.saturating_add(n),
                Some("1h") => w1h = w1h.saturating_add(n),
                _ => {}
            }
        }
        Usage {
            input: self.input_tokens.unwrap_or(0),
            output: self.output_tokens.unwrap_or(0),
            reasoning: 0,
            cached_input: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_5m: w5m,
            cache_write_1h: w1h,
            cache_write_unknown: minus(writes, w5m.saturating_add(w1h)),
        }
    }
}

/// `amazon-bedrock-invocationMetrics`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InvocationMetrics {
    #[serde(default, deserialize_with = "count")]
    input_token_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    output_token_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    cache_read_input_token_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    cache_write_input_token_count: Option<i64>,
}

impl InvocationMetrics {
    pub(crate) fn totals(&self) -> Totals {
        Totals {
            input: self.input_token_count.unwrap_or(0),
            output: self.output_token_count.unwrap_or(0),
            cache_read: self.cache_read_input_token_count.unwrap_or(0),
            cache_write: self.cache_write_input_token_count.unwrap_or(0),
        }
    }
}

/// The counts Bedrock itself reports (headers or invocation metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

/// The response headers that carry [`Totals`], lower-case.
pub(crate) const TOKEN_HEADERS: [&str; 4] = [
    "x-amzn-bedrock-input-token-count",
    "x-amzn-bedrock-output-token-count",
    "x-amzn-bedrock-cache-read-input-token-count",
    "x-amzn-bedrock-cache-write-input-token-count",
];

impl Totals {
    /// Sets the bucket a token-count header names; `false` for any other header or a value
    /// that is not a count.
    pub(crate) fn set_header(&mut self, name: &str, value: &str) -> bool {
        let Some(i) = TOKEN_HEADERS.iter().position(|h| name.eq_ignore_ascii_case(h)) else {
            return false;
        };
        let Ok(n) = value.trim().parse::<i64>() else {
            return false;
        };
        let n = n.max(0);
        match i {
            0 => self.input = n,
            1 => self.output = n,
            2 => self.cache_read = n,
            _ => self.cache_write = n,
        }
        true
    }
}

/// Bedrock's totals, refined by the model's own usage: the model's TTL split of the cache
/// writes is kept (bounded by the total writes), the rest of the writes is unknown-TTL.
/// Without totals, the model's usage as it is.
pub(crate) fn combine(totals: Option<Totals>, model: Option<Usage>) -> Option<Usage> {
    let Some(t) = totals else {
        return model;
    };
    let (mut w5m, mut w1h) = model.map_or((0, 0), |m| (m.cache_write_5m, m.cache_write_1h));
    if w5m.saturating_add(w1h) > t.cache_write {
        // A split that exceeds Bedrock's total cannot be trusted: all writes unknown-TTL.
        (w5m, w1h) = (0, 0);
    }
    Some(Usage {
        input: t.input,
        output: t.output,
        reasoning: 0,
        cached_input: t.cache_read,
        cache_write_5m: w5m,
        cache_write_1h: w1h,
        cache_write_unknown: minus(t.cache_write, w5m + w1h),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn converse(s: &str) -> Usage {
        serde_json::from_str::<ConverseUsage>(s).unwrap().normalize()
    }

    #[test]
    fn converse_usage_with_ttl_split() {
        let u = converse(
            r#"{"inputTokens": 24, "outputTokens": 310, "totalTokens": 3834, "cacheReadInputTokens": 1500,
                "cacheWriteInputTokens": 2000, "cacheDetails": [{"ttl": "1h", "inputTokens": 1200}, {"ttl": "5m", "inputTokens": 800}]}"#,
        );
        assert_eq!(
            u,
            Usage {
                input: 24,
                output: 310,
                cached_input: 1500,
                cache_write_5m: 800,
                cache_write_1h: 1200,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn converse_usage_without_split_and_nova_names() {
        let u = converse(r#"{"inputTokens": 5, "outputTokens": 7, "cacheWriteInputTokens": 300}"#);
        assert_eq!(u, Usage { input: 5, output: 7, cache_write_unknown: 300, ..Usage::default() });
        let u = converse(
            r#"{"inputTokens": 5, "outputTokens": 7, "cacheReadInputTokenCount": 40, "cacheWriteInputTokenCount": 9}"#,
        );
        assert_eq!(u, Usage { input: 5, output: 7, cached_input: 40, cache_write_unknown: 9, ..Usage::default() });
        let u = converse(
            r#"{"inputTokens": 1, "outputTokens": 1, "cacheWriteInputTokens": 100, "cacheDetails": [{"ttl": "5m", "inputTokens": 60}]}"#,
        );
        assert_eq!(u.cache_write_5m + u.cache_write_unknown, 100);
        assert_eq!(u.cache_write_unknown, 40);
    }

    #[test]
    fn headers_and_metrics_totals() {
        let mut t = Totals::default();
        assert!(t.set_header("X-Amzn-Bedrock-Input-Token-Count", "12"));
        assert!(t.set_header("x-amzn-bedrock-output-token-count", " 5 "));
        assert!(t.set_header("x-amzn-bedrock-cache-read-input-token-count", "100"));
        assert!(t.set_header("x-amzn-bedrock-cache-write-input-token-count", "30"));
        assert!(!t.set_header("x-amzn-bedrock-invocation-latency", "300"));
        assert!(!t.set_header("x-amzn-bedrock-input-token-count", "many"));
        assert_eq!(t, Totals { input: 12, output: 5, cache_read: 100, cache_write: 30 });
        let m: InvocationMetrics = serde_json::from_str(
            r#"{"inputTokenCount": 12, "outputTokenCount": 5, "invocationLatency": 900, "firstByteLatency": 300,
                "cacheReadInputTokenCount": 100, "cacheWriteInputTokenCount": 30}"#,
        )
        .unwrap();
        assert_eq!(m.totals(), t);
    }

    #[test]
    fn totals_win_and_the_model_splits_writes() {
        let t = Totals { input: 12, output: 5, cache_read: 100, cache_write: 30 };
        let model = Usage { input: 11, output: 4, cache_write_5m: 10, cache_write_1h: 15, ..Usage::default() };
        assert_eq!(
            combine(Some(t), Some(model)),
            Some(Usage {
                input: 12,
                output: 5,
                cached_input: 100,
                cache_write_5m: 10,
                cache_write_1h: 15,
                cache_write_unknown: 5,
                ..Usage::default()
            })
        );
        let too_big = Usage { cache_write_1h: 31, ..Usage::default() };
        assert_eq!(combine(Some(t), Some(too_big)).unwrap().cache_write_unknown, 30);
        assert_eq!(combine(None, Some(model)), Some(model));
        assert_eq!(combine(None, None), None);
    }
}
