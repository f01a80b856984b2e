//! The `tollgate` command line: `serve` runs the gateway; every other command is a thin
//! client of the admin REST API (so the CLI exercises exactly what automation uses).
//!
//! The admin commands hold no domain logic beyond turning flags into request bodies
//! (pure functions in [`provider`] and [`token`], tested without sockets) and rendering
//! answers ([`output`]). They must not depend on the server or the store: only on HTTP.

pub mod alloc;
pub mod apply;
pub mod args;
pub mod budget;
pub mod client;
pub mod health;
pub mod model;
pub mod opts;
pub mod output;
pub mod provider;
pub mod requests;
pub mod secret;
pub mod serve;
pub mod spending;
pub mod token;

use args::{Cli, Command};
use client::Client;

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let fmt = cli.global.output;
    match cli.command {
        Command::Serve(a) => serve::run(a).await,
        Command::Provider(cmd) => provider::run(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Secret(secret::SecretCommand::RotateKey(a)) => serve::rotate_key(a).await,
        Command::Secret(cmd) => secret::run(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Token(token::TokenCommand::RecoverAdmin(a)) => serve::recover_admin(a).await,
        Command::Token(cmd) => token::run(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Model(cmd) => model::run(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Spending(cmd) => spending::run(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Requests(cmd) => requests::run_requests(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Conversations(cmd) => requests::run_conversations(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Transcripts(cmd) => requests::run_transcripts(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Budget(cmd) => budget::run(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::RateLimit(cmd) => budget::run_rate_limit(&Client::new(&cli.global)?, fmt, cmd).await,
        Command::Health(a) => health::run(&cli.global, a).await,
        Command::Apply(a) => apply::apply(&Client::new(&cli.global)?, a).await,
        Command::Diff(a) => apply::diff(&Client::new(&cli.global)?, a).await,
    }
}
