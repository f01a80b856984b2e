//! `tollgate token …`: create (the token is shown once), list, get and revoke over
//! `/api/v1/tokens`. `get` and `revoke` take an id or a unique name: the API addresses tokens
//! by id only, so the name is resolved here from the list ([`resolve`]).
//!
//! [`create_body`] takes the current time as an argument so `--expires-in` is tested
//! without a clock. This module never logs a token.

use crate::client::Client;
use crate::client::fetch_pages;
use crate::opts::{OutputFormat, PageArgs};
use crate::output;
use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use clap::Subcommand;
use serde_json::{Map, Value, json};
use tollgate_core::Role;

const COLLECTION: &str = "tokens";

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a gateway token; it is printed once.
    Create(TokenCreateArgs),
    /// List tokens (never their secret part).
    #[command(visible_alias = "ls")]
    List(TokenListArgs),
    /// Show one token (by id, or by name when the name is unique).
    Get(TokenId),
    /// Revoke a token (by id, or by name when one unrevoked token has it).
    Revoke(TokenId),
    /// Offline, on the gateway's database (not through the API): mint a new admin token when
    /// every admin token is lost. Printed once.
    RecoverAdmin(crate::serve::RecoverAdminArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenId {
    /// Token id, or its name when no other token has that name.
    #[arg(value_name = "ID|NAME")]
    pub id: String,
}

/// What a token id or name is resolved for: `revoke` only considers tokens not yet revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Get,
    Revoke,
}

/// Finds the token `arg` names among `tokens` (as listed by the API): an exact id wins; else
/// the one token with that name (for [`Purpose::Revoke`], the one not yet revoked). Several
/// tokens with the name is an error listing their ids; so is none.
pub fn resolve<'a>(tokens: &'a [Value], arg: &str, purpose: Purpose) -> anyhow::Result<&'a Value> {
    let text = |t: &Value, k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if let Some(t) = tokens.iter().find(|t| text(t, "id") == arg) {
        return Ok(t);
    }
    let named: Vec<&Value> = tokens.iter().filter(|t| text(t, "name") == arg).collect();
    let revoked = |t: &&Value| t.get("revoked_at").is_some_and(|v| !v.is_null());
    let candidates: Vec<&Value> = match purpose {
        Purpose::Get => named.clone(),
        Purpose::Revoke => named.iter().copied().filter(|t| !revoked(t)).collect(),
    };
    let describe = |ts: &[&Value]| {
        ts.iter()
            .map(|t| format!("{} ({}, {})", text(t, "id"), text(t, "role"), text(t, "status")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] if named.is_empty() => bail!("no token has the id or name `{arg}` (see `tollgate token list`)"),
        [] => bail!("every token named `{arg}` is already revoked: {}", describe(&named)),
        many => bail!("{} tokens are named `{arg}`: {}; pass the id of the one you mean", many.len(), describe(many)),
    }
}

/// Lists every token and resolves `arg` among them (see [`resolve`]); answers the token as
/// listed (the list keeps revoked tokens, which `GET /tokens/{id}` answers 410 for).
async fn resolve_token(client: &Client, arg: &str, purpose: Purpose) -> anyhow::Result<Value> {
    let list = fetch_pages(client, COLLECTION, "tokens", vec![("page_size", "1000".to_owned())], true).await?;
    Ok(resolve(&list.items, arg, purpose)?.clone())
}

/// [`resolve_token`]'s id.
async fn resolve_id(client: &Client, arg: &str, purpose: Purpose) -> anyhow::Result<String> {
    let t = resolve_token(client, arg, purpose).await?;
    t.get("id").and_then(Value::as_str).map(str::to_owned).context("the server listed a token without an id")
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenCreateArgs {
    /// A label for the token.
    pub name: String,
    /// admin | writer | reader | invoker.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// The user (email) usage is attributed to.
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// The agent (slug) usage is attributed to.
    #[arg(long, value_name = "SLUG")]
    pub agent: Option<String>,
    /// Limit the token to this provider. Repeatable; absent means every provider.
    #[arg(long = "provider", value_name = "NAME")]
    pub providers: Vec<String>,
    /// Expiry time (RFC 3339).
    #[arg(long, value_name = "RFC3339", conflicts_with = "expires_in")]
    pub expires_at: Option<String>,
    /// Expiry from now: e.g. 30d, 12h, 90m, 2w.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// Parses `30d`, `12h`, `90m`, `45s`, `2w` into a positive duration.
pub fn parse_expires_in(s: &str) -> anyhow::Result<TimeDelta> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 =
        num.parse().map_err(|_| anyhow::anyhow!("--expires-in `{s}`: expected a number and a unit, e.g. 30d"))?;
    let d = match unit {
        "s" => TimeDelta::try_seconds(n),
        "m" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        "w" => TimeDelta::try_weeks(n),
        _ => bail!("--expires-in `{s}`: unknown unit `{unit}` (use s, m, h, d or w)"),
    };
    match d {
        Some(d) if n > 0 => Ok(d),
        Some(_) => bail!("--expires-in `{s}` must be positive"),
        None => bail!("--expires-in `{s}` is too large"),
    }
}

/// The POST body of `token create`; `now` anchors `--expires-in`.
pub fn create_body(args: &TokenCreateArgs, now: DateTime<Utc>) -> anyhow::Result<Value> {
    let mut body = Map::new();
    body.insert("name".into(), json!(args.name));
    body.insert("role".into(), json!(args.role.as_str()));
    if let Some(u) = &args.user {
        body.insert("user".into(), json!(u));
    }
    if let Some(a) = &args.agent {
        body.insert("agent".into(), json!(a));
    }
    if !args.providers.is_empty() {
        body.insert("providers".into(), json!(args.providers));
    }
    let expires = match (&args.expires_at, &args.expires_in) {
        (Some(at), _) => Some(
            DateTime::parse_from_rfc3339(at.trim())
                .with_context(|| format!("--expires-at `{at}` is not an RFC 3339 time (e.g. 2026-01-31T00:00:00Z)"))?
                .with_timezone(&Utc),
        ),
        (None, Some(d)) => Some(now.checked_add_signed(parse_expires_in(d)?).context("--expires-in is too large")?),
        (None, None) => None,
    };
    if let Some(t) = expires {
        body.insert("expires_at".into(), json!(t.to_rfc3339_opts(SecondsFormat::Secs, true)));
    }
    Ok(Value::Object(body))
}

/// Runs one token command.
pub async fn run(client: &Client, fmt: OutputFormat, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(a) => {
            let body = create_body(&a, Utc::now())?;
            let created = client.post(&[COLLECTION], &body).await?.json();
            output::warnings(&created);
            if fmt != OutputFormat::Table {
                return output::document(&created, fmt);
            }
            let token = created.get("token").and_then(Value::as_str).context("the server answered without a token")?;
            output::line(token);
            output::note(&format!(
                "created token {} (id {}, role {}). Save it now: it will not be shown again.",
                output::cell(&created, "name"),
                output::cell(&created, "id"),
                output::cell(&created, "role"),
            ));
            Ok(())
        }
        TokenCommand::List(a) => {
            let list = fetch_pages(client, COLLECTION, "tokens", a.page.query(), a.page.all).await?;
            let now = Utc::now();
            let headers =
                ["ID", "NAME", "PREFIX", "ROLE", "USER", "AGENT", "EXPIRES", "STATUS", "LAST USED", "7D SPEND"];
            output::listing(&list, fmt, &headers, |t| token_row(t, now))
        }
        TokenCommand::Get(a) => {
            let t = resolve_token(client, &a.id, Purpose::Get).await?;
            match fmt {
                OutputFormat::Table => output::key_values(&t),
                _ => output::document(&t, fmt)?,
            }
            Ok(())
        }
        TokenCommand::Revoke(a) => {
            let id = resolve_id(client, &a.id, Purpose::Revoke).await?;
            let t = client.delete(&[COLLECTION, &id]).await?.json();
            match fmt {
                OutputFormat::Table => output::line(&format!("revoked token {} (id {id})", output::cell(&t, "name"))),
                _ => output::document(&t, fmt)?,
            }
            Ok(())
        }
        TokenCommand::RecoverAdmin(_) => bail!("`token recover-admin` runs offline, not through the admin API"),
    }
}

/// Active, Revoked or Expired.
pub fn token_status(t: &Value, now: DateTime<Utc>) -> &'static str {
    if t.get("revoked_at").is_some_and(|v| !v.is_null()) {
        return "Revoked";
    }
    let expired = t
        .get("expires_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|e| e <= now);
    if expired { "Expired" } else { "Active" }
}

/// One row of the tokens table: ID, NAME, PREFIX, ROLE, USER, AGENT, EXPIRES, STATUS, LAST USED,
/// 7D SPEND (exact USD).
pub fn token_row(t: &Value, now: DateTime<Utc>) -> Vec<String> {
    let expires = match output::cell(t, "expires_at").as_str() {
        "-" => "never".to_owned(),
        e => e.to_owned(),
    };
    vec![
        output::cell(t, "id"),
        output::cell(t, "name"),
        output::cell(t, "prefix"),
        output::cell(t, "role"),
        output::cell(t, "user"),
        output::cell(t, "agent"),
        expires,
        token_status(t, now).to_owned(),
        match output::cell(t, "last_used_at").as_str() {
            "-" => "never".to_owned(),
            at => at.to_owned(),
        },
        crate::spending::usd(t.get("spend_7d_microcents").unwrap_or(&Value::Null)),
    ]
}
