//! Token usage of one proxied request, normalised into disjoint buckets (ARCHITECTURE.md,
//! Decisions: Money and usage), and the outcome vocabulary of a usage event. Pure data: the protocol crate fills a [`Usage`]
//! from each provider's wire format; the pricing engine (cost issue) turns it into money.
//!
//! Buckets never overlap, so their costs add up to the total:
//! `input` is uncached prompt tokens, `cached_input` cache reads, `cache_write_*` cache
//! writes by TTL, `output` visible output (reasoning excluded), `reasoning` thinking tokens.

use serde::{Deserialize, Serialize};

/// Token counts per bucket. All counts are non-negative; a missing bucket is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    /// Prompt tokens that were neither read from nor written to a cache.
    pub input: i64,
    /// Visible output tokens (reasoning excluded).
    pub output: i64,
    /// Reasoning / thinking tokens.
    pub reasoning: i64,
    /// Prompt tokens read from a cache.
    pub cached_input: i64,
    /// Prompt tokens written to a 5-minute cache.
    pub cache_write_5m: i64,
    /// Prompt tokens written to a 1-hour cache.
    pub cache_write_1h: i64,
    /// Prompt tokens written to a cache whose TTL the upstream did not say (billed at the 5m rate).
    pub cache_write_unknown: i64,
}

impl Usage {
    /// The whole prompt: input + cache reads + cache writes (what context tiers compare against).
    pub fn prompt_tokens(&self) -> i64 {
        self.input + self.cached_input + self.cache_write_5m + self.cache_write_1h + self.cache_write_unknown
    }

    /// Everything generated: visible output + reasoning.
    pub fn completion_tokens(&self) -> i64 {
        self.output + self.reasoning
    }

    /// All tokens of all buckets.
    pub fn total_tokens(&self) -> i64 {
        self.prompt_tokens() + self.completion_tokens()
    }

    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }
}

/// Cost of one request per bucket, in microcents (1 USD = 100,000,000), and their sum.
/// Filled by the pricing engine; all zero until a request is priced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cost {
    pub input: i64,
    pub output: i64,
    pub reasoning: i64,
    pub cached_input: i64,
    pub cache_write_5m: i64,
    pub cache_write_1h: i64,
    pub cache_write_unknown: i64,
    pub total: i64,
}

/// One token bucket, as reports name it (`token_type` in the spending API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Input,
    Output,
    CachedInput,
    CacheWrite5m,
    CacheWrite1h,
    CacheWriteUnknown,
    Reasoning,
}

impl Bucket {
    /// Every bucket, in report order.
    pub const ALL: [Bucket; 7] = [
        Bucket::Input,
        Bucket::Output,
        Bucket::CachedInput,
        Bucket::CacheWrite5m,
        Bucket::CacheWrite1h,
        Bucket::CacheWriteUnknown,
        Bucket::Reasoning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Input => "input",
            Bucket::Output => "output",
            Bucket::CachedInput => "cached_input",
            Bucket::CacheWrite5m => "cache_write_5m",
            Bucket::CacheWrite1h => "cache_write_1h",
            Bucket::CacheWriteUnknown => "cache_write_unknown",
            Bucket::Reasoning => "reasoning",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Bucket::Input => "Input",
            Bucket::Output => "Output",
            Bucket::CachedInput => "Cached input (cache reads)",
            Bucket::CacheWrite5m => "Cache writes (5 minutes)",
            Bucket::CacheWrite1h => "Cache writes (1 hour)",
            Bucket::CacheWriteUnknown => "Cache writes (unknown TTL)",
            Bucket::Reasoning => "Reasoning",
        }
    }

    pub fn parse(s: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

impl Usage {
    /// The tokens of one bucket.
    pub fn get(&self, b: Bucket) -> i64 {
        match b {
            Bucket::Input => self.input,
            Bucket::Output => self.output,
            Bucket::CachedInput => self.cached_input,
            Bucket::CacheWrite5m => self.cache_write_5m,
            Bucket::CacheWrite1h => self.cache_write_1h,
            Bucket::CacheWriteUnknown => self.cache_write_unknown,
            Bucket::Reasoning => self.reasoning,
        }
    }
}

impl Cost {
    /// The cost of one bucket.
    pub fn get(&self, b: Bucket) -> i64 {
        match b {
            Bucket::Input => self.input,
            Bucket::Output => self.output,
            Bucket::CachedInput => self.cached_input,
            Bucket::CacheWrite5m => self.cache_write_5m,
            Bucket::CacheWrite1h => self.cache_write_1h,
            Bucket::CacheWriteUnknown => self.cache_write_unknown,
            Bucket::Reasoning => self.reasoning,
        }
    }
}

/// How a proxied request ended. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// The upstream answered 2xx and the body reached the client in full.
    Success,
    /// The upstream answered with a non-2xx status (passed through), redirected (502), or
    /// reported an error inside a stream.
    UpstreamError,
    /// The upstream did not answer (or stopped sending) within the read timeout.
    Timeout,
    /// The upstream could not be reached or broke the connection.
    ConnectionError,
    /// The client went away before the response was complete.
    ClientCancelled,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Success => "success",
            RequestStatus::UpstreamError => "upstream_error",
            RequestStatus::Timeout => "timeout",
            RequestStatus::ConnectionError => "connection_error",
            RequestStatus::ClientCancelled => "client_cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        [
            RequestStatus::Success,
            RequestStatus::UpstreamError,
            RequestStatus::Timeout,
            RequestStatus::ConnectionError,
            RequestStatus::ClientCancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_disjoint() {
        let u = Usage {
            input: 1,
            output: 2,
            reasoning: 4,
            cached_input: 8,
            cache_write_5m: 16,
            cache_write_1h: 32,
            cache_write_unknown: 64,
        };
        assert_eq!(u.prompt_tokens(), 1 + 8 + 16 + 32 + 64);
        assert_eq!(u.completion_tokens(), 6);
        assert_eq!(u.total_tokens(), 127);
        assert!(!u.is_zero());
        assert!(Usage::default().is_zero());
    }

    #[test]
    fn buckets_name_and_read_every_field() {
        let u = Usage {
            input: 1,
            output: 2,
            reasoning: 3,
            cached_input: 4,
            cache_write_5m: 5,
            cache_write_1h: 6,
            cache_write_unknown: 7,
        };
        let sum: i64 = Bucket::ALL.iter().map(|b| u.get(*b)).sum();
        assert_eq!(sum, u.total_tokens());
        for b in Bucket::ALL {
            assert_eq!(Bucket::parse(b.as_str()), Some(b));
        }
        assert_eq!(Bucket::parse("cached"), None);
        let c = Cost { input: 1, reasoning: 10, total: 11, ..Cost::default() };
        assert_eq!(c.get(Bucket::Reasoning), 10);
    }

    #[test]
    fn status_names_round_trip() {
        for s in ["success", "upstream_error", "timeout", "connection_error", "client_cancelled"] {
            assert_eq!(RequestStatus::parse(s).map(RequestStatus::as_str), Some(s));
        }
        assert_eq!(RequestStatus::parse("ok"), None);
    }
}
