//! Runs one fake upstream until interrupted, for trying the gateway by hand or with the
//! official SDKs: `cargo run -p tollgate-testkit --example fake_upstream -- openai sk-test`
//! prints the base URL to configure on a provider. `… -- bedrock AKID:SECRET` runs the fake AWS
//! (bedrock-runtime, control plane, STS) accepting that key pair.

use tollgate_core::ProviderType;
use tollgate_testkit::upstream::FakeUpstream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let provider_type: ProviderType = match args.next() {
        Some(t) => t.parse().map_err(anyhow::Error::msg)?,
        None => ProviderType::Openai,
    };
    let key = args.next();
    let up = FakeUpstream::start(provider_type, key.as_deref()).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", up.provider_base_url());
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
