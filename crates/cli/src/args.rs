//! The command-line grammar: the top-level subcommands.
//!
//! Each resource module owns its own subcommand enum; this module only assembles them (the
//! options they share live in [`crate::opts`], which knows no command, so no module cycle).
//! It must not do IO: parsing is clap's job, running is [`crate::run`]'s.

pub use crate::opts::{ADMIN_TOKEN_ENV, GlobalArgs, IGNORED_TOKEN_ENV, OutputFormat, PageArgs};
use clap::{Parser, Subcommand};

/// `tollgate --version`: the crate version and the git commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TOLLGATE_GIT_COMMIT"), ")");

/// Tollgate: a self-hosted AI gateway.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
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
    /// The request log: every proxied request, with recorded bodies for admin tokens.
    #[command(subcommand, name = "requests", visible_alias = "request")]
    Requests(crate::requests::RequestsCommand),
    /// Requests grouped by conversation.
    #[command(subcommand, name = "conversations", visible_alias = "conversation")]
    Conversations(crate::requests::ConversationsCommand),
    /// Recorded request/response bodies.
    #[command(subcommand, name = "transcripts", visible_alias = "transcript")]
    Transcripts(crate::requests::TranscriptsCommand),
    /// Manage budgets (spend caps per agent, per user or shared; amounts in USD).
    #[command(subcommand, name = "budget", visible_alias = "budgets")]
    Budget(crate::budget::BudgetCommand),
    /// Manage rate limits (requests and tokens per minute).
    #[command(subcommand, name = "rate-limit", visible_alias = "rate-limits")]
    RateLimit(crate::budget::RateLimitCommand),
    /// Create, update (and with --prune delete) providers, budgets and rate limits to match
    /// manifest files (GitOps); every write is rehearsed on the server first.
    Apply(crate::apply::ApplyArgs),
    /// Show what `apply` would change: `+ name`, `~ name (update: fields)`, `= name`, `- name`;
    /// exit 1 when anything differs.
    Diff(crate::apply::ApplyArgs),
    /// Check that a gateway is ready to serve (`GET /readyz`): exit 0 when it is, 1 when not.
    /// Needs no token; for container health checks and scripts.
    Health(crate::health::HealthArgs),
}
