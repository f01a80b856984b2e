//! Bootstrap settings of one gateway process. Operator-managed data (providers, secrets,
//! tokens) lives in the database; only what is needed to reach it is configured here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A setting that must never be printed (the master key, a database URL with a password):
/// its `Debug` is redacted. Parsed from a string, so clap flags can hold it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(pub String);

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sensitive(<redacted>)")
    }
}

impl std::str::FromStr for Sensitive {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Sensitive(s.to_string()))
    }
}

impl Sensitive {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A database URL for logs: the password, if any, replaced by `***`.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => u.to_string(),
        Err(_) => "<unparseable url>".to_string(),
    }
}

/// Where secret values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretBackendKind {
    /// Sealed with AES-256-GCM in the database; writable through the API.
    #[default]
    Database,
    /// Read-only: environment variables `<prefix><NAME>`.
    Env,
    /// Read-only: one file per secret in a directory (e.g. a Kubernetes secret mount).
    Dir,
}

impl SecretBackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretBackendKind::Database => "database",
            SecretBackendKind::Env => "env",
            SecretBackendKind::Dir => "dir",
        }
    }
}

/// Where the server certificate comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsSource {
    /// Plain HTTP.
    #[default]
    Off,
    /// PEM files (`--tls-cert`: the chain, leaf first; `--tls-key`: its private key), re-read
    /// when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// A CA and leaf generated in `<data dir>/tls/` (see [`crate::tls`]).
    SelfSigned,
}

/// Signing people and programs in with an OpenID Connect identity provider: its JWTs are
/// accepted wherever a gateway token is (see [`crate::oidc`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer URL (`iss`); discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The `aud` a JWT must carry to be accepted by the proxy and the admin API.
    pub audience: String,
    /// The console's client id for "Sign in with …" (authorization code + PKCE); ID tokens must
    /// name it in `aud`. Default: the audience.
    pub client_id: Option<String>,
    /// The console client's secret, for providers that require one (none: a public client).
    pub client_secret: Option<Sensitive>,
    /// The claim that names the user (usage attribution); default `email`.
    pub user_claim: String,
    /// The claim that names the agent, if any.
    pub agent_claim: Option<String>,
    /// The claim holding the caller's groups or roles (a string or a list of strings).
    pub role_claim: Option<String>,
    /// Values of `role_claim` and the role each grants (the highest match wins).
    pub role_map: Vec<(String, tollgate_core::Role)>,
    /// The role of a JWT no mapping matches.
    pub default_role: tollgate_core::Role,
}

impl OidcSettings {
    /// An issuer and audience with the defaults: user from `email`, no agent claim, every
    /// caller an `invoker`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> OidcSettings {
        OidcSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            client_id: None,
            client_secret: None,
            user_claim: "email".into(),
            agent_claim: None,
            role_claim: None,
            role_map: Vec::new(),
            default_role: tollgate_core::Role::Invoker,
        }
    }

    /// The console's OAuth client id.
    pub fn console_client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or(&self.audience)
    }
}

/// Everything `Gateway::start` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Holds the SQLite database, the generated master key and the bootstrap admin token.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: `<data_dir>/tollgate.sqlite`.
    pub database_url: Option<Sensitive>,
    /// Base64 of 32 bytes; default: `<data_dir>/master.key`, generated on first start.
    pub master_key: Option<Sensitive>,
    /// Base of the proxy URLs shown to users; default: `http://<listen address>` (`https://`
    /// with TLS).
    pub public_url: Option<String>,
    pub secret_backend: SecretBackendKind,
    /// Directory for the `dir` secret backend.
    pub secret_dir: Option<PathBuf>,
    /// Prefix of environment variables for the `env` secret backend.
    pub secret_env_prefix: String,
    /// How often to poll the database for config changes made by other replicas.
    pub config_poll_interval: Duration,
    /// Largest admin API request body.
    pub max_admin_body_bytes: usize,
    /// Usage events database; default: `<data_dir>/usage.sqlite` with a SQLite config
    /// database, the config database itself with PostgreSQL.
    pub usage_database_url: Option<Sensitive>,
    /// Largest proxied request body; larger requests get 413 in the provider's error shape.
    pub max_request_body_bytes: usize,
    /// Time allowed to open a connection (TCP + TLS) to an upstream.
    pub upstream_connect_timeout: Duration,
    /// Longest wait for any single read from an upstream (response head or next body chunk).
    /// Not a total timeout: streams may run for minutes.
    pub upstream_read_timeout: Duration,
    /// Capacity of the in-memory usage event queue; when full, events are dropped and counted.
    pub usage_queue_capacity: usize,
    /// The usage writer commits at most this many events per transaction…
    pub usage_batch_size: usize,
    /// …and flushes at least this often.
    pub usage_flush_interval: Duration,
    /// STS endpoint for Bedrock providers that assume a role; default: the regional AWS one.
    pub aws_sts_endpoint: Option<String>,
    /// Bedrock control-plane endpoint (guardrail validation, connection checks); default:
    /// `https://bedrock.<region>.amazonaws.com`.
    pub bedrock_control_endpoint: Option<String>,
    /// Operator overlay merged into the embedded model catalog, re-read when it changes.
    pub catalog_overlay: Option<PathBuf>,
    /// Raw usage events older than this many days are deleted (hourly rollups are kept);
    /// 0 keeps them forever.
    pub usage_retention_days: u32,
    /// Record a usage event per proxied request (off: nothing is queued or written; for
    /// measuring the cost of metering, or a deployment that meters elsewhere).
    pub usage_recording: bool,
    /// Upstream address rules that win over every deny (CIDR, IP, hostname or `*.suffix`);
    /// see [`crate::address_policy`].
    pub upstream_allow: Vec<String>,
    /// Upstream address rules refused in addition to the defaults (link-local, cloud
    /// metadata, the gateway's own address).
    pub upstream_deny: Vec<String>,
    /// Largest size of `<data_dir>/usage-spill.jsonl`, where usage events wait while the usage
    /// store refuses writes; 0 turns the spill off (events wait in memory, then are dropped).
    pub usage_spill_max_bytes: u64,
    /// A client must send a whole request head within this time of starting one (HTTP/1), or
    /// the connection is closed (slowloris).
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Client connections served at once; more wait (up to `header_read_timeout`) for a slot,
    /// and beyond as many again are closed at once.
    pub max_connections: usize,
    /// HTTP/2: concurrent streams per connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: largest header list a client may send, in bytes (HTTP/1 heads are limited by
    /// hyper's read buffer, ~400 KiB).
    pub http2_max_header_list_bytes: u32,
    /// On SIGTERM, how long in-flight requests (streams included) may run on; then they are cut
    /// and their usage events are written with what was seen.
    pub shutdown_grace: Duration,
    /// Transcript database; default: `<data_dir>/transcripts.sqlite` with a SQLite config
    /// database, the config database itself with PostgreSQL.
    pub transcript_database_url: Option<Sensitive>,
    /// Each recorded direction keeps at most this many bytes (the head; flagged truncated).
    pub transcript_max_bytes: usize,
    /// Transcripts older than this many days are deleted; 0 keeps them (up to the size cap).
    pub transcript_retention_days: u32,
    /// The oldest transcripts are deleted while all of them take more than this many (sealed)
    /// bytes; 0 means no cap.
    pub transcript_max_total_bytes: u64,
    /// HTTPS: certificate files (re-read when they change) or a self-signed CA + leaf in the
    /// data dir; off serves plain HTTP. See [`crate::tls`].
    pub tls: TlsSource,
    /// With TLS: clients must present a certificate issued by a CA in this PEM file.
    pub tls_client_ca: Option<PathBuf>,
    /// OpenID Connect sign-in (off when `None`).
    pub oidc: Option<OidcSettings>,
    /// When budget / rate-limit state cannot be read from the database: admit the call
    /// unreserved (`true`, `--budget-failure-mode open`, the default) or refuse it with 503.
    pub budget_fail_open: bool,
    /// The wall clock every time-of-day decision reads (the system clock unless a test moves it).
    pub clock: crate::time::Clock,
    /// OpenTelemetry traces over OTLP/HTTP; `None`: off.
    pub tracing: Option<crate::telemetry::TracingSettings>,
}

impl Settings {
    /// Defaults for a single local node with its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            database_url: None,
            master_key: None,
            public_url: None,
            secret_backend: SecretBackendKind::Database,
            secret_dir: None,
            secret_env_prefix: "TOLLGATE_SECRET_".into(),
            config_poll_interval: Duration::from_secs(1),
            max_admin_body_bytes: 1024 * 1024,
            usage_database_url: None,
            max_request_body_bytes: 32 * 1024 * 1024,
            upstream_connect_timeout: Duration::from_secs(10),
            upstream_read_timeout: Duration::from_secs(600),
            usage_queue_capacity: 65_536,
            usage_batch_size: 1000,
            usage_flush_interval: Duration::from_millis(250),
            aws_sts_endpoint: None,
            bedrock_control_endpoint: None,
            catalog_overlay: None,
            usage_retention_days: 90,
            usage_recording: true,
            upstream_allow: Vec::new(),
            upstream_deny: Vec::new(),
            usage_spill_max_bytes: 256 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            http2_max_concurrent_streams: 256,
            http2_max_header_list_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
            transcript_database_url: None,
            transcript_max_bytes: 4 * 1024 * 1024,
            transcript_retention_days: 30,
            transcript_max_total_bytes: 10 * 1024 * 1024 * 1024,
            tls: TlsSource::Off,
            tls_client_ca: None,
            oidc: None,
            budget_fail_open: true,
            clock: crate::time::Clock::default(),
            tracing: None,
        }
    }

    /// The database URL, defaulting to a SQLite file in the data dir.
    pub fn effective_database_url(&self) -> String {
        self.database_url
            .as_ref()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("tollgate.sqlite").display()))
    }

    /// The Bedrock control-plane base URL for `region`.
    pub fn bedrock_control_url(&self, region: &str) -> String {
        match &self.bedrock_control_endpoint {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("https://bedrock.{region}.amazonaws.com"),
        }
    }

    /// The usage database URL, or `None` to share the PostgreSQL config database.
    pub fn effective_usage_database_url(&self) -> Option<String> {
        if let Some(u) = &self.usage_database_url {
            return Some(u.0.clone());
        }
        let config = self.effective_database_url();
        if config.starts_with("postgres://") || config.starts_with("postgresql://") {
            None
        } else {
            Some(format!("sqlite://{}?mode=rwc", self.data_dir.join("usage.sqlite").display()))
        }
    }

    /// The transcript database URL, or `None` to share the PostgreSQL config database.
    pub fn effective_transcript_database_url(&self) -> Option<String> {
        if let Some(u) = &self.transcript_database_url {
            return Some(u.0.clone());
        }
        let config = self.effective_database_url();
        if config.starts_with("postgres://") || config.starts_with("postgresql://") {
            None
        } else {
            Some(format!("sqlite://{}?mode=rwc", self.data_dir.join("transcripts.sqlite").display()))
        }
    }
}
