//! `tollgate health`: asks a gateway whether it is ready (`GET /readyz`, no token) and turns the
//! answer into an exit status, for container health checks (the Dockerfile's `HEALTHCHECK`),
//! systemd and scripts. Prints one line: `ready`, or `not ready: <reason>`.

use crate::opts::GlobalArgs;
use anyhow::{Context, bail};
use std::time::Duration;

/// Flags of `tollgate health`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    pub timeout_seconds: u64,
}

/// Exit 0 when the gateway at `--url` answers `/readyz` with 200; an error (exit 1) otherwise.
pub async fn run(global: &GlobalArgs, a: HealthArgs) -> anyhow::Result<()> {
    let mut url = reqwest::Url::parse(global.url.trim()).with_context(|| format!("invalid --url `{}`", global.url))?;
    url.set_path("/readyz");
    url.set_query(None);
    let http = crate::client::http_client(global.ca_cert.as_deref(), Duration::from_secs(a.timeout_seconds.max(1)))?;
    let resp = http.get(url.clone()).send().await.with_context(|| format!("not ready: {url} did not answer"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        crate::output::line("ready");
        return Ok(());
    }
    let reason = body["reason"].as_str().unwrap_or("no reason given");
    bail!("not ready: {status}: {reason}")
}
