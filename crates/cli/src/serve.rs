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
    /// Transcript database (sealed request/response bodies). Default:
    /// `<data-dir>/transcripts.sqlite` with SQLite, the config database with PostgreSQL.
    #[arg(long, env = "TOLLGATE_TRANSCRIPT_DATABASE_URL", hide_env_values = true)]
    pub transcript_database_url: Option<Sensitive>,
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
    /// Milliseconds between usage writer flushes (it also flushes every
    /// --usage-batch-size events, and drains everything on shutdown).
    #[arg(long, env = "TOLLGATE_USAGE_FLUSH_INTERVAL_MS", default_value_t = 250)]
    pub usage_flush_interval_ms: u64,
    /// Most usage events the writer commits in one transaction (1 to 10,000): a full batch is
    /// committed at once, without waiting for --usage-flush-interval-ms.
    #[arg(long, env = "TOLLGATE_USAGE_BATCH_SIZE", default_value_t = 1000)]
    pub usage_batch_size: usize,
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
    /// Most bytes kept of each recorded request or response body (the head; the transcript is
    /// flagged truncated). Recording itself is a per-provider setting (`transcripts`).
    #[arg(long, env = "TOLLGATE_TRANSCRIPT_MAX_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub transcript_max_bytes: usize,
    /// Days transcripts are kept; 0 keeps them (up to --transcript-max-total-bytes).
    #[arg(long, env = "TOLLGATE_TRANSCRIPT_RETENTION_DAYS", default_value_t = 30)]
    pub transcript_retention_days: u32,
    /// The oldest transcripts are deleted while all of them take more than this many bytes
    /// (each counted by its size before compression); 0 means no cap.
    #[arg(long, env = "TOLLGATE_TRANSCRIPT_MAX_TOTAL_BYTES", default_value_t = 10 * 1024 * 1024 * 1024)]
    pub transcript_max_total_bytes: u64,
    /// Record one usage event per proxied request. `false` turns metering off (nothing is
    /// queued or written), e.g. to measure what metering costs.
    #[arg(long, env = "TOLLGATE_USAGE_RECORDING", default_value_t = true, action = clap::ArgAction::Set)]
    pub usage_recording: bool,
    /// When budget or rate-limit state cannot be read from the database: `open` admits the call
    /// without a reservation (logged, counted in tollgate_limit_state_failures_total), `closed`
    /// refuses it with 503 in the provider's native error shape.
    #[arg(long, env = "TOLLGATE_BUDGET_FAILURE_MODE", default_value = "open", value_parser = ["open", "closed"])]
    pub budget_failure_mode: String,
    /// Test builds only (the `test-clock` feature, which only this crate's own tests enable:
    /// never in a release or installed binary): start the gateway's wall clock this many
    /// milliseconds ahead of the system clock, so a test of several `tollgate serve` processes
    /// can put them all at the start of a rate-limit minute without waiting for one. Hidden.
    #[cfg(feature = "test-clock")]
    #[arg(long, hide = true, default_value_t = 0)]
    pub test_clock_offset_ms: u64,
    /// Upstream addresses to allow although the address policy refuses them (link-local, cloud
    /// metadata, this gateway's own address): a CIDR, an IP, a hostname or `*.suffix`.
    /// Repeat the flag or separate with commas. Allow rules win over every deny.
    #[arg(long, env = "TOLLGATE_UPSTREAM_ALLOW", value_delimiter = ',')]
    pub upstream_allow: Vec<String>,
    /// Upstream addresses to refuse besides the defaults (same syntax as --upstream-allow),
    /// e.g. `10.0.0.0/8` to keep providers off the internal network.
    #[arg(long, env = "TOLLGATE_UPSTREAM_DENY", value_delimiter = ',')]
    pub upstream_deny: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (leaf first). Re-read when the file changes
    /// (the next connection gets the new certificate; open ones keep theirs). HTTP/2 is offered
    /// through ALPN.
    #[arg(long, env = "TOLLGATE_TLS_CERT", requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TOLLGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate for the listen address issued by a local CA kept in
    /// `<data-dir>/tls/`; the CA file to trust is printed at start.
    #[arg(long, env = "TOLLGATE_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
    /// With TLS: require client certificates issued by a CA in this PEM file (mutual TLS).
    #[arg(long, env = "TOLLGATE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// OpenID Connect issuer URL: its JWTs (RS256, ES256, EdDSA; keys from its discovery
    /// document's JWKS) are accepted wherever a gateway token is, and the console offers
    /// "Sign in with" it. Needs --oidc-audience.
    #[arg(long, env = "TOLLGATE_OIDC_ISSUER", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The `aud` a JWT must carry for the proxy and the admin API.
    #[arg(long, env = "TOLLGATE_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// The console's OAuth client id (authorization code + PKCE). Default: --oidc-audience.
    #[arg(long, env = "TOLLGATE_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// The console client's secret, for identity providers that require one.
    #[arg(long, env = "TOLLGATE_OIDC_CLIENT_SECRET", hide_env_values = true, requires = "oidc_issuer")]
    pub oidc_client_secret: Option<Sensitive>,
    /// The claim that names the user, for usage attribution.
    #[arg(long, env = "TOLLGATE_OIDC_USER_CLAIM", default_value = "email")]
    pub oidc_user_claim: String,
    /// The claim that names the agent (none by default).
    #[arg(long, env = "TOLLGATE_OIDC_AGENT_CLAIM")]
    pub oidc_agent_claim: Option<String>,
    /// The claim with the caller's groups or roles (a string or a list), read through
    /// --oidc-role-map.
    #[arg(long, env = "TOLLGATE_OIDC_ROLE_CLAIM")]
    pub oidc_role_claim: Option<String>,
    /// `VALUE=ROLE` pairs (repeat or comma-separate): a JWT whose role claim holds VALUE gets
    /// ROLE (invoker, reader, writer, admin); the highest match wins.
    #[arg(long, env = "TOLLGATE_OIDC_ROLE_MAP", value_delimiter = ',')]
    pub oidc_role_map: Vec<String>,
    /// The role of a JWT no mapping matches.
    #[arg(long, env = "TOLLGATE_OIDC_DEFAULT_ROLE", default_value = "invoker")]
    pub oidc_default_role: String,
    /// Threads of the async runtime that serves requests (1: the single-threaded scheduler).
    /// Default: one per CPU core.
    #[arg(long, env = "TOLLGATE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `tollgate_server=debug`. The
    /// access log (one line per proxied request) is target `tollgate::access`: silence it with
    /// `info,tollgate::access=off`.
    #[arg(long, env = "TOLLGATE_LOG", default_value = "info")]
    pub log: String,
    /// Log format: `text` (coloured only when stderr is a terminal and NO_COLOR is unset) or
    /// `json` (one object per line).
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Export a trace span per proxied request over OTLP/HTTP (protobuf) to this base URL
    /// (`/v1/traces` is appended), e.g. http://127.0.0.1:4318. Without it, tracing is on when
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set; the other
    /// standard variables (OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER,
    /// OTEL_TRACES_SAMPLER_ARG, OTEL_RESOURCE_ATTRIBUTES) apply either way.
    #[arg(long, env = "TOLLGATE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The OTLP transport: `http/protobuf` (POST <endpoint>/v1/traces, port 4318 by convention)
    /// or `grpc` (the endpoint as given, port 4317 by convention; https:// uses TLS with the
    /// system's roots). Without it, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then
    /// OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
    #[arg(long)]
    pub otlp_protocol: Option<String>,
    /// Ended spans waiting for export at most; more are dropped and counted in
    /// tollgate_otel_spans_dropped_total.
    #[arg(long, env = "TOLLGATE_OTLP_QUEUE_CAPACITY", default_value_t = 4096)]
    pub otlp_queue_capacity: usize,
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
        s.transcript_database_url = self.transcript_database_url.clone();
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
        if !(1..=10_000).contains(&self.usage_batch_size) {
            anyhow::bail!("--usage-batch-size must be between 1 and 10000");
        }
        s.usage_batch_size = self.usage_batch_size;
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
        s.transcript_max_bytes = self.transcript_max_bytes;
        s.transcript_retention_days = self.transcript_retention_days;
        s.transcript_max_total_bytes = self.transcript_max_total_bytes;
        s.budget_fail_open = self.budget_failure_mode == "open";
        #[cfg(feature = "test-clock")]
        s.clock.advance(Duration::from_millis(self.test_clock_offset_ms));
        tollgate_server::address_policy::AddressPolicy::new(&self.upstream_allow, &self.upstream_deny)
            .map_err(anyhow::Error::msg)?;
        s.upstream_allow = self.upstream_allow.clone();
        s.upstream_deny = self.upstream_deny.clone();
        s.tls = match (&self.tls_cert, &self.tls_key, self.tls_self_signed) {
            (Some(cert), Some(key), false) => {
                tollgate_server::tls::TlsSource::Files { cert: cert.clone(), key: key.clone() }
            }
            (None, None, true) => tollgate_server::tls::TlsSource::SelfSigned,
            (None, None, false) => tollgate_server::tls::TlsSource::Off,
            _ => anyhow::bail!("use --tls-cert with --tls-key, or --tls-self-signed"),
        };
        if self.tls_client_ca.is_some() && s.tls == tollgate_server::tls::TlsSource::Off {
            anyhow::bail!("--tls-client-ca needs TLS: add --tls-cert and --tls-key, or --tls-self-signed");
        }
        s.tls_client_ca = self.tls_client_ca.clone();
        s.oidc = self.oidc()?;
        if self.worker_threads == Some(0) {
            anyhow::bail!("--worker-threads must be at least 1");
        }
        s.tracing = self.tracing(|k| std::env::var(k).ok())?;
        Ok(s)
    }

    /// Tracing settings: on with `--otlp-endpoint` or a standard OTLP endpoint variable, unless
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
    fn tracing(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<tollgate_server::telemetry::TracingSettings>> {
        let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
        if let Some(u) = &self.otlp_endpoint
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            anyhow::bail!("--otlp-endpoint must be an http:// or https:// URL");
        }
        if self.otlp_queue_capacity == 0 {
            anyhow::bail!("--otlp-queue-capacity must be at least 1");
        }
        let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
        let wanted = self.otlp_endpoint.is_some()
            || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            || set("OTEL_EXPORTER_OTLP_ENDPOINT");
        use tollgate_server::telemetry::OtlpProtocol;
        let (source, value) = match &self.otlp_protocol {
            Some(p) => ("--otlp-protocol", Some(p.clone())),
            None => ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]
                .into_iter()
                .find_map(|k| env(k).filter(|v| !v.trim().is_empty()).map(|v| (k, Some(v))))
                .unwrap_or(("", None)),
        };
        let protocol = match value {
            Some(v) => OtlpProtocol::parse(&v).map_err(|e| anyhow::anyhow!("{source}: {e}"))?,
            None => OtlpProtocol::HttpProtobuf,
        };
        // OTLP/HTTP: the exporter reads the endpoint variables itself (appending /v1/traces to
        // the generic one); gRPC takes the endpoint as given, and whether it is https:// decides
        // TLS, so it is resolved here.
        let endpoint = match protocol {
            OtlpProtocol::HttpProtobuf => self.otlp_endpoint.clone(),
            OtlpProtocol::Grpc => self.otlp_endpoint.clone().or_else(|| {
                ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
                    .into_iter()
                    .find_map(|k| env(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()))
            }),
        };
        Ok((wanted && !disabled).then(|| tollgate_server::telemetry::TracingSettings {
            endpoint,
            protocol,
            queue_capacity: self.otlp_queue_capacity,
            ..Default::default()
        }))
    }
}

/// Whether log lines may carry ANSI colours: only on a terminal, and never with `NO_COLOR` set
/// to a non-empty value (no-color.org).
fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

impl ServeArgs {
    fn oidc(&self) -> anyhow::Result<Option<tollgate_server::settings::OidcSettings>> {
        let (Some(issuer), Some(audience)) = (&self.oidc_issuer, &self.oidc_audience) else {
            if self.oidc_role_claim.is_some() || !self.oidc_role_map.is_empty() || self.oidc_agent_claim.is_some() {
                anyhow::bail!("the --oidc-* claim flags need --oidc-issuer and --oidc-audience");
            }
            return Ok(None);
        };
        let issuer = issuer.trim().trim_end_matches('/').to_string();
        match reqwest::Url::parse(&issuer) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
            _ => anyhow::bail!("--oidc-issuer must be an https:// URL (the issuer's `iss`)"),
        }
        let role = |flag: &str, v: &str| -> anyhow::Result<tollgate_core::Role> {
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{flag}: `{v}` is not a role (invoker, reader, writer, admin)"))
        };
        let mut o = tollgate_server::settings::OidcSettings::new(issuer, audience.trim());
        o.client_id = self.oidc_client_id.clone();
        o.client_secret = self.oidc_client_secret.clone();
        if self.oidc_user_claim.trim().is_empty() {
            anyhow::bail!("--oidc-user-claim must name a claim");
        }
        o.user_claim = self.oidc_user_claim.trim().to_string();
        o.agent_claim = self.oidc_agent_claim.clone();
        o.role_claim = self.oidc_role_claim.clone();
        for pair in &self.oidc_role_map {
            let Some((value, r)) = pair.split_once('=') else {
                anyhow::bail!("--oidc-role-map: `{pair}` is not VALUE=ROLE");
            };
            o.role_map.push((value.trim().to_string(), role("--oidc-role-map", r)?));
        }
        if !o.role_map.is_empty() && o.role_claim.is_none() {
            anyhow::bail!("--oidc-role-map needs --oidc-role-claim");
        }
        o.default_role = role("--oidc-default-role", &self.oidc_default_role)?;
        Ok(Some(o))
    }
}

fn init_logging(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter).context("--log is not a valid filter")?;
    let ansi = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
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

/// The file in the data dir that `serve` holds a shared lock on while it runs, and that
/// `secrets rotate-key` locks exclusively: a rotation beside a live gateway left it sealing new
/// secrets under the retired key and unable to open the re-sealed ones until restarted. An
/// advisory lock (`flock`): the kernel drops it when the process ends, however it ends;
/// gateways on other machines (replicas on PostgreSQL) are not seen, as README's "Running
/// several replicas" says.
const RUNNING_LOCK: &str = "serve.lock";

/// Opens (creating) the data dir's [`RUNNING_LOCK`] file.
fn running_lock(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    tollgate_server::keys::create_private_dir(data_dir)?;
    let path = data_dir.join(RUNNING_LOCK);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Runs the gateway until SIGTERM/SIGINT.
#[allow(clippy::print_stdout)]
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log, args.log_format)?;
    let settings = args.settings()?;
    let data_dir = settings.data_dir.clone();
    // A data dir the gateway may not write (PostgreSQL and the master key from the
    // environment need none) only loses the rotation's check: warned, not fatal.
    let running = match running_lock(&data_dir) {
        Ok(file) => {
            if file.try_lock_shared().is_err() {
                anyhow::bail!(
                    "a master key rotation (`tollgate secrets rotate-key`) is running on {}; start the gateway when \
                     it is done",
                    data_dir.display()
                );
            }
            Some(file)
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "no {RUNNING_LOCK} in the data dir: `secrets rotate-key` cannot see that this gateway runs");
            None
        }
    };
    let gateway = Gateway::start(settings).await.context("starting the gateway")?;
    if let Some(token) = gateway.bootstrap_token() {
        let file = data_dir.join(tollgate_server::gateway::ADMIN_TOKEN_FILE);
        println!("Bootstrap admin token (shown once; also saved to {} with mode 0600):", file.display());
        println!();
        println!("    {token}");
        println!();
    }
    if let Some(ca) = gateway.tls_ca_file() {
        println!("Self-signed TLS: clients must trust the CA certificate {}", ca.display());
        println!("    (curl --cacert, AWS_CA_BUNDLE for boto3, SSL_CERT_FILE for the OpenAI/Anthropic SDKs)");
        println!();
    }
    println!(
        "Tollgate is listening on {}://{} (admin API: {}/api/v1, OpenAPI: {}/api/openapi.json)",
        if gateway.https() { "https" } else { "http" },
        gateway.local_addr(),
        gateway.state().public_url(),
        gateway.state().public_url()
    );
    gateway.serve(shutdown_signal()).await.context("serving")?;
    drop(running);
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

/// Re-seals every stored secret under a new master key, in one transaction. Refused while a
/// gateway runs on the same data dir ([`RUNNING_LOCK`]); gateways elsewhere (replicas) must be
/// restarted afterwards so they load the new key.
#[allow(clippy::print_stdout)]
pub async fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let settings = args.store.settings()?;
    let running = running_lock(&settings.data_dir)?;
    if running.try_lock().is_err() {
        anyhow::bail!(
            "a gateway is running on {}: stop it first (it would keep sealing new secrets under the old key and could \
             not open the re-sealed ones until restarted); replicas elsewhere are restarted after the rotation \
             (README, Running several replicas)",
            settings.data_dir.display()
        );
    }
    let keyring = tollgate_server::keys::load_keyring(&settings)?;
    let store = tollgate_store::Store::connect(&settings.effective_database_url(), keyring)
        .await
        .context("opening the store")?;
    let transcripts = match settings.effective_transcript_database_url() {
        Some(url) => tollgate_store::TranscriptStore::connect(&url).await.context("opening the transcript store")?,
        None => tollgate_store::TranscriptStore::sharing(&store)
            .context("the transcript store cannot share a SQLite database")?,
    };
    let r = tollgate_server::keys::rotate(&settings, &store, &transcripts, args.new_master_key.as_deref()).await?;
    transcripts.close().await;
    store.close().await;
    drop(running);
    println!(
        "re-sealed {} secret(s) and {} transcript(s): key {} -> {}",
        r.resealed, r.transcripts_resealed, r.old_key_id, r.new_key_id
    );
    if let Some(k) = r.new_key_base64 {
        println!("Set TOLLGATE_MASTER_KEY to the new key before restarting (shown once):");
        println!("    {k}");
    }
    Ok(())
}

/// Flags of `tollgate token recover-admin`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoverAdminArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The new token's name (shown in `token list`).
    #[arg(long, default_value = "recovered-admin")]
    pub name: String,
}

/// The break-glass path when every admin token is lost: mints an unscoped admin token without
/// an expiry straight into the gateway's database (reaching it is already the keys to
/// everything) and prints it once. It needs no master key (tokens are hashed, not sealed; a
/// throwaway key opens the store and seals nothing) and may run beside live gateways, which
/// pick the token up like any config write. A database that does not exist is refused rather
/// than created (a mistyped `--data-dir` would otherwise print a token for an empty gateway).
pub async fn recover_admin(args: RecoverAdminArgs) -> anyhow::Result<()> {
    let settings = args.store.settings()?;
    if args.name.trim().is_empty() {
        anyhow::bail!("--name: must not be empty or only spaces");
    }
    tollgate_core::validate::char_len(&args.name, 1, 128)
        .and_then(|()| tollgate_core::validate::no_control(&args.name))
        .map_err(|m| anyhow::anyhow!("--name: {m}"))?;
    let throwaway = tollgate_store::seal::MasterKey::generate().context("a throwaway key")?;
    let url = settings.effective_database_url();
    let store = match tollgate_store::Store::connect_existing(&url, tollgate_store::seal::Keyring::new(throwaway)).await
    {
        Ok(s) => s,
        Err(e @ tollgate_store::StoreError::NotAGatewayDatabase(_)) => anyhow::bail!(
            "{e}: pass the gateway's own --data-dir or --database-url (TOLLGATE_DATABASE_URL, when set, wins over \
             --data-dir); a gateway's first start prints its bootstrap admin token"
        ),
        // the store error's text already holds its cause: one line, not the chain three times
        Err(e) => anyhow::bail!("opening the gateway database: {e}"),
    };
    let template = tollgate_store::TokenRecord {
        id: "".into(),
        name: args.name.clone(),
        hash: [0; 32],
        prefix: String::new(),
        user: None,
        agent: None,
        role: tollgate_core::Role::Admin,
        providers: None,
        expires_at_ms: None,
        created_at_ms: chrono::Utc::now().timestamp_millis(),
        revoked_at_ms: None,
    };
    let (token, rec) = tollgate_server::admin::tokens::mint(template).map_err(|e| anyhow::anyhow!("{e}"))?;
    let inserted = store.insert_token(&rec).await.context("storing the token");
    store.close().await;
    inserted?;
    crate::output::line(&token);
    crate::output::note(&format!(
        "created admin token {} (id {}) in {}. Save it now: it will not be shown again. Running gateways \
         accept it once they reload (at once on PostgreSQL, within --config-poll-seconds on SQLite). Use it \
         with --token or TOLLGATE_ADMIN_TOKEN, then revoke the tokens that were lost (`tollgate token list`).",
        args.name,
        rec.id,
        tollgate_store::redacted_url(&url)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let argv = ["tollgate"].iter().chain(extra).copied();
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}")).serve
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(!colour(false, None), "a file or pipe gets no escape codes");
        assert!(!colour(true, Some("1".into())));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR does not count");
    }

    #[test]
    fn tracing_is_on_with_an_endpoint_and_off_otherwise() {
        let none = |_: &str| None;
        assert!(args(&[]).tracing(none).unwrap_or_else(|e| panic!("{e}")).is_none());
        let t = args(&["--otlp-endpoint", "http://127.0.0.1:4318"]).tracing(none).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.and_then(|t| t.endpoint).as_deref(), Some("http://127.0.0.1:4318"));
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4318".to_string());
        let t = args(&[]).tracing(env).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.is_some_and(|t| t.endpoint.is_none()), "the exporter reads the variable itself");
        let off = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("http://c:4318/v1/traces".to_string()),
            "OTEL_TRACES_EXPORTER" => Some("none".to_string()),
            _ => None,
        };
        assert!(args(&[]).tracing(off).unwrap_or_else(|e| panic!("{e}")).is_none());
        let bad = args(&["--otlp-endpoint", "127.0.0.1:4318"]).tracing(none);
        assert!(bad.is_err_and(|e| e.to_string().contains("--otlp-endpoint")));
    }

    #[test]
    fn the_otlp_protocol_comes_from_the_flag_then_the_variables() {
        use tollgate_server::telemetry::OtlpProtocol;
        let none = |_: &str| None;
        let on = ["--otlp-endpoint", "http://c:4317"];
        let t = args(&on).tracing(none).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.map(|t| t.protocol), Some(OtlpProtocol::HttpProtobuf), "the specification's default");
        let grpc = |k: &str| (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "grpc".to_string());
        let t = args(&on).tracing(grpc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.map(|t| t.protocol), Some(OtlpProtocol::Grpc));
        let both = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" => Some("http/protobuf".to_string()),
            _ => None,
        };
        let t = args(&on).tracing(both).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.map(|t| t.protocol), Some(OtlpProtocol::HttpProtobuf), "the traces variable wins");
        let flag = ["--otlp-endpoint", "http://c:4317", "--otlp-protocol", "grpc"];
        let t = args(&flag).tracing(both).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.map(|t| t.protocol), Some(OtlpProtocol::Grpc), "the flag wins");
        // gRPC: the endpoint variable is taken as given (no /v1/traces).
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("https://collector:4317".to_string()),
            _ => None,
        };
        let t = args(&[]).tracing(env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.and_then(|t| t.endpoint).as_deref(), Some("https://collector:4317"));
        let json = args(&["--otlp-endpoint", "http://c:4318", "--otlp-protocol", "http/json"]).tracing(none);
        assert!(json.is_err_and(|e| e.to_string().contains("--otlp-protocol") && e.to_string().contains("http/json")));
        let bad = |k: &str| (k == "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").then(|| "thrift".to_string());
        let err = args(&on).tracing(bad);
        assert!(err.is_err_and(|e| e.to_string().contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")));
    }
}
