//! `tollgate model list|get` over `/api/v1/models`: the model catalog in use (built-in catalog
//! plus the operator overlay), with prices shown in USD per 1M tokens in tables (the API's
//! integer microcents with `-o json|yaml`).

use crate::client::{Client, fetch_pages};
use crate::opts::{OutputFormat, PageArgs};
use crate::output;
use clap::Subcommand;
use serde_json::Value;

const COLLECTION: &str = "models";

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// List catalog models with their prices (USD per 1M tokens).
    #[command(visible_alias = "ls")]
    List(ModelListArgs),
    /// Show one catalog model.
    Get(ModelGetArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelListArgs {
    /// openai | anthropic | google | bedrock | openai_compatible | azure_openai.
    #[arg(long)]
    pub provider_type: Option<String>,
    /// Only models whose name or label contains this text.
    #[arg(long)]
    pub name_contains: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelGetArgs {
    /// Model name as clients send it, e.g. claude-sonnet-4-6 or us.anthropic.claude-sonnet-4-6.
    pub name: String,
    /// Needed when the name exists under several provider types.
    #[arg(long)]
    pub provider_type: Option<String>,
}

/// A price in microcents per 1M tokens as `$3` / `$0.075`, or `-` when the catalog has none.
pub fn usd(v: Option<&Value>) -> String {
    match v.and_then(Value::as_i64) {
        Some(m) => output::usd_per_million(m),
        None => "-".to_owned(),
    }
}

/// One row: NAME, PROVIDER_TYPE, LABEL, INPUT, OUTPUT, CACHED, WRITE_5M, WRITE_1H, CONTEXT.
pub fn model_row(m: &Value) -> Vec<String> {
    let p = m.get("pricing");
    let price = |k: &str| usd(p.and_then(|p| p.get(k)));
    vec![
        output::cell(m, "name"),
        output::cell(m, "provider_type"),
        output::cell(m, "label"),
        price("input_per_million"),
        price("output_per_million"),
        price("cached_input_per_million"),
        price("cache_creation_5m_per_million"),
        price("cache_creation_1h_per_million"),
        output::cell(m, "max_input_tokens"),
    ]
}

pub async fn run(client: &Client, fmt: OutputFormat, cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::List(a) => {
            let mut q = a.page.query();
            if let Some(t) = &a.provider_type {
                q.push(("provider_type", t.clone()));
            }
            if let Some(n) = &a.name_contains {
                q.push(("name_contains", n.clone()));
            }
            let list = fetch_pages(client, COLLECTION, "models", q, a.page.all).await?;
            let headers =
                ["NAME", "PROVIDER_TYPE", "LABEL", "INPUT", "OUTPUT", "CACHED", "WRITE_5M", "WRITE_1H", "CONTEXT"];
            output::listing(&list, fmt, &headers, model_row)?;
            if fmt == OutputFormat::Table
                && let Some(v) = list.document.get("version").and_then(Value::as_str)
            {
                output::note(&format!("catalog {v}; prices in USD per 1M tokens"));
            }
            Ok(())
        }
        ModelCommand::Get(a) => {
            let mut q = Vec::new();
            if let Some(t) = &a.provider_type {
                q.push(("provider_type", t.clone()));
            }
            let m = client.get(&[COLLECTION, &a.name], &q).await?;
            match fmt {
                OutputFormat::Table => output::key_values_usd(&m),
                _ => output::document(&m, fmt)?,
            }
            Ok(())
        }
    }
}
