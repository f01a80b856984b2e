//! `tollgate spending summary|timeseries|breakdown|export` over `/api/v1/spending/*`: tables of
//! cost, requests and tokens (USD shown exactly from microcents), or the API's JSON with `-o json`.

use crate::args::OutputFormat;
use crate::client::Client;
use crate::output;
use clap::Subcommand;
use serde_json::Value;
use tollgate_core::Microcents;

#[derive(Debug, Subcommand)]
pub enum SpendingCommand {
    /// Totals for the window and the previous window of equal length.
    Summary(SpendingFilterArgs),
    /// Spend per hour or day, optionally one series per group.
    Timeseries(TimeseriesArgs),
    /// Totals per provider, model, user, agent, provider type or token type.
    Breakdown(BreakdownArgs),
    /// The report as CSV on stdout.
    Export(ExportArgs),
}

/// Filters shared by every spending command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SpendingFilterArgs {
    /// Window start (RFC 3339); default 7 days before --end.
    #[arg(long)]
    pub start: Option<String>,
    /// Window end (RFC 3339, exclusive); default now.
    #[arg(long)]
    pub end: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub agent: Option<String>,
    #[arg(long)]
    pub provider_type: Option<String>,
    /// Only this bucket: input, output, cached_input, cache_write_5m, cache_write_1h,
    /// cache_write_unknown, reasoning.
    #[arg(long)]
    pub token_type: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TimeseriesArgs {
    #[command(flatten)]
    pub filter: SpendingFilterArgs,
    /// hour | day.
    #[arg(long)]
    pub bucket: Option<String>,
    /// provider | model | user | agent | provider_type | token_type.
    #[arg(long)]
    pub group_by: Option<String>,
    /// With --group-by: at most this many series (default 10); the rest are summed as `(other)`.
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BreakdownArgs {
    /// provider | model | user | agent | provider_type | token_type.
    pub dimension: String,
    #[command(flatten)]
    pub filter: SpendingFilterArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: SpendingFilterArgs,
    /// hour | day | total.
    #[arg(long)]
    pub bucket: Option<String>,
    /// provider | model | user | agent | provider_type | token_type.
    #[arg(long)]
    pub group_by: Option<String>,
}

impl SpendingFilterArgs {
    /// The query-string pairs of these filters.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let pairs = [
            ("start", &self.start),
            ("end", &self.end),
            ("provider", &self.provider),
            ("model", &self.model),
            ("user", &self.user),
            ("agent", &self.agent),
            ("provider_type", &self.provider_type),
            ("token_type", &self.token_type),
        ];
        pairs.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))).collect()
    }
}

/// Microcents as exact USD: `$1.2345`.
pub fn usd(v: &Value) -> String {
    format!("${}", Microcents(v.as_i64().unwrap_or(0)).to_usd_string())
}

fn int(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_i64).unwrap_or(0).to_string()
}

/// SPEND, REQUESTS, FAILED, TOKENS of a stats object.
pub fn stats_cells(s: &Value) -> Vec<String> {
    vec![usd(&s["total_cost_microcents"]), int(s, "total_requests"), int(s, "failed_requests"), int(s, "total_tokens")]
}

const BUCKETS: [&str; 7] =
    ["input", "output", "cached_input", "cache_write_5m", "cache_write_1h", "cache_write_unknown", "reasoning"];

pub async fn run(client: &Client, fmt: OutputFormat, cmd: SpendingCommand) -> anyhow::Result<()> {
    match cmd {
        SpendingCommand::Summary(f) => {
            let v = client.get(&["spending", "summary"], &f.query()).await?;
            if fmt != OutputFormat::Table {
                return output::document(&v, fmt);
            }
            output::line(&format!("{} .. {}", output::cell(&v, "start"), output::cell(&v, "end")));
            let mut rows = vec![
                [vec!["total".to_owned()], stats_cells(&v["stats"])].concat(),
                [vec!["previous period".to_owned()], stats_cells(&v["previous"])].concat(),
            ];
            for b in BUCKETS {
                let x = &v["stats"]["buckets"][b];
                rows.push(vec![format!("  {b}"), usd(&x["cost_microcents"]), "".into(), "".into(), int(x, "tokens")]);
            }
            output::table(&["", "SPEND", "REQUESTS", "FAILED", "TOKENS"], &rows);
            Ok(())
        }
        SpendingCommand::Breakdown(a) => {
            let mut q = a.filter.query();
            q.push(("dimension", a.dimension.clone()));
            let v = client.get(&["spending", "breakdown"], &q).await?;
            if fmt != OutputFormat::Table {
                return output::document(&v, fmt);
            }
            let rows: Vec<Vec<String>> = v["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let mut label = output::cell(e, "label");
                    if e["deleted"].as_bool() == Some(true) {
                        label.push_str(" (deleted)");
                    }
                    [vec![output::cell(e, "key"), label], stats_cells(&e["stats"])].concat()
                })
                .collect();
            output::table(&["KEY", "LABEL", "SPEND", "REQUESTS", "FAILED", "TOKENS"], &rows);
            Ok(())
        }
        SpendingCommand::Timeseries(a) => {
            let mut q = a.filter.query();
            if let Some(b) = &a.bucket {
                q.push(("bucket", b.clone()));
            }
            if let Some(g) = &a.group_by {
                q.push(("group_by", g.clone()));
            }
            if let Some(n) = a.limit {
                q.push(("limit", n.to_string()));
            }
            let v = client.get(&["spending", "timeseries"], &q).await?;
            if fmt != OutputFormat::Table {
                return output::document(&v, fmt);
            }
            let mut rows = Vec::new();
            for s in v["series"].as_array().into_iter().flatten() {
                for p in s["points"].as_array().into_iter().flatten() {
                    rows.push(
                        [vec![output::cell(p, "start"), output::cell(s, "key")], stats_cells(&p["stats"])].concat(),
                    );
                }
            }
            output::table(&["START", "SERIES", "SPEND", "REQUESTS", "FAILED", "TOKENS"], &rows);
            Ok(())
        }
        SpendingCommand::Export(a) => {
            let mut q = a.filter.query();
            if let Some(b) = &a.bucket {
                q.push(("bucket", b.clone()));
            }
            if let Some(g) = &a.group_by {
                q.push(("group_by", g.clone()));
            }
            let csv = client.get_text(&["spending", "export.csv"], &q).await?;
            output::line(csv.trim_end_matches('\n'));
            Ok(())
        }
    }
}
