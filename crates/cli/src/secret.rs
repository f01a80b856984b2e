//! `tollgate secret …`: set (value from stdin or a hidden prompt, never an argument),
//! list, get and delete over `/api/v1/secrets`. Values are write-only: nothing here
//! ever prints one.
//!
//! `secrets rotate-key` is the offline master-key rotation and lives in [`crate::serve`].

use crate::client::Client;
use crate::client::fetch_pages;
use crate::opts::{OutputFormat, PageArgs};
use crate::output;
use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::io::{IsTerminal as _, Read as _};

const COLLECTION: &str = "secrets";

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create or replace a secret. The value is read from stdin when it is not a terminal,
    /// otherwise from a hidden prompt; it is never taken as an argument.
    Set(SecretSetArgs),
    /// Replace the hosts a secret may be sent to, without its value (admin only).
    Bind(SecretBindArgs),
    /// List secret names (never values).
    #[command(visible_alias = "ls")]
    List(SecretListArgs),
    /// Show a secret's metadata (never its value).
    Get(SecretName),
    /// Delete a secret (refused while a provider references it).
    #[command(visible_alias = "rm")]
    Delete(SecretName),
    /// Re-seal every secret under a new master key (offline: works on the database directly).
    RotateKey(crate::serve::RotateKeyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SecretName {
    /// Secret name (UPPER_SNAKE_CASE, e.g. ANTHROPIC_API_KEY).
    pub name: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SecretSetArgs {
    /// Secret name (UPPER_SNAKE_CASE, e.g. ANTHROPIC_API_KEY).
    pub name: String,
    /// A host (`host[:port]`) the secret may be sent to; repeat for several. Replaces the
    /// binding; without it the binding is kept (a new secret is bound by the first provider
    /// that uses it).
    #[arg(long = "bound-host", value_name = "HOST")]
    pub bound_hosts: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SecretBindArgs {
    /// Secret name (UPPER_SNAKE_CASE, e.g. ANTHROPIC_API_KEY).
    pub name: String,
    /// A host (`host[:port]`) the secret may be sent to; repeat for several. None unbinds it
    /// (the next provider saved with it binds it again).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SecretListArgs {
    #[command(flatten)]
    pub page: PageArgs,
}

/// Strips exactly one trailing `"\n"` or `"\r\n"` (what `echo` or a file's last line adds).
pub fn strip_one_newline(s: &str) -> &str {
    s.strip_suffix("\r\n").or_else(|| s.strip_suffix('\n')).unwrap_or(s)
}

/// Reads the secret value: all of stdin when piped, else a hidden prompt.
fn read_value(name: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        rpassword::prompt_password(format!("Value for {name}: ")).context("reading the secret value")?
    } else {
        let mut buf = Vec::new();
        stdin.lock().read_to_end(&mut buf).context("reading the secret value from stdin")?;
        let text = String::from_utf8(buf).map_err(|_| anyhow::anyhow!("the secret value on stdin is not UTF-8"))?;
        strip_one_newline(&text).to_owned()
    };
    if value.is_empty() {
        bail!("empty secret value for {name}");
    }
    Ok(value)
}

/// Runs one secret command (all but `rotate-key`).
pub async fn run(client: &Client, fmt: OutputFormat, cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Set(a) => {
            let value = read_value(&a.name)?;
            let mut body = json!({ "value": value });
            if !a.bound_hosts.is_empty() {
                body["bound_hosts"] = json!(a.bound_hosts);
            }
            let answer = client.put(&[COLLECTION, &a.name], &body).await?;
            drop(body);
            drop(value);
            let verb = if answer.status == 201 { "created" } else { "updated" };
            let meta = answer.json();
            match fmt {
                OutputFormat::Table => output::line(&format!("{verb} secret {}", a.name)),
                _ => output::document(&meta, fmt)?,
            }
            Ok(())
        }
        SecretCommand::Bind(a) => {
            let meta = client.patch(&[COLLECTION, &a.name], &json!({ "bound_hosts": a.hosts })).await?.json();
            match fmt {
                OutputFormat::Table => output::line(&format!("bound secret {} to: {}", a.name, a.hosts.join(", "))),
                _ => output::document(&meta, fmt)?,
            }
            Ok(())
        }
        SecretCommand::List(a) => {
            let list = fetch_pages(client, COLLECTION, "secrets", a.page.query(), a.page.all).await?;
            output::listing(&list, fmt, &["NAME", "UPDATED"], secret_row)
        }
        SecretCommand::Get(a) => {
            let meta = client.get(&[COLLECTION, &a.name], &[]).await?;
            match fmt {
                OutputFormat::Table => output::key_values(&meta),
                _ => output::document(&meta, fmt)?,
            }
            Ok(())
        }
        SecretCommand::Delete(a) => {
            client.delete(&[COLLECTION, &a.name]).await?;
            if fmt == OutputFormat::Table {
                output::line(&format!("deleted secret {}", a.name));
            }
            Ok(())
        }
        SecretCommand::RotateKey(_) => {
            bail!("`secrets rotate-key` runs offline, not through the admin API")
        }
    }
}

/// One row of the secrets table: NAME, UPDATED.
pub fn secret_row(s: &Value) -> Vec<String> {
    let updated = match output::cell(s, "updated_at").as_str() {
        "-" => output::cell(s, "created_at"),
        u => u.to_owned(),
    };
    vec![output::cell(s, "name"), updated]
}
