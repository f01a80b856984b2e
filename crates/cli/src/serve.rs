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
