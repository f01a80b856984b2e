//! `tollgate spending summary|timeseries|breakdown|export` over `/api/v1/spending/*`: tables of
//! cost, requests and tokens (USD shown exactly from microcents), or the API's JSON with `-o json`.

use crate::client::Client;
use crate::opts::OutputFormat;
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

/// SPEND, REQUESTS, FAILED, TOKENS of a stats object; without `requests`, SPEND and TOKENS.
pub fn stats_cells(s: &Value, requests: bool) -> Vec<String> {
    if requests {
        vec![
            usd(&s["total_cost_microcents"]),
            int(s, "total_requests"),
            int(s, "failed_requests"),
            int(s, "total_tokens"),
        ]
    } else {
        vec![usd(&s["total_cost_microcents"]), int(s, "total_tokens")]
    }
}

/// Whether rows carry request counts: the API sends null ones on rows of one token type
/// (requests are not split by token type), and then the table leaves the columns out.
pub fn has_request_counts<'a>(stats: impl IntoIterator<Item = &'a Value>) -> bool {
    let mut seen = false;
    for s in stats {
        seen = true;
        if !s["total_requests"].is_null() {
            return true;
        }
    }
    !seen
}

/// The stats headers, with or without REQUESTS and FAILED.
fn stats_headers(requests: bool) -> &'static [&'static str] {
    if requests { &["SPEND", "REQUESTS", "FAILED", "TOKENS"] } else { &["SPEND", "TOKENS"] }
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
                [vec!["total".to_owned()], stats_cells(&v["stats"], true)].concat(),
                [vec!["previous period".to_owned()], stats_cells(&v["previous"], true)].concat(),
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
            let entries = v["entries"].as_array().map(Vec::as_slice).unwrap_or_default();
            let requests = has_request_counts(entries.iter().map(|e| &e["stats"]));
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    let mut label = output::cell(e, "label");
                    if e["deleted"].as_bool() == Some(true) {
                        label.push_str(" (deleted)");
                    }
                    [vec![output::cell(e, "key"), label], stats_cells(&e["stats"], requests)].concat()
                })
                .collect();
            output::table(&[&["KEY", "LABEL"][..], stats_headers(requests)].concat(), &rows);
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
            let series = v["series"].as_array().map(Vec::as_slice).unwrap_or_default();
            let points =
                || series.iter().flat_map(|s| s["points"].as_array().into_iter().flatten().map(move |p| (s, p)));
            let requests = has_request_counts(points().map(|(_, p)| &p["stats"]));
            let rows: Vec<Vec<String>> = points()
                .map(|(s, p)| {
                    [vec![output::cell(p, "start"), output::cell(s, "key")], stats_cells(&p["stats"], requests)]
                        .concat()
                })
                .collect();
            output::table(&[&["START", "SERIES"][..], stats_headers(requests)].concat(), &rows);
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
