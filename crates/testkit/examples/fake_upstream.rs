//! Runs one fake upstream until interrupted, for trying the gateway by hand or with the
//! official SDKs: `cargo run -p tollgate-testkit --example fake_upstream -- openai sk-test`
//! prints the base URL to configure on a provider. `… -- bedrock AKID:SECRET` runs the fake AWS
//! (bedrock-runtime, control plane, STS) accepting that key pair.

use tollgate_testkit::upstream::{FakeUpstream, Flavor};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let flavor = match args.next().as_deref() {
        Some("anthropic") => Flavor::Anthropic,
        Some("google") => Flavor::Google,
        Some("bedrock") => Flavor::Bedrock,
        Some("openai") | None => Flavor::OpenAi,
        Some(other) => anyhow::bail!("unknown flavor {other}: use openai, anthropic, google or bedrock"),
    };
    let key = args.next();
    let up = FakeUpstream::start(flavor, key.as_deref()).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", up.provider_base_url());
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
