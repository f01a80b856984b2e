//! Budgets and rate limits as resources, and the pure rules behind their enforcement
//! (ARCHITECTURE.md, Decisions: Budgets and rate limits): validation (errors name the field),
//! which budgets a call counts against and under which pool key ([`matching_budgets`]), UTC
//! calendar periods ([`Period::bounds`]), which rate limits apply ([`RateLimitSpec::applies`])
//! and the upper-bound cost estimate a call reserves ([`estimate_cost`]).
//!
//! No IO: the current time is an argument (epoch milliseconds); calendar arithmetic is done
//! on days since the epoch (the proleptic Gregorian calendar, UTC).

use crate::error::{ValidationError, from_json_value};
use crate::pricing::{Rates, bucket_cost};
use crate::validate;
use crate::warnings::FieldWarning;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Output tokens assumed when neither the request nor the catalog bounds them.
pub const DEFAULT_OUTPUT_TOKENS: i64 = 32_768;
/// Milliseconds in one rate-limit window.
pub const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// How a budget pools the calls it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// One pool per agent (a budget without `scope.agent` is the default for every agent).
    #[default]
    PerAgent,
    /// One pool per user (a budget without `scope.user` is the default for every user).
    PerUser,
    /// One pool for every matching call.
    Shared,
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::PerAgent => "per_agent",
            Pooling::PerUser => "per_user",
            Pooling::Shared => "shared",
        }
    }
}

/// A budget's period: UTC calendar days, weeks starting Monday, months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Daily,
    Weekly,
    #[default]
    Monthly,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }

    /// `[start, end)` in epoch milliseconds of the period holding `now_ms`.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let day = now_ms.div_euclid(DAY_MS);
        match self {
            Period::Daily => (day * DAY_MS, (day + 1) * DAY_MS),
            Period::Weekly => {
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let monday = day - (day + 3).rem_euclid(7);
                (monday * DAY_MS, (monday + 7) * DAY_MS)
            }
            Period::Monthly => {
                let (y, m, _) = civil_from_days(day);
                let start = days_from_civil(y, m, 1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (start * DAY_MS, days_from_civil(ny, nm, 1) * DAY_MS)
            }
        }
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// What a budget matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetScope {
    /// `per_agent`: the agent this override is for (absent: the default for every agent).
    /// `per_user`, `shared`: only calls of this agent match.
    #[serde(default)]
    pub agent: Option<String>,
    /// `per_user`: the user this override is for (absent: the default for every user).
    /// `per_agent`, `shared`: only calls of this user match.
    #[serde(default)]
    pub user: Option<String>,
    /// Only calls through these providers match (empty: every provider).
    #[serde(default)]
    pub providers: Vec<String>,
}

/// A spend cap. Output-only fields are filled in by the API and never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Immutable; `^[a-z][a-z0-9-]*$`, at most 63 characters. Required on create (422 when
    /// absent); not marked required in the schema, which also describes merge patches.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub scope: BudgetScope,
    /// per_agent | per_user | shared
    #[serde(default)]
    pub pooling_mode: Pooling,
    /// daily | weekly | monthly (UTC calendar; weeks start Monday)
    #[serde(default)]
    pub period: Period,
    /// The cap, in microcents (1 USD = 100,000,000); more than 0. Required on create.
    #[serde(default, deserialize_with = "crate::error::required_integer")]
    pub limit_microcents: i64,
    /// Past this spend responses carry `SpendLimit-Warning`; 0..=limit (absent: no warning).
    #[serde(default, deserialize_with = "crate::error::integer")]
    pub warn_at_microcents: Option<i64>,
    /// Output only: the spend of the period so far (the largest pool for per-agent/per-user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub current_spend_microcents: Option<i64>,
    /// Output only: the pool key of `current_spend_microcents` (agent or user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub top_key: Option<String>,
    /// Output only: reservations of calls in flight on the answering replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub reserved_microcents: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub period_starts_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub period_resets_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub updated_at: Option<String>,
    /// Output only: scope references that name nothing (a provider that does not exist). The
    /// budget is kept as written and counts no call through them until they exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(read_only)]
    pub warnings: Vec<FieldWarning>,
}

/// The output-only field names of a budget (accepted on input and ignored, so a GET body can
/// be sent back).
pub const BUDGET_OUTPUT_FIELDS: [&str; 8] = [
    "current_spend_microcents",
    "top_key",
    "reserved_microcents",
    "period_starts_at",
    "period_resets_at",
    "created_at",
    "updated_at",
    "warnings",
];

fn field_err(field: &'static str) -> impl Fn(String) -> ValidationError {
    move |m| ValidationError::new(field, m)
}

fn check_label(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty or only spaces when set"));
    }
    validate::char_len(v, 1, 253).map_err(|m| ValidationError::new(field, m))?;
    validate::no_control(v).map_err(|m| ValidationError::new(field, m))
}

/// serde reports a missing member at its parent; name the member itself.
fn missing_field_named(mut e: ValidationError) -> ValidationError {
    if let Some(rest) = e.message.strip_prefix("missing field `")
        && let Some(name) = rest.split('`').next()
    {
        e.field = if e.field.is_empty() { name.to_string() } else { format!("{}.{name}", e.field) };
    }
    e
}

fn strip_output(value: &mut serde_json::Value, fields: &[&str]) {
    if let Some(o) = value.as_object_mut() {
        for f in fields {
            o.remove(*f);
        }
    }
}

impl BudgetSpec {
    /// Parses and validates a budget (errors name the field).
    pub fn from_value(mut value: serde_json::Value) -> Result<BudgetSpec, ValidationError> {
        if !value.is_object() {
            return Err(ValidationError::new("", "request body must be a JSON object"));
        }
        strip_output(&mut value, &BUDGET_OUTPUT_FIELDS);
        let mut spec: BudgetSpec = from_json_value(value).map_err(missing_field_named)?;
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&mut self) -> Result<(), ValidationError> {
        validate::resource_name(&self.name).map_err(field_err("name"))?;
        if self.display_name.is_empty() {
            self.display_name = self.name.clone();
        }
        check_label("display_name", &self.display_name)?;
        if self.limit_microcents <= 0 {
            return Err(ValidationError::new(
                "limit_microcents",
                "must be more than 0 (microcents; 1 USD = 100000000)",
            ));
        }
        if let Some(w) = self.warn_at_microcents
            && !(0..=self.limit_microcents).contains(&w)
        {
            return Err(ValidationError::new(
                "warn_at_microcents",
                format!("must be between 0 and limit_microcents ({})", self.limit_microcents),
            ));
        }
        if let Some(a) = &self.scope.agent {
            check_label("scope.agent", a)?;
        }
        if let Some(u) = &self.scope.user {
            check_label("scope.user", u)?;
        }
        for (i, p) in self.scope.providers.iter().enumerate() {
            validate::resource_name(p).map_err(|m| ValidationError::new(format!("scope.providers[{i}]"), m))?;
            if self.scope.providers[..i].contains(p) {
                return Err(ValidationError::new(format!("scope.providers[{i}]"), format!("`{p}` is listed twice")));
            }
        }
        Ok(())
    }

    /// The agent (per_agent) or user (per_user) this budget overrides the default for.
    pub fn override_key(&self) -> Option<&str> {
        match self.pooling_mode {
            Pooling::PerAgent => self.scope.agent.as_deref(),
            Pooling::PerUser => self.scope.user.as_deref(),
            Pooling::Shared => None,
        }
    }

    /// The field that names this budget's override key, for error messages.
    pub fn override_field(&self) -> &'static str {
        match self.pooling_mode {
            Pooling::PerUser => "scope.user",
            Pooling::PerAgent | Pooling::Shared => "scope.agent",
        }
    }

    /// Whether the call passes this budget's narrowing filters (providers, and the scope field
    /// that is not the pool key).
    fn narrows_to(&self, call: &Call<'_>) -> bool {
        let s = &self.scope;
        if !s.providers.is_empty() && !s.providers.iter().any(|p| p == call.provider) {
            return false;
        }
        let agent_ok = || s.agent.as_deref().is_none_or(|a| call.agent == Some(a));
        let user_ok = || s.user.as_deref().is_none_or(|u| call.user == Some(u));
        match self.pooling_mode {
            Pooling::PerAgent => user_ok(),
            Pooling::PerUser => agent_ok(),
            Pooling::Shared => agent_ok() && user_ok(),
        }
    }
}

/// Who makes a call and through which provider.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub provider: &'a str,
    pub agent: Option<&'a str>,
    pub user: Option<&'a str>,
    pub token_id: &'a str,
    pub token_name: &'a str,
    pub model: Option<&'a str>,
}

/// The budgets a call counts against, each with its pool key (agent, user, or `""` for
/// shared). A per-agent (per-user) override for the caller replaces the defaults of that
/// pooling; calls without an agent (user) are not capped by per-agent (per-user) budgets.
pub fn matching_budgets<'b, 'c, B: AsRef<BudgetSpec>, O: Default + Extend<(&'b B, &'c str)>>(
    budgets: &'b [B],
    call: &Call<'c>,
) -> O {
    let mut out = O::default();
    for (mode, who) in [(Pooling::PerAgent, call.agent), (Pooling::PerUser, call.user), (Pooling::Shared, None)] {
        let of_mode = budgets.iter().filter(|b| (*b).as_ref().pooling_mode == mode);
        if mode == Pooling::Shared {
            out.extend(of_mode.filter(|b| (*b).as_ref().narrows_to(call)).map(|b| (b, "")));
            continue;
        }
        let Some(who) = who else { continue };
        // The caller's override, if there is one, replaces the defaults of this pooling.
        let overridden = of_mode.clone().any(|b| (*b).as_ref().override_key() == Some(who));
        let want = if overridden { Some(who) } else { None };
        out.extend(
            of_mode
                .filter(|b| (*b).as_ref().override_key() == want && (*b).as_ref().narrows_to(call))
                .map(|b| (b, who)),
        );
    }
    out
}

/// What a rate limit matches: each given field must equal the call's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitScope {
    /// A gateway token, by id or name.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    /// A provider name.
    #[serde(default)]
    pub provider: Option<String>,
    /// A model as called.
    #[serde(default)]
    pub model: Option<String>,
}

/// Requests and/or tokens per fixed UTC minute, over every call its scope matches (one pool).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Immutable; `^[a-z][a-z0-9-]*$`, at most 63 characters. Required on create (422 when
    /// absent); not marked required in the schema, which also describes merge patches.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub scope: RateLimitScope,
    /// More than 0 when set.
    #[serde(default, deserialize_with = "crate::error::integer")]
    pub requests_per_minute: Option<i64>,
    /// More than 0 when set (prompt + output tokens).
    #[serde(default, deserialize_with = "crate::error::integer")]
    pub tokens_per_minute: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub updated_at: Option<String>,
    /// Output only: scope references that name nothing (a provider that does not exist, a token
    /// id or name no active token has). The limit is kept as written and matches no call until
    /// they exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(read_only)]
    pub warnings: Vec<FieldWarning>,
}

impl RateLimitSpec {
    /// Parses and validates a rate limit (errors name the field).
    pub fn from_value(mut value: serde_json::Value) -> Result<RateLimitSpec, ValidationError> {
        if !value.is_object() {
            return Err(ValidationError::new("", "request body must be a JSON object"));
        }
        strip_output(&mut value, &["created_at", "updated_at", "warnings"]);
        let mut spec: RateLimitSpec = from_json_value(value).map_err(missing_field_named)?;
        validate::resource_name(&spec.name).map_err(field_err("name"))?;
        if spec.display_name.is_empty() {
            spec.display_name = spec.name.clone();
        }
        check_label("display_name", &spec.display_name)?;
        for (f, v) in [("requests_per_minute", spec.requests_per_minute), ("tokens_per_minute", spec.tokens_per_minute)]
        {
            if matches!(v, Some(n) if n <= 0) {
                return Err(ValidationError::new(f, "must be more than 0 when set"));
            }
        }
        if spec.requests_per_minute.is_none() && spec.tokens_per_minute.is_none() {
            return Err(ValidationError::new(
                "requests_per_minute",
                "set requests_per_minute, tokens_per_minute or both",
            ));
        }
        let s = &spec.scope;
        for (f, v) in [
            ("scope.token", &s.token),
            ("scope.user", &s.user),
            ("scope.agent", &s.agent),
            ("scope.provider", &s.provider),
            ("scope.model", &s.model),
        ] {
            if let Some(v) = v {
                check_label(f, v)?;
            }
        }
        Ok(spec)
    }

    /// Whether the call is under this limit.
    pub fn applies(&self, call: &Call<'_>) -> bool {
        let s = &self.scope;
        s.token.as_deref().is_none_or(|t| t == call.token_id || t == call.token_name)
            && s.user.as_deref().is_none_or(|u| call.user == Some(u))
            && s.agent.as_deref().is_none_or(|a| call.agent == Some(a))
            && s.provider.as_deref().is_none_or(|p| p == call.provider)
            && s.model.as_deref().is_none_or(|m| call.model == Some(m))
    }
}

/// The upper bound of a call's cost: `prompt_tokens` at the dearest input-side rate (input,
/// cache writes of any TTL) plus `output_tokens` at the dearer of output and reasoning. `rates`
/// are the effective rates of the call (overrides, tiers and the Bedrock geo rule applied, as
/// `pricing::price` worked them out for this prompt size); a bucket without a rate costs 0, as
/// it will in the real call.
pub fn estimate_cost(rates: &Rates, prompt_tokens: i64, output_tokens: i64) -> i64 {
    let max = |v: &[Option<i64>]| v.iter().flatten().copied().max().unwrap_or(0);
    let input = max(&[rates.input, rates.cache_write_5m, rates.cache_write_1h, rates.cache_write_unknown]);
    let output = max(&[rates.output, rates.reasoning]);
    bucket_cost(prompt_tokens, input).saturating_add(bucket_cost(output_tokens, output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D: i64 = DAY_MS;

    #[test]
    fn periods_are_utc_calendar_weeks_start_monday() {
        // 2026-12-05 is a Saturday.
        let now = days_from_civil(2026, 12, 5) * D + 3_600_000 * 13;
        assert_eq!(Period::Daily.bounds(now), (days_from_civil(2026, 12, 5) * D, days_from_civil(2026, 12, 6) * D));
        assert_eq!(Period::Weekly.bounds(now), (days_from_civil(2026, 11, 30) * D, days_from_civil(2026, 12, 7) * D));
        assert_eq!(Period::Monthly.bounds(now), (days_from_civil(2026, 12, 1) * D, days_from_civil(2027, 1, 1) * D));
        // A Monday starts its own week; February of a leap year has 29 days.
        let monday = days_from_civil(2026, 11, 30) * D;
        assert_eq!(Period::Weekly.bounds(monday).0, monday);
        let feb = days_from_civil(2028, 2, 10) * D;
        assert_eq!(Period::Monthly.bounds(feb).1 - Period::Monthly.bounds(feb).0, 29 * D);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |v: serde_json::Value, field: &str| {
            let e = BudgetSpec::from_value(v).err().unwrap_or_else(|| panic!("must be refused: {field}"));
            assert_eq!(e.field, field, "{e}");
        };
        bad(json!({"name": "Bad", "limit_microcents": 1}), "name");
        bad(json!({"name": "b", "limit_microcents": 0}), "limit_microcents");
        bad(json!({"name": "b", "limit_microcents": 10, "warn_at_microcents": 11}), "warn_at_microcents");
        bad(json!({"name": "b", "limit_microcents": 10, "period": "hourly"}), "period");
        bad(json!({"name": "b", "limit_microcents": 10, "pooling_mode": "x"}), "pooling_mode");
        bad(json!({"name": "b", "limit_microcents": 10, "scope": {"providers": ["A"]}}), "scope.providers[0]");
        bad(json!({"name": "b", "limit_microcents": 10, "scope": {"team": "x"}}), "scope.team");
        bad(json!({"name": "b"}), "limit_microcents");
        let ok = BudgetSpec::from_value(json!({"name": "b", "limit_microcents": 10, "current_spend_microcents": 3}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ok.display_name.as_str(), ok.period, ok.pooling_mode), ("b", Period::Monthly, Pooling::PerAgent));
        assert_eq!(ok.current_spend_microcents, None, "output-only fields are ignored on input");
        let rl = |v| RateLimitSpec::from_value(v).err().map(|e| e.field);
        assert_eq!(rl(json!({"name": "r"})), Some("requests_per_minute".into()));
        assert_eq!(rl(json!({"name": "r", "tokens_per_minute": -1})), Some("tokens_per_minute".into()));
        assert_eq!(rl(json!({"name": "r", "requests_per_minute": 5})), None);
    }

    fn budget(name: &str, pooling: Pooling, agent: Option<&str>, user: Option<&str>, providers: &[&str]) -> BudgetSpec {
        BudgetSpec {
            name: name.into(),
            pooling_mode: pooling,
            scope: BudgetScope {
                agent: agent.map(str::to_string),
                user: user.map(str::to_string),
                providers: providers.iter().map(|p| p.to_string()).collect(),
            },
            limit_microcents: 1,
            ..BudgetSpec::default()
        }
    }

    impl AsRef<BudgetSpec> for BudgetSpec {
        fn as_ref(&self) -> &BudgetSpec {
            self
        }
    }

    fn call<'a>(agent: Option<&'a str>, user: Option<&'a str>, provider: &'a str) -> Call<'a> {
        Call { provider, agent, user, token_id: "t", token_name: "tn", model: None }
    }

    #[test]
    fn overrides_replace_the_default_and_calls_without_agent_are_not_capped() {
        let all = vec![
            budget("default", Pooling::PerAgent, None, None, &[]),
            budget("a1-override", Pooling::PerAgent, Some("a1"), None, &[]),
            budget("pool", Pooling::Shared, None, None, &["oa"]),
            budget("users", Pooling::PerUser, None, None, &[]),
        ];
        let names = |c: Call<'_>| {
            matching_budgets::<_, Vec<_>>(&all, &c)
                .into_iter()
                .map(|(b, k)| format!("{}:{k}", b.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(call(Some("a1"), None, "oa")), ["a1-override:a1", "pool:"]);
        assert_eq!(names(call(Some("a2"), Some("u"), "an")), ["default:a2", "users:u"]);
        assert_eq!(names(call(None, None, "an")), Vec::<String>::new());
    }

    #[test]
    fn rate_limit_scope_fields_must_all_match() {
        let r = RateLimitSpec {
            name: "r".into(),
            scope: RateLimitScope { provider: Some("oa".into()), token: Some("tn".into()), ..Default::default() },
            requests_per_minute: Some(1),
            ..Default::default()
        };
        assert!(r.applies(&call(None, None, "oa")));
        assert!(!r.applies(&call(None, None, "an")));
    }

    #[test]
    fn the_estimate_takes_the_dearest_rates() {
        let rates = Rates {
            input: Some(300_000_000),
            output: Some(1_500_000_000),
            cache_write_1h: Some(600_000_000),
            reasoning: None,
            ..Rates::default()
        };
        // 1000 prompt tokens at the 1h write rate + 100 output tokens at the output rate.
        assert_eq!(estimate_cost(&rates, 1000, 100), 600_000 + 150_000);
        assert_eq!(estimate_cost(&Rates::default(), 1000, 100), 0, "an unpriced call costs 0 in the estimate too");
    }
}
