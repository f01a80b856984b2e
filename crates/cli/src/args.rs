//! The command-line grammar: global flags and the top-level subcommands.
//!
//! Each resource module owns its own subcommand enum; this module only assembles them.
//! It must not do IO: parsing is clap's job, running is [`crate::run`]'s.

use clap::{Parser, Subcommand, ValueEnum};

/// The environment variable the CLI reads its admin token from (twin of `--token`).
pub const ADMIN_TOKEN_ENV: &str = "TOLLGATE_ADMIN_TOKEN";
/// A variable the CLI does not read (an application's gateway token often lives there); named
/// in the hint of a 401 so a user who set it for the CLI learns why it was not used.
pub const IGNORED_TOKEN_ENV: &str = "TOLLGATE_TOKEN";

/// Tollgate: a self-hosted AI gateway.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every admin command accepts (before or after the subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Base URL of the Tollgate server.
    #[arg(long, global = true, help_heading = "Global", env = "TOLLGATE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Admin-capable gateway token; without it, `<TOLLGATE_DATA_DIR or ./tollgate-data>/admin.token` is read when present.
    /// (`TOLLGATE_TOKEN` is not read: that name is left to applications' gateway tokens, `TOLLGATE_API_KEY` in the docs.)
    #[arg(long, global = true, help_heading = "Global", env = ADMIN_TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, help_heading = "Global", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// The top-level subcommands. Parsed once per process, so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(crate::serve::ServeArgs),
    /// Manage LLM providers.
    #[command(subcommand, name = "provider", visible_aliases = ["llm-provider", "llm", "lp"])]
    Provider(crate::provider::ProviderCommand),
    /// Manage secrets (write-only values referenced by providers).
    #[command(subcommand, name = "secret", visible_alias = "secrets")]
    Secret(crate::secret::SecretCommand),
    /// Manage gateway tokens.
    #[command(subcommand, name = "token", visible_alias = "tokens")]
    Token(crate::token::TokenCommand),
    /// Read the model catalog (prices, context windows, capabilities).
    #[command(subcommand, name = "model", visible_alias = "models")]
    Model(crate::model::ModelCommand),
    /// Cost and usage reports.
    #[command(subcommand, name = "spending")]
    Spending(crate::spending::SpendingCommand),
}

/// Pagination flags shared by every `list` command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PageArgs {
    /// Page size (1 to 1000; the server's default is 50).
    #[arg(long)]
    pub page_size: Option<u32>,
    /// Page token from a previous answer.
    #[arg(long)]
    pub page_token: Option<String>,
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
}

impl PageArgs {
    /// The query-string pairs these flags add.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(n) = self.page_size {
            q.push(("page_size", n.to_string()));
        }
        if let Some(t) = &self.page_token {
            q.push(("page_token", t.clone()));
        }
        q
    }
}
