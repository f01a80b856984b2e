//! `tollgate serve` (run the gateway) and the offline `tollgate secrets rotate-key`.
//! Every flag has a `TOLLGATE_*` environment twin.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tollgate_server::{Gateway, SecretBackendKind, Sensitive, Settings};

/// Where the data lives: shared by `serve` and `secrets rotate-key`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database, the generated master key and the bootstrap admin token.
    #[arg(long, env = "TOLLGATE_DATA_DIR", default_value = "./tollgate-data")]
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: SQLite in the data dir.
    #[arg(long, env = "TOLLGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Sensitive>,
    /// Master key (base64 of 32 bytes) sealing stored secrets. Prefer the environment variable
    /// or --master-key-file to keep it out of shell history. Default: `<data-dir>/master.key`,
    /// generated on first start.
    #[arg(long, env = "TOLLGATE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Sensitive>,
    /// Read the master key from this file instead.
    #[arg(long, env = "TOLLGATE_MASTER_KEY_FILE", conflicts_with = "master_key")]
    pub master_key_file: Option<PathBuf>,
}

/// Secret backends, as flags spell them.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SecretBackendArg {
    /// Sealed in the database; managed through the API, CLI and console.
    Database,
    /// Read-only: environment variables named `<prefix><NAME>`.
    Env,
    /// Read-only: one file per secret in --secret-dir (e.g. a Kubernetes secret mount).
    Dir,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `tollgate serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Base URL clients use to reach this gateway; proxy URLs are built from it.
    /// Default: http://<listen address>.
    #[arg(long, env = "TOLLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Where secret values come from.
    #[arg(long, env = "TOLLGATE_SECRET_BACKEND", value_enum, default_value = "database")]
    pub secret_backend: SecretBackendArg,
    /// Directory of secret files, for --secret-backend dir.
    #[arg(long, env = "TOLLGATE_SECRET_DIR")]
    pub secret_dir: Option<PathBuf>,
    /// Prefix of secret environment variables, for --secret-backend env.
    #[arg(long, env = "TOLLGATE_SECRET_ENV_PREFIX", default_value = "TOLLGATE_SECRET_")]
    pub secret_env_prefix: String,
    /// Seconds between checks for config changes made by other replicas.
    #[arg(long, env = "TOLLGATE_CONFIG_POLL_SECONDS", default_value_t = 1.0)]
    pub config_poll_seconds: f64,
    /// Usage events database. Default: `<data-dir>/usage.sqlite` with SQLite, the config
    /// database with PostgreSQL.
    #[arg(long, env = "TOLLGATE_USAGE_DATABASE_URL", hide_env_values = true)]
    pub usage_database_url: Option<Sensitive>,
    /// Largest proxied request body, in bytes (larger requests get 413).
    #[arg(long, env = "TOLLGATE_MAX_REQUEST_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_request_body_bytes: usize,
    /// Seconds allowed to connect to an upstream (TCP + TLS); failures answer 502.
    #[arg(long, env = "TOLLGATE_UPSTREAM_CONNECT_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub upstream_connect_timeout_seconds: f64,
    /// Longest wait, in seconds, for any single read from an upstream (the response head or
    /// the next chunk of a stream); a timeout answers 504. Not a limit on a whole stream.
    #[arg(long, env = "TOLLGATE_UPSTREAM_READ_TIMEOUT_SECONDS", default_value_t = 600.0)]
    pub upstream_read_timeout_seconds: f64,
    /// Capacity of the in-memory usage event queue (events beyond it are dropped and counted).
    #[arg(long, env = "TOLLGATE_USAGE_QUEUE_CAPACITY", default_value_t = 65_536)]
    pub usage_queue_capacity: usize,
    /// Milliseconds between usage writer flushes (it also flushes every 1000 events, and
    /// drains everything on shutdown).
    #[arg(long, env = "TOLLGATE_USAGE_FLUSH_INTERVAL_MS", default_value_t = 250)]
    pub usage_flush_interval_ms: u64,
    /// Largest size, in bytes, of `<data-dir>/usage-spill.jsonl`, where usage events wait while
    /// the usage database refuses writes (replayed when it recovers, or on the next start).
    /// 0: no spill file (events wait in memory up to --usage-queue-capacity, then are dropped).
    #[arg(long, env = "TOLLGATE_USAGE_SPILL_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub usage_spill_max_bytes: u64,
    /// Seconds a client has to send a whole request head once it starts one; slower
    /// connections are closed (slowloris).
    #[arg(long, env = "TOLLGATE_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub header_read_timeout_seconds: f64,
    /// Seconds a keep-alive connection may stay open with no request in flight and nothing
    /// received; then it is closed.
    #[arg(long, env = "TOLLGATE_IDLE_TIMEOUT_SECONDS", default_value_t = 60.0)]
    pub idle_timeout_seconds: f64,
    /// Client connections served at once. More wait up to the header-read timeout for a slot
    /// (at most as many again), the rest are closed unserved. Lowered at start if the
    /// file-descriptor limit cannot hold them.
    #[arg(long, env = "TOLLGATE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// HTTP/2: concurrent streams (requests) per connection.
    #[arg(long, env = "TOLLGATE_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: largest header list, in bytes, a client may send.
    #[arg(long, env = "TOLLGATE_HTTP2_MAX_HEADER_LIST_BYTES", default_value_t = 65_536)]
    pub http2_max_header_list_bytes: u32,
    /// On SIGTERM/SIGINT, seconds in-flight requests (streams included) may run on; then they
    /// are cut and their usage events written with what was seen, before the process exits.
    #[arg(long, env = "TOLLGATE_SHUTDOWN_GRACE_SECONDS", default_value_t = 30.0)]
    pub shutdown_grace_seconds: f64,
    /// STS endpoint used by Bedrock providers that assume an IAM role. Default: the regional
    /// AWS STS endpoint.
    #[arg(long, env = "TOLLGATE_AWS_STS_ENDPOINT")]
    pub aws_sts_endpoint: Option<String>,
    /// Bedrock control-plane endpoint (guardrail validation, connection checks). Default:
    /// https://bedrock.<region>.amazonaws.com.
    #[arg(long, env = "TOLLGATE_BEDROCK_CONTROL_ENDPOINT")]
    pub bedrock_control_endpoint: Option<String>,
    /// A JSON file of model catalog corrections and additions, merged into the built-in
    /// catalog and re-read whenever it changes (no restart). See catalog/README.md.
    #[arg(long, env = "TOLLGATE_CATALOG_OVERLAY")]
    pub catalog_overlay: Option<PathBuf>,
    /// Days raw usage events are kept (hourly rollups, which reports read, are kept forever);
    /// 0 keeps raw events forever.
    #[arg(long, env = "TOLLGATE_USAGE_RETENTION_DAYS", default_value_t = 90)]
    pub usage_retention_days: u32,
    /// Record one usage event per proxied request. `false` turns metering off (nothing is
    /// queued or written), e.g. to measure what metering costs.
    #[arg(long, env = "TOLLGATE_USAGE_RECORDING", default_value_t = true, action = clap::ArgAction::Set)]
    pub usage_recording: bool,
    /// When budget or rate-limit state cannot be read from the database: `open` admits the call
    /// without a reservation (logged, counted in tollgate_limit_state_failures_total), `closed`
    /// refuses it with 503 in the provider's native error shape.
    #[arg(long, env = "TOLLGATE_BUDGET_FAILURE_MODE", default_value = "open", value_parser = ["open", "closed"])]
    pub budget_failure_mode: String,
    /// Upstream addresses to allow although the address policy refuses them (link-local, cloud
    /// metadata, this gateway's own address): a CIDR, an IP, a hostname or `*.suffix`.
    /// Repeat the flag or separate with commas. Allow rules win over every deny.
    #[arg(long, env = "TOLLGATE_UPSTREAM_ALLOW", value_delimiter = ',')]
    pub upstream_allow: Vec<String>,
    /// Upstream addresses to refuse besides the defaults (same syntax as --upstream-allow),
    /// e.g. `10.0.0.0/8` to keep providers off the internal network.
    #[arg(long, env = "TOLLGATE_UPSTREAM_DENY", value_delimiter = ',')]
    pub upstream_deny: Vec<String>,
    /// Threads of the async runtime that serves requests (1: the single-threaded scheduler).
    /// Default: one per CPU core.
    #[arg(long, env = "TOLLGATE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `tollgate_server=debug`.
    #[arg(long, env = "TOLLGATE_LOG", default_value = "info")]
    pub log: String,
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl StoreArgs {
    fn master_key(&self) -> anyhow::Result<Option<Sensitive>> {
        if let Some(k) = &self.master_key {
            return Ok(Some(k.clone()));
        }
        match &self.master_key_file {
            Some(p) => Ok(Some(Sensitive(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading master key file {}", p.display()))?
                    .trim()
                    .to_string(),
            ))),
            None => Ok(None),
        }
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = Settings::new(&self.data_dir);
        s.database_url = self.database_url.clone();
        s.master_key = self.master_key()?;
        Ok(s)
    }
}

/// A positive number of seconds, at most a day.
fn seconds(flag: &str, v: f64) -> anyhow::Result<Duration> {
    if !(v > 0.0 && v <= 86_400.0) {
        anyhow::bail!("{flag} must be greater than 0 and at most 86400");
    }
    Ok(Duration::from_secs_f64(v))
}

impl ServeArgs {
    /// The server settings these flags describe.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = self.store.settings()?;
        s.listen = self.listen;
        s.public_url = self.public_url.clone();
        s.secret_backend = match self.secret_backend {
            SecretBackendArg::Database => SecretBackendKind::Database,
            SecretBackendArg::Env => SecretBackendKind::Env,
            SecretBackendArg::Dir => SecretBackendKind::Dir,
        };
        s.secret_dir = self.secret_dir.clone();
        s.secret_env_prefix = self.secret_env_prefix.clone();
        if !(self.config_poll_seconds > 0.0 && self.config_poll_seconds <= 3600.0) {
            anyhow::bail!("--config-poll-seconds must be between 0 and 3600");
        }
        s.config_poll_interval = Duration::from_secs_f64(self.config_poll_seconds);
        s.usage_database_url = self.usage_database_url.clone();
        if self.max_request_body_bytes == 0 {
            anyhow::bail!("--max-request-body-bytes must be at least 1");
        }
        s.max_request_body_bytes = self.max_request_body_bytes;
        s.upstream_connect_timeout =
            seconds("--upstream-connect-timeout-seconds", self.upstream_connect_timeout_seconds)?;
        s.upstream_read_timeout = seconds("--upstream-read-timeout-seconds", self.upstream_read_timeout_seconds)?;
        if self.usage_queue_capacity == 0 {
            anyhow::bail!("--usage-queue-capacity must be at least 1");
        }
        s.usage_queue_capacity = self.usage_queue_capacity;
        if self.usage_flush_interval_ms == 0 {
            anyhow::bail!("--usage-flush-interval-ms must be at least 1");
        }
        s.usage_flush_interval = Duration::from_millis(self.usage_flush_interval_ms);
        s.usage_spill_max_bytes = self.usage_spill_max_bytes;
        s.header_read_timeout = seconds("--header-read-timeout-seconds", self.header_read_timeout_seconds)?;
        s.idle_timeout = seconds("--idle-timeout-seconds", self.idle_timeout_seconds)?;
        if self.max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        s.max_connections = self.max_connections;
        if self.http2_max_concurrent_streams == 0 {
            anyhow::bail!("--http2-max-concurrent-streams must be at least 1");
        }
        s.http2_max_concurrent_streams = self.http2_max_concurrent_streams;
        if self.http2_max_header_list_bytes < 1024 {
            anyhow::bail!("--http2-max-header-list-bytes must be at least 1024");
        }
        s.http2_max_header_list_bytes = self.http2_max_header_list_bytes;
        s.shutdown_grace = seconds("--shutdown-grace-seconds", self.shutdown_grace_seconds)?;
        for (flag, v) in [
            ("--aws-sts-endpoint", &self.aws_sts_endpoint),
            ("--bedrock-control-endpoint", &self.bedrock_control_endpoint),
        ] {
            if let Some(u) = v
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                anyhow::bail!("{flag} must be an http:// or https:// URL");
            }
        }
        s.aws_sts_endpoint = self.aws_sts_endpoint.clone();
        s.bedrock_control_endpoint = self.bedrock_control_endpoint.clone();
        s.catalog_overlay = self.catalog_overlay.clone();
        s.usage_retention_days = self.usage_retention_days;
        s.usage_recording = self.usage_recording;
        s.budget_fail_open = self.budget_failure_mode == "open";
        tollgate_server::address_policy::AddressPolicy::new(&self.upstream_allow, &self.upstream_deny)
            .map_err(anyhow::Error::msg)?;
        s.upstream_allow = self.upstream_allow.clone();
        s.upstream_deny = self.upstream_deny.clone();
        if self.worker_threads == Some(0) {
            anyhow::bail!("--worker-threads must be at least 1");
        }
        Ok(s)
    }
}

fn init_logging(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).context("--log is not a valid filter")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // try_init: a second initialisation (tests, embedding) is not an error.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = term => tracing::info!("received SIGTERM"),
    }
}

/// Runs the gateway until SIGTERM/SIGINT.
#[allow(clippy::print_stdout)]
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log, args.log_format)?;
    let settings = args.settings()?;
    let data_dir = settings.data_dir.clone();
    let gateway = Gateway::start(settings).await.context("starting the gateway")?;
    if let Some(token) = gateway.bootstrap_token() {
        let file = data_dir.join(tollgate_server::gateway::ADMIN_TOKEN_FILE);
        println!("Bootstrap admin token (shown once; also saved to {} with mode 0600):", file.display());
        println!();
        println!("    {token}");
        println!();
    }
    println!(
        "Tollgate is listening on http://{} (admin API: {}/api/v1, OpenAPI: {}/api/openapi.json)",
        gateway.local_addr(),
        gateway.state().public_url(),
        gateway.state().public_url()
    );
    gateway.serve(shutdown_signal()).await.context("serving")?;
    Ok(())
}

/// Flags of `tollgate secrets rotate-key`.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// With TOLLGATE_MASTER_KEY: the new key (base64 of 32 bytes) to re-seal under; generated
    /// and printed once when absent. Ignored with a key file, which is rotated in place.
    #[arg(long, env = "TOLLGATE_NEW_MASTER_KEY", hide_env_values = true)]
    pub new_master_key: Option<String>,
}

/// Re-seals every stored secret under a new master key, in one transaction. Run it with the
/// gateways stopped (or restart them afterwards) so they load the new key.
#[allow(clippy::print_stdout)]
pub async fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let settings = args.store.settings()?;
    let keyring = tollgate_server::keys::load_keyring(&settings)?;
    let store = tollgate_store::Store::connect(&settings.effective_database_url(), keyring)
        .await
        .context("opening the store")?;
    let r = tollgate_server::keys::rotate(&settings, &store, args.new_master_key.as_deref()).await?;
    store.close().await;
    println!("re-sealed {} secret(s): key {} -> {}", r.resealed, r.old_key_id, r.new_key_id);
    if let Some(k) = r.new_key_base64 {
        println!("Set TOLLGATE_MASTER_KEY to the new key before restarting (shown once):");
        println!("    {k}");
    }
    Ok(())
}
