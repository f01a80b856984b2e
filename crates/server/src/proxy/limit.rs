//! Stage 1b, **limit**: budgets and rate limits (ARCHITECTURE.md, Decisions: Budgets and rate
//! limits), after [`super::admit`] and before anything is sent.
//!
//! The call's budgets (`core::budget::matching_budgets`) and rate limits come from the
//! snapshot; with none, the stage costs one emptiness check. Otherwise it estimates the call:
//! the prompt bounded by the body's length in bytes, the output by the request's own limit
//! (`RequestInfo::output_limit`: read with the model, in the same pass), else the catalog's
//! maximum output for the model, else [`DEFAULT_OUTPUT_TOKENS`]; priced with the provider's
//! overrides and the catalog like the real call. It then reserves on every matching window
//! ([`crate::limits::Limits::reserve`]: in memory while this replica's lease covers it). The
//! resulting [`Charge`] goes into the `Recorder` once the call is forwarded, which settles it
//! with the call's real usage.
//!
//! Refusals are downstream [`ProxyError`]s (429 in the provider's native shape, naming the
//! budget or limit, the use, the limit and the reset, with `Retry-After`); under
//! `--budget-failure-mode closed`, unreadable state is the internal `limits_unavailable` (503).
//! Responses of admitted calls carry `SpendLimit-Warning` past a budget's `warn_at` and the
//! `x-ratelimit-*` headers of the tightest rate limit.

use super::admit::{Admitted, Inbound};
use super::error::{Fault, ProxyError};
use crate::limits::{Charge, Kind, Refused, Seen, SourceRef, Want};
use crate::metrics::Metrics;
use crate::snapshot::{Snapshot, count_value};
use crate::state::AppState;
use crate::time::rfc3339;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use tollgate_core::budget::{Call, DEFAULT_OUTPUT_TOKENS, MINUTE_MS, Pooling, estimate_cost, matching_budgets};
use tollgate_core::pricing::{PriceInput, price};
use tollgate_core::{Microcents, Usage};

/// Headers added to the client's response (inline: at most a warning and six rate-limit
/// headers, so no allocation).
pub(super) type Extra = smallvec::SmallVec<[(HeaderName, HeaderValue); 7]>;

/// What an admitted call carries on: its reservations and the headers for its response.
pub(super) struct Admission {
    pub charge: Charge,
    pub headers: Extra,
}

/// A refusal and the headers that go with it (`Retry-After`, `x-ratelimit-*`).
pub(super) struct Refusal {
    error: ProxyError,
    headers: Extra,
}

impl Refusal {
    pub(super) fn respond(self, metrics: &Metrics) -> Response {
        let mut resp = self.error.respond(metrics, None);
        add_headers(&mut resp, self.headers);
        resp
    }
}

/// Adds `headers` to `resp` (replacing upstream headers of the same name).
pub(super) fn add_headers(resp: &mut Response, headers: Extra) {
    if headers.is_empty() {
        return;
    }
    let map = resp.headers_mut();
    map.reserve(headers.len());
    for (k, v) in headers {
        map.insert(k, v);
    }
}

fn header(name: &'static str, value: String) -> Option<(HeaderName, HeaderValue)> {
    HeaderValue::from_str(&value).ok().map(|v| (HeaderName::from_static(name), v))
}

fn usd(v: i64) -> String {
    Microcents(v).to_usd_string()
}

/// Seconds until `end_ms`, rounded up (at least 1).
fn seconds_to(end_ms: i64, now_ms: i64) -> i64 {
    ((end_ms - now_ms + 999) / 1000).max(1)
}

/// Reserves the call on every budget and rate limit it matches.
pub(super) async fn check(
    state: &AppState,
    snap: &Snapshot,
    a: &Admitted,
    name: &str,
    inbound: &Inbound,
) -> Result<Admission, Refusal> {
    let limits = &snap.limits;
    if limits.is_empty() {
        return Ok(Admission { charge: Charge::empty(), headers: Extra::new() });
    }
    let info = &inbound.info;
    let call = Call {
        provider: name,
        agent: a.token.agent.as_deref(),
        user: a.token.user.as_deref(),
        token_id: &a.token.id,
        token_name: &a.token.name,
        model: info.model.as_deref(),
    };
    // Inline: a call matches few budgets, and this runs on every call under one.
    let budgets: smallvec::SmallVec<[_; 4]> = matching_budgets(&limits.budgets, &call);
    let rates: smallvec::SmallVec<[_; 2]> = limits.rate_limits.iter().filter(|r| r.applies(&call)).collect();
    if budgets.is_empty() && rates.is_empty() {
        return Ok(Admission { charge: Charge::empty(), headers: Extra::new() });
    }

    // The estimate: prompt bounded by the body's bytes, output by the request's own limit.
    let catalog = state.catalog();
    let prompt = i64::try_from(inbound.body.len()).unwrap_or(i64::MAX);
    let model = info.model.as_deref();
    let output = info
        .output_limit(&inbound.body)
        .or_else(|| {
            model.and_then(|m| tollgate_core::pricing::lookup(&catalog, a.ptype, m).0.and_then(|e| e.max_output_tokens))
        })
        .unwrap_or(DEFAULT_OUTPUT_TOKENS);
    let cost = if budgets.is_empty() {
        0
    } else {
        let usage = Usage { input: prompt, output, ..Usage::default() };
        let overrides = crate::catalog::overrides_for(Some(&a.entry), model);
        let priced = price(&PriceInput { provider_type: a.ptype, model, usage: &usage, overrides }, &catalog);
        estimate_cost(&priced.rates, prompt, output)
    };
    let tokens = prompt.saturating_add(output);

    let now = state.now_ms();
    let mut wants: smallvec::SmallVec<[Want<'_>; 4]> = smallvec::SmallVec::new();
    for (b, pool) in &budgets {
        let (start_ms, end_ms) = b.bounds(now);
        let (agent, user) = match b.pooling_mode {
            Pooling::PerAgent => (Some(*pool), b.scope.user.as_deref()),
            Pooling::PerUser => (b.scope.agent.as_deref(), Some(*pool)),
            Pooling::Shared => (b.scope.agent.as_deref(), b.scope.user.as_deref()),
        };
        wants.push(Want {
            kind: Kind::Budget,
            name: &b.name,
            pool,
            start_ms,
            end_ms,
            limit: b.limit_microcents,
            amount: cost,
            source: Some(SourceRef { agent, user, providers: &b.scope.providers }),
        });
    }
    // Beside each want: the rate limit's preformatted `x-ratelimit-limit-*` value.
    let mut limit_values: smallvec::SmallVec<[Option<&HeaderValue>; 4]> = smallvec::smallvec![None; wants.len()];
    let minute = now.div_euclid(MINUTE_MS) * MINUTE_MS;
    for r in &rates {
        for (kind, limit, amount, value) in [
            (Kind::Requests, r.requests_per_minute, 1, r.requests_value.as_ref()),
            (Kind::Tokens, r.tokens_per_minute, tokens, r.tokens_value.as_ref()),
        ] {
            if let Some(limit) = limit {
                limit_values.push(value);
                wants.push(Want {
                    kind,
                    name: &r.name,
                    pool: "",
                    start_ms: minute,
                    end_ms: minute + MINUTE_MS,
                    limit,
                    amount,
                    source: None,
                });
            }
        }
    }

    match state.limits().reserve(&wants).await {
        Ok((mut charge, seen)) => {
            charge.priced_with(catalog, a.entry.clone(), a.ptype, info.model.clone());
            let mut headers = Extra::new();
            // The first budget past its warning mark.
            if let Some((b, s)) = budgets
                .iter()
                .zip(&seen)
                .filter_map(|((b, _), s)| s.map(|s| (b, s)))
                .find(|(b, s)| b.warn_at_microcents.is_some_and(|w| s.used >= w))
            {
                headers.extend(header(
                    "spendlimit-warning",
                    format!(
                        "budget=\"{}\"; spent={}; limit={}; resets={}",
                        b.name,
                        usd(s.used),
                        usd(s.limit),
                        rfc3339(s.end_ms)
                    ),
                ));
            }
            rate_headers(&mut headers, &wants, &seen, &limit_values, now, false);
            Ok(Admission { charge, headers })
        }
        Err(Refused::Over { index, seen }) => {
            let want = &wants[index];
            let resets = rfc3339(want.end_ms);
            let mut headers: Extra =
                header("retry-after", seconds_to(want.end_ms, now).to_string()).into_iter().collect();
            let (fault, message) = if want.kind == Kind::Budget {
                let b = &budgets[index].0;
                let who = match b.pooling_mode {
                    Pooling::PerAgent => format!(" for agent \"{}\"", want.pool),
                    Pooling::PerUser => format!(" for user \"{}\"", want.pool),
                    Pooling::Shared => String::new(),
                };
                (
                    Fault::BudgetExceeded,
                    format!(
                        "budget_exceeded: budget \"{}\"{who} has no room for this call: spent ${} of its ${} limit \
                         (this call may cost up to ${}); it resets at {resets}",
                        b.name,
                        usd(seen.used),
                        usd(seen.limit),
                        usd(want.amount)
                    ),
                )
            } else {
                let unit = if want.kind == Kind::Requests { "requests" } else { "tokens" };
                let mut all: crate::limits::SeenList = smallvec::smallvec![None; wants.len()];
                all[index] = Some(Seen { remaining: 0, ..seen });
                rate_headers(&mut headers, &wants, &all, &limit_values, now, true);
                let message = if want.kind == Kind::Tokens && want.amount > seen.limit {
                    // Waiting cannot help: the call alone reserves more than a whole minute holds.
                    // No `Retry-After`, and `x-should-retry: false`, which the official OpenAI
                    // and Anthropic SDKs honour instead of retrying a 429.
                    headers.retain(|(n, _)| *n != axum::http::header::RETRY_AFTER);
                    headers.extend(header("x-should-retry", "false".into()));
                    format!(
                        "rate_limited: rate limit \"{}\" allows {} tokens per minute, and this call reserves {} (its \
                         prompt bounded by the body's size plus its output limit), so it can never pass; lower its \
                         output limit (`max_tokens`) or raise the rate limit",
                        want.name, seen.limit, want.amount
                    )
                } else {
                    format!(
                        "rate_limited: rate limit \"{}\" allows {} {unit} per minute and has no room for this call \
                         ({} used, {} reserved by this call); it resets at {resets}",
                        want.name, seen.limit, seen.used, want.amount
                    )
                };
                let fault = if want.kind == Kind::Requests { Fault::RateLimited } else { Fault::TokenRateLimited };
                (fault, message)
            };
            Err(Refusal { error: ProxyError::new(fault, Some(a.ptype), message), headers })
        }
        Err(Refused::Unavailable(_)) => Err(Refusal {
            error: ProxyError::new(
                Fault::LimitsUnavailable,
                Some(a.ptype),
                "budget and rate-limit state cannot be read right now (--budget-failure-mode closed); retry shortly",
            ),
            headers: header("retry-after", "1".into()).into_iter().collect(),
        }),
    }
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` of the tightest window of each kind.
/// On every response under a rate limit, so built with as little work as can be: names are
/// constants, the limit is the rate limit's value formatted when it was loaded
/// (`limit_values`, beside each want), the remaining count costs one small allocation
/// ([`count_value`]), and the reset (`"<seconds>s"`, at most a minute for these windows) comes
/// from a table of shared values.
fn rate_headers(
    out: &mut Extra,
    wants: &[Want<'_>],
    seen: &[Option<Seen>],
    limit_values: &[Option<&HeaderValue>],
    now: i64,
    refused: bool,
) {
    const REQUESTS: [HeaderName; 3] = [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ];
    const TOKENS: [HeaderName; 3] = [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ];
    for (kind, [limit, remaining, reset]) in [(Kind::Requests, REQUESTS), (Kind::Tokens, TOKENS)] {
        let tightest = wants
            .iter()
            .zip(seen)
            .zip(limit_values)
            .filter(|((w, _), _)| w.kind == kind)
            .filter_map(|((_, s), v)| s.map(|s| (s, *v)))
            .min_by_key(|(s, _)| s.remaining);
        let Some((s, limit_value)) = tightest else { continue };
        let left = if refused { 0 } else { s.remaining };
        out.push((limit, limit_value.cloned().unwrap_or_else(|| count_value(s.limit))));
        out.push((remaining, count_value(left)));
        out.push((reset, reset_value(seconds_to(s.end_ms, now))));
    }
}

/// `"<n>s"`: shared values for 0 to 60 seconds (a minute window), formatted beyond.
fn reset_value(seconds: i64) -> HeaderValue {
    static SHORT: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
        (0..=60).filter_map(|n| HeaderValue::from_maybe_shared(bytes::Bytes::from(format!("{n}s"))).ok()).collect()
    });
    usize::try_from(seconds)
        .ok()
        .and_then(|i| SHORT.get(i).cloned())
        .or_else(|| HeaderValue::from_str(&format!("{seconds}s")).ok())
        .unwrap_or_else(|| HeaderValue::from_static("0s"))
}
