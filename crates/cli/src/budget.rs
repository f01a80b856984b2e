//! `tollgate budget …` and `tollgate rate-limit …`: create, list, get, update and delete over
//! `/api/v1/budgets` and `/api/v1/rate-limits`. Amounts are given and shown in USD
//! (`--limit 25`, `--warn-at 20`) and sent as the API's integer microcents, converted exactly
//! by `tollgate_core::money`.

use crate::client::Client;
use crate::opts::OutputFormat;
use crate::output;
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Map, Value, json};
use tollgate_core::Microcents;

const BUDGETS: &str = "budgets";
const RATE_LIMITS: &str = "rate-limits";

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Create a budget (a spend cap per agent, per user, or shared).
    Create(BudgetArgs),
    /// List budgets with their spend this period.
    #[command(visible_alias = "ls")]
    List,
    /// Show one budget.
    Get(Named),
    /// Change a budget (only the flags given; its period's spend is kept).
    Update(BudgetArgs),
    /// Delete a budget.
    Delete(Named),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Named {
    pub name: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BudgetArgs {
    pub name: String,
    #[arg(long)]
    pub display_name: Option<String>,
    /// The cap in USD, e.g. 25 or 0.50 (required on create).
    #[arg(long, value_name = "USD")]
    pub limit: Option<String>,
    /// Past this spend (USD) responses carry a SpendLimit-Warning header.
    #[arg(long, value_name = "USD")]
    pub warn_at: Option<String>,
    /// daily | weekly | monthly (UTC calendar; weeks start Monday).
    #[arg(long, value_parser = ["daily", "weekly", "monthly"])]
    pub period: Option<String>,
    /// per_agent (default) | per_user | shared.
    #[arg(long, value_parser = ["per_agent", "per_user", "shared"])]
    pub pooling: Option<String>,
    /// per_agent: make this the override for one agent (else the default for every agent).
    #[arg(long, value_name = "SLUG")]
    pub agent: Option<String>,
    /// per_user: make this the override for one user; otherwise only this user's calls count.
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Only calls through this provider count. Repeatable.
    #[arg(long = "provider", value_name = "NAME")]
    pub providers: Vec<String>,
}

/// USD text to microcents, naming the flag on error.
fn usd(flag: &str, v: &str) -> anyhow::Result<i64> {
    Microcents::parse_usd(v).map(|m| m.0).with_context(|| format!("{flag} `{v}`"))
}

/// The JSON body of `budget create` / `budget update` (only what the flags set).
pub fn budget_body(a: &BudgetArgs, create: bool) -> anyhow::Result<Value> {
    let mut body = Map::new();
    if create {
        body.insert("name".into(), json!(a.name));
        if a.limit.is_none() {
            anyhow::bail!("--limit is required (the cap in USD, e.g. --limit 25)");
        }
    }
    if let Some(d) = &a.display_name {
        body.insert("display_name".into(), json!(d));
    }
    if let Some(l) = &a.limit {
        body.insert("limit_microcents".into(), json!(usd("--limit", l)?));
    }
    if let Some(w) = &a.warn_at {
        body.insert("warn_at_microcents".into(), json!(usd("--warn-at", w)?));
    }
    if let Some(p) = &a.period {
        body.insert("period".into(), json!(p));
    }
    if let Some(p) = &a.pooling {
        body.insert("pooling_mode".into(), json!(p));
    }
    let mut scope = Map::new();
    if let Some(x) = &a.agent {
        scope.insert("agent".into(), json!(x));
    }
    if let Some(x) = &a.user {
        scope.insert("user".into(), json!(x));
    }
    if !a.providers.is_empty() {
        scope.insert("providers".into(), json!(a.providers));
    }
    if !scope.is_empty() {
        body.insert("scope".into(), Value::Object(scope));
    }
    Ok(Value::Object(body))
}

fn money(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_i64)
        .map_or_else(|| "-".to_string(), |m| format!("${}", Microcents(m).to_usd_string()))
}

/// One row: NAME, POOLING, APPLIES TO, PERIOD, LIMIT, WARN AT, SPENT, RESETS.
pub fn budget_row(b: &Value) -> Vec<String> {
    let s = &b["scope"];
    let mut applies = Vec::new();
    for (k, label) in [("agent", "agent"), ("user", "user")] {
        if let Some(x) = s.get(k).and_then(Value::as_str) {
            applies.push(format!("{label} {x}"));
        }
    }
    if let Some(p) = s.get("providers").and_then(Value::as_array).filter(|p| !p.is_empty()) {
        let names: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
        applies.push(format!("providers {}", names.join(",")));
    }
    let spent = match b.get("top_key").and_then(Value::as_str) {
        Some(k) => format!("{} ({k})", money(b, "current_spend_microcents")),
        None => money(b, "current_spend_microcents"),
    };
    vec![
        output::cell(b, "name"),
        output::cell(b, "pooling_mode"),
        if applies.is_empty() { "default".into() } else { applies.join("; ") },
        output::cell(b, "period"),
        money(b, "limit_microcents"),
        money(b, "warn_at_microcents"),
        spent,
        output::cell(b, "period_resets_at"),
    ]
}

fn items(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

/// One budget or rate limit; its `warnings` (scope references that name nothing) go to
/// stderr, not into the table.
fn show(v: &Value, fmt: OutputFormat) -> anyhow::Result<()> {
    output::warnings(v);
    match fmt {
        OutputFormat::Table => {
            let mut shown = v.clone();
            if let Some(o) = shown.as_object_mut() {
                o.remove("warnings");
            }
            output::key_values(&shown);
            Ok(())
        }
        _ => output::document(v, fmt),
    }
}

/// The warnings of every listed item, `warning: <label>/<name>: <field>: <message>` on stderr.
fn list_warnings(v: &Value, key: &str, label: &str) {
    for item in items(v, key) {
        for w in item["warnings"].as_array().into_iter().flatten() {
            output::warning(&format!(
                "{label}/{}: {}: {}",
                output::cell(&item, "name"),
                output::cell(w, "field"),
                output::cell(w, "message")
            ));
        }
    }
}

/// Runs one budget command.
pub async fn run(client: &Client, fmt: OutputFormat, cmd: BudgetCommand) -> anyhow::Result<()> {
    match cmd {
        BudgetCommand::Create(a) => show(&client.post(&[BUDGETS], &budget_body(&a, true)?).await?.json(), fmt),
        BudgetCommand::Update(a) => {
            show(&client.patch(&[BUDGETS, &a.name], &budget_body(&a, false)?).await?.json(), fmt)
        }
        BudgetCommand::Get(a) => show(&client.get(&[BUDGETS, &a.name], &[]).await?, fmt),
        BudgetCommand::List => {
            let v = client.get(&[BUDGETS], &[]).await?;
            list_warnings(&v, "budgets", "budget");
            if fmt != OutputFormat::Table {
                return output::document(&v, fmt);
            }
            let rows: Vec<Vec<String>> = items(&v, "budgets").iter().map(budget_row).collect();
            output::table(&["NAME", "POOLING", "APPLIES TO", "PERIOD", "LIMIT", "WARN AT", "SPENT", "RESETS"], &rows);
            Ok(())
        }
        BudgetCommand::Delete(a) => {
            client.delete(&[BUDGETS, &a.name]).await?;
            output::line(&format!("deleted budget {}", a.name));
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RateLimitCommand {
    /// Create a rate limit (requests and/or tokens per minute over the calls it matches).
    Create(RateLimitArgs),
    /// List rate limits.
    #[command(visible_alias = "ls")]
    List,
    /// Show one rate limit.
    Get(Named),
    /// Change a rate limit (only the flags given).
    Update(RateLimitArgs),
    /// Delete a rate limit.
    Delete(Named),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitArgs {
    pub name: String,
    #[arg(long)]
    pub display_name: Option<String>,
    /// Requests per minute.
    #[arg(long = "rpm", value_name = "N")]
    pub requests_per_minute: Option<i64>,
    /// Tokens (prompt + output) per minute.
    #[arg(long = "tpm", value_name = "N")]
    pub tokens_per_minute: Option<i64>,
    /// Only calls made with this gateway token (its id or name). Not `--token`, which is the
    /// CLI's own admin credential.
    #[arg(long = "for-token", value_name = "ID|NAME")]
    pub for_token: Option<String>,
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    #[arg(long, value_name = "SLUG")]
    pub agent: Option<String>,
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
}

/// The JSON body of `rate-limit create` / `update` (only what the flags set).
pub fn rate_limit_body(a: &RateLimitArgs, create: bool) -> Value {
    let mut body = Map::new();
    if create {
        body.insert("name".into(), json!(a.name));
    }
    if let Some(d) = &a.display_name {
        body.insert("display_name".into(), json!(d));
    }
    if let Some(n) = a.requests_per_minute {
        body.insert("requests_per_minute".into(), json!(n));
    }
    if let Some(n) = a.tokens_per_minute {
        body.insert("tokens_per_minute".into(), json!(n));
    }
    let mut scope = Map::new();
    for (k, v) in [
        ("token", &a.for_token),
        ("user", &a.user),
        ("agent", &a.agent),
        ("provider", &a.provider),
        ("model", &a.model),
    ] {
        if let Some(v) = v {
            scope.insert(k.into(), json!(v));
        }
    }
    if !scope.is_empty() {
        body.insert("scope".into(), Value::Object(scope));
    }
    Value::Object(body)
}

/// One row: NAME, APPLIES TO, REQUESTS/MIN, TOKENS/MIN.
pub fn rate_limit_row(r: &Value) -> Vec<String> {
    let applies: Vec<String> = r["scope"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k} {v}")))
        .collect();
    vec![
        output::cell(r, "name"),
        if applies.is_empty() { "every call".into() } else { applies.join("; ") },
        output::cell(r, "requests_per_minute"),
        output::cell(r, "tokens_per_minute"),
    ]
}

/// Runs one rate-limit command.
pub async fn run_rate_limit(client: &Client, fmt: OutputFormat, cmd: RateLimitCommand) -> anyhow::Result<()> {
    match cmd {
        RateLimitCommand::Create(a) => {
            show(&client.post(&[RATE_LIMITS], &rate_limit_body(&a, true)).await?.json(), fmt)
        }
        RateLimitCommand::Update(a) => {
            show(&client.patch(&[RATE_LIMITS, &a.name], &rate_limit_body(&a, false)).await?.json(), fmt)
        }
        RateLimitCommand::Get(a) => show(&client.get(&[RATE_LIMITS, &a.name], &[]).await?, fmt),
        RateLimitCommand::List => {
            let v = client.get(&[RATE_LIMITS], &[]).await?;
            list_warnings(&v, "rate_limits", "rate-limit");
            if fmt != OutputFormat::Table {
                return output::document(&v, fmt);
            }
            let rows: Vec<Vec<String>> = items(&v, "rate_limits").iter().map(rate_limit_row).collect();
            output::table(&["NAME", "APPLIES TO", "REQUESTS/MIN", "TOKENS/MIN"], &rows);
            Ok(())
        }
        RateLimitCommand::Delete(a) => {
            client.delete(&[RATE_LIMITS, &a.name]).await?;
            output::line(&format!("deleted rate limit {}", a.name));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(limit: Option<&str>) -> BudgetArgs {
        BudgetArgs {
            name: "agents".into(),
            display_name: None,
            limit: limit.map(str::to_string),
            warn_at: Some("20".into()),
            period: Some("weekly".into()),
            pooling: None,
            agent: Some("bot".into()),
            user: None,
            providers: vec!["oa".into()],
        }
    }

    #[test]
    fn usd_flags_become_exact_microcents() {
        let b = budget_body(&args(Some("25")), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b,
            json!({"name": "agents", "limit_microcents": 2_500_000_000i64, "warn_at_microcents": 2_000_000_000i64,
                   "period": "weekly", "scope": {"agent": "bot", "providers": ["oa"]}})
        );
        assert!(budget_body(&args(None), true).is_err(), "create needs --limit");
        assert!(budget_body(&args(None), false).is_ok(), "update does not");
        let bad = BudgetArgs { limit: Some("2.5.1".into()), ..args(None) };
        assert!(budget_body(&bad, false).err().is_some_and(|e| format!("{e:#}").contains("--limit")));
    }
}
