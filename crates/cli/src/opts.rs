//! Options shared by every command: the global flags, the output format and pagination.
//!
//! Depends on no command module (the commands depend on it), so the command grammar in
//! [`crate::args`] and the command modules do not import each other both ways.

use clap::ValueEnum;

/// The environment variable the CLI reads its admin token from (twin of `--token`).
pub const ADMIN_TOKEN_ENV: &str = "TOLLGATE_ADMIN_TOKEN";
/// A variable the CLI does not read (an application's gateway token often lives there); named
/// in the hint of a 401 so a user who set it for the CLI learns why it was not used.
pub const IGNORED_TOKEN_ENV: &str = "TOLLGATE_TOKEN";

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
    /// PEM file of the CA that issued the server's certificate, trusted besides the system's
    /// (e.g. `<data-dir>/tls/ca.pem` of a gateway started with `--tls-self-signed`).
    #[arg(long, global = true, help_heading = "Global", env = "TOLLGATE_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
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
