//! `tollgate requests list|get`, `tollgate conversations list|get` and `tollgate transcripts
//! purge` over `/api/v1/requests`, `/api/v1/conversations` and `/api/v1/transcripts`: the
//! request log (every proxied request, newest first), conversations, and recorded bodies
//! (shown by `requests get` to admin tokens; others see `bodies withheld`).

use crate::client::{Client, fetch_pages};
use crate::opts::{OutputFormat, PageArgs};
use crate::output;
use crate::spending::usd;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// The request log, newest first.
    List(Box<RequestListArgs>),
    /// One request: its metadata and, for admin tokens, the recorded bodies.
    Get { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ConversationsCommand {
    /// Conversations, most recently active first.
    List(Box<ConversationListArgs>),
    /// One conversation and its turns, oldest first.
    Get { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TranscriptsCommand {
    /// Delete a provider's recorded bodies (its requests stay in the log and reports).
    Purge(PurgeArgs),
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct RequestListArgs {
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub agent: Option<String>,
    /// success | upstream_error | timeout | connection_error | client_cancelled | failed.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub conversation: Option<String>,
    /// RFC 3339, inclusive.
    #[arg(long)]
    pub start: Option<String>,
    /// RFC 3339, exclusive.
    #[arg(long)]
    pub end: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConversationListArgs {
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub agent: Option<String>,
    /// ok | failed.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub start: Option<String>,
    #[arg(long)]
    pub end: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PurgeArgs {
    /// The provider whose transcripts go.
    #[arg(long)]
    pub provider: String,
    /// Only transcripts of requests before this time (RFC 3339).
    #[arg(long)]
    pub before: Option<String>,
}

fn pairs(items: &[(&'static str, &Option<String>)], page: &PageArgs) -> Vec<(&'static str, String)> {
    let mut q: Vec<(&'static str, String)> =
        items.iter().filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.clone()))).collect();
    q.extend(page.query());
    q
}

fn text(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `input+output` recorded flags as `in,out` (or `-`), `!` when truncated.
fn recorded(r: &Value) -> String {
    let mut parts = Vec::new();
    if r["input_recorded"].as_bool() == Some(true) {
        parts.push("in");
    }
    if r["output_recorded"].as_bool() == Some(true) {
        parts.push("out");
    }
    let mut s = if parts.is_empty() { "-".to_string() } else { parts.join(",") };
    if r["truncated"].as_bool() == Some(true) {
        s.push('!');
    }
    s
}

fn request_row(r: &Value) -> Vec<String> {
    let who = match (r["user"].as_str(), r["agent"].as_str()) {
        (Some(u), Some(a)) => format!("{u}/{a}"),
        (Some(u), None) => u.to_string(),
        (None, Some(a)) => a.to_string(),
        (None, None) => "-".into(),
    };
    vec![
        text(r, "time"),
        text(r, "id"),
        text(r, "provider"),
        text(r, "model"),
        who,
        text(r, "status"),
        text(r, "latency_ms"),
        text(r, "ttft_ms"),
        r["tokens"]["total"].as_i64().unwrap_or(0).to_string(),
        usd(&r["cost_microcents"]),
        recorded(r),
    ]
}

const REQUEST_HEADERS: [&str; 11] =
    ["TIME", "ID", "PROVIDER", "MODEL", "USER/AGENT", "STATUS", "LATENCY MS", "TTFT MS", "TOKENS", "COST", "RECORDED"];

/// One conversation as a table row (the list's or `get`'s: both carry `turns`, a count).
fn conversation_row(c: &Value) -> Vec<String> {
    let providers: Vec<&str> = c["providers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let turns = text(c, "turns");
    vec![
        text(c, "id"),
        text(c, "started_at"),
        text(c, "duration_ms"),
        turns,
        text(c, "status"),
        text(c, "tokens"),
        usd(&c["cost_microcents"]),
        providers.join(","),
    ]
}

pub async fn run_requests(client: &Client, fmt: OutputFormat, cmd: RequestsCommand) -> anyhow::Result<()> {
    match cmd {
        RequestsCommand::List(a) => {
            let q = pairs(
                &[
                    ("provider", &a.provider),
                    ("model", &a.model),
                    ("user", &a.user),
                    ("agent", &a.agent),
                    ("status", &a.status),
                    ("conversation", &a.conversation),
                    ("start", &a.start),
                    ("end", &a.end),
                ],
                &a.page,
            );
            let list = fetch_pages(client, "requests", "requests", q, a.page.all).await?;
            output::listing(&list, fmt, &REQUEST_HEADERS, request_row)
        }
        RequestsCommand::Get { id } => {
            let v = client.get(&["requests", &id], &[]).await?;
            if fmt != OutputFormat::Table {
                return output::document(&v, fmt);
            }
            output::table(&REQUEST_HEADERS, &[request_row(&v)]);
            output::line(&format!("conversation: {}", text(&v, "conversation_id")));
            if v["bodies_withheld"].as_bool() == Some(true) {
                output::line("bodies withheld: reading recorded bodies needs an admin token");
                return Ok(());
            }
            for (label, key, truncated) in
                [("input", "input", "input_truncated"), ("output", "output", "output_truncated")]
            {
                let cut = if v[truncated].as_bool() == Some(true) { " (truncated)" } else { "" };
                match &v[key] {
                    Value::Null => output::line(&format!("--- {label}: not recorded")),
                    Value::String(s) => output::line(&format!("--- {label}{cut}\n{s}")),
                    other => output::line(&format!(
                        "--- {label}{cut}\n{}",
                        serde_json::to_string_pretty(other).unwrap_or_default()
                    )),
                }
            }
            if let Some(m) = v["output_message"].as_object() {
                output::line("--- assembled message");
                for (k, val) in m {
                    output::line(&format!(
                        "{k}: {}",
                        if let Value::String(s) = val { s.clone() } else { val.to_string() }
                    ));
                }
            }
            Ok(())
        }
    }
}

pub async fn run_conversations(client: &Client, fmt: OutputFormat, cmd: ConversationsCommand) -> anyhow::Result<()> {
    match cmd {
        ConversationsCommand::List(a) => {
            let q = pairs(
                &[
                    ("provider", &a.provider),
                    ("user", &a.user),
                    ("agent", &a.agent),
                    ("status", &a.status),
                    ("start", &a.start),
                    ("end", &a.end),
                ],
                &a.page,
            );
            let list = fetch_pages(client, "conversations", "conversations", q, a.page.all).await?;
            output::listing(
                &list,
                fmt,
                &["CONVERSATION", "STARTED", "DURATION MS", "TURNS", "STATUS", "TOKENS", "COST", "PROVIDERS"],
                conversation_row,
            )
        }
        ConversationsCommand::Get { id } => {
            let v = client.get(&["conversations", &id], &[]).await?;
            if fmt != OutputFormat::Table {
                return output::document(&v, fmt);
            }
            output::table(
                &["CONVERSATION", "STARTED", "DURATION MS", "TURNS", "STATUS", "TOKENS", "COST", "PROVIDERS"],
                &[conversation_row(&v)],
            );
            let turns = v["requests"].as_array().map(Vec::as_slice).unwrap_or_default();
            let rows: Vec<Vec<String>> = turns.iter().map(request_row).collect();
            output::table(&REQUEST_HEADERS, &rows);
            Ok(())
        }
    }
}

pub async fn run_transcripts(client: &Client, fmt: OutputFormat, cmd: TranscriptsCommand) -> anyhow::Result<()> {
    match cmd {
        TranscriptsCommand::Purge(a) => {
            let mut q = vec![("provider", a.provider.clone())];
            if let Some(b) = &a.before {
                q.push(("before", b.clone()));
            }
            let answer = client.send(Method::DELETE, &["transcripts"], &q, None).await?;
            let v = answer.json();
            if fmt != OutputFormat::Table {
                return output::document(&v, fmt);
            }
            output::line(&format!("purged {} transcript(s) of provider {}", text(&v, "deleted"), a.provider));
            Ok(())
        }
    }
}
