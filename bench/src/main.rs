//! `tollgate-bench`: the harness's command line, used by `bench/run.sh`.
//!
//! - `mock`: run the mock upstream until killed.
//! - `load`: run one load and append its row (JSON line) to a rows file.
//! - `usage-count`: append the number of usage events in a gateway's usage store.
//! - `report`: turn a rows file into the results JSON and markdown table.
//!
//! Each runs on a single-threaded Tokio runtime: the mock and the client share one core.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tollgate_bench::load::{self, Api, LoadConfig};
use tollgate_bench::mock::{self, MockConfig};
use tollgate_bench::report::{self, Row, Summary};

#[derive(Debug, Parser)]
#[command(name = "tollgate-bench", about = "Tollgate's benchmark harness (see bench/run.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the mock upstream (OpenAI chat completions and Anthropic messages).
    Mock(MockArgs),
    /// Run one load against a URL and append the result to a rows file.
    Load(LoadArgs),
    /// Count the usage events in a usage store and append them to a rows file.
    UsageCount(UsageCountArgs),
    /// Write the results JSON and markdown from a rows file.
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
struct MockArgs {
    #[arg(long, default_value = "127.0.0.1:9101")]
    listen: SocketAddr,
    /// Milliseconds before a non-streamed answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Content chunks per streamed answer.
    #[arg(long, default_value_t = 20)]
    chunks: usize,
    /// Milliseconds before the first streamed chunk.
    #[arg(long, default_value_t = 0)]
    first_chunk_ms: u64,
    /// Milliseconds between streamed chunks.
    #[arg(long, default_value_t = 0)]
    chunk_interval_ms: u64,
    /// Upstream key to require as `Authorization: Bearer`.
    #[arg(long)]
    key: Option<String>,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// The chat URL (`…/chat/completions`, or `…/v1/messages` with `--api anthropic`).
    #[arg(long)]
    url: String,
    /// The requests' shape: OpenAI chat completions or Anthropic messages.
    #[arg(long, value_enum, default_value_t = Api::Openai)]
    api: Api,
    /// The model the requests name (default: the mock's, `gpt-4o-mini` or `claude-sonnet-4-5`).
    #[arg(long)]
    model: Option<String>,
    /// Gateway token (or any key) to send: as a bearer (OpenAI) or `x-api-key` (Anthropic).
    #[arg(long)]
    token: Option<String>,
    #[arg(long)]
    stream: bool,
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of warm-up before the measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Open loop at this many requests per second (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Process whose CPU time and RSS to record (the proxy).
    #[arg(long)]
    watch_pid: Option<u32>,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Seconds to wait after the run (connections closed) before sampling the watched
    /// process's RSS once more: whether a burst's memory is given back.
    #[arg(long)]
    settle: Option<f64>,
    #[arg(long)]
    scenario: String,
    #[arg(long)]
    target: String,
    /// Rows file to append to (JSON lines); the row is printed too.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct UsageCountArgs {
    /// The gateway's usage database URL, e.g. `sqlite:///tmp/x/usage.sqlite`.
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    scenario: String,
    #[arg(long)]
    target: String,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    #[arg(long)]
    rows: PathBuf,
    /// Where to write the summary JSON.
    #[arg(long)]
    json: PathBuf,
    /// Where to write the markdown table.
    #[arg(long)]
    markdown: PathBuf,
    #[arg(long, default_value = "")]
    machine: String,
    #[arg(long, default_value = "")]
    commit: String,
    #[arg(long, default_value = "")]
    date: String,
    /// A peer left out of the run and why, `name: reason` (repeatable).
    #[arg(long = "skipped")]
    skipped: Vec<String>,
}

fn append(out: Option<&PathBuf>, row: &Row) -> anyhow::Result<()> {
    let line = serde_json::to_string(row)?;
    if let Some(path) = out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{line}")?;
    }
    #[allow(clippy::print_stdout)]
    {
        println!("{line}");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Mock(a) => {
            let cfg = MockConfig {
                latency: Duration::from_millis(a.latency_ms),
                chunks: a.chunks,
                first_chunk: Duration::from_millis(a.first_chunk_ms),
                chunk_interval: Duration::from_millis(a.chunk_interval_ms),
                key: a.key,
            };
            let listener = tokio::net::TcpListener::bind(a.listen).await.context("binding the mock")?;
            mock::serve(listener, cfg).await;
            Ok(())
        }
        Command::Load(a) => {
            let mut cfg = LoadConfig::new(a.url.parse().context("--url")?);
            cfg.api = a.api;
            cfg.model = a.model;
            cfg.token = a.token;
            cfg.stream = a.stream;
            cfg.connections = a.connections;
            cfg.duration = Duration::try_from_secs_f64(a.duration).context("--duration")?;
            cfg.warmup = Duration::try_from_secs_f64(a.warmup).context("--warmup")?;
            cfg.rate = a.rate;
            cfg.watch_pid = a.watch_pid;
            cfg.settle = a.settle.map(Duration::try_from_secs_f64).transpose().context("--settle")?;
            for h in &a.headers {
                let (k, v) =
                    h.split_once(':').ok_or_else(|| anyhow::anyhow!("--header {h:?}: expected `Name: value`"))?;
                cfg.headers
                    .push((k.trim().parse().context("--header name")?, v.trim().parse().context("--header value")?));
            }
            let report = load::run(cfg).await?;
            append(
                a.out.as_ref(),
                &Row { scenario: a.scenario, target: a.target, load: Some(report), usage_events: None },
            )
        }
        Command::UsageCount(a) => {
            let store = tollgate_store::UsageStore::connect(&a.database_url).await?;
            let n = store.count_events().await?;
            store.close().await;
            append(a.out.as_ref(), &Row { scenario: a.scenario, target: a.target, load: None, usage_events: Some(n) })
        }
        Command::Report(a) => {
            let text = std::fs::read_to_string(&a.rows).with_context(|| format!("reading {}", a.rows.display()))?;
            let mut lines = Vec::new();
            for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                lines.push(
                    serde_json::from_str::<Row>(l).with_context(|| format!("{} line {}", a.rows.display(), i + 1))?,
                );
            }
            let rows = report::merge(lines);
            let targets = report::judge(&rows);
            let summary =
                Summary { machine: a.machine, commit: a.commit, date: a.date, rows, targets, skipped: a.skipped };
            std::fs::write(&a.json, serde_json::to_string_pretty(&summary)?)?;
            std::fs::write(&a.markdown, report::markdown(&summary))?;
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("Error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
