//! The `tollgate` binary: parses the command line, runs it on a Tokio runtime, and turns
//! an error into `Error: …` on stderr with exit status 1 (clap exits 2 on usage errors).

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = tollgate_cli::args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tollgate_cli::output::error(&anyhow::Error::new(e).context("starting the async runtime"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tollgate_cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tollgate_cli::output::error(&e);
            ExitCode::FAILURE
        }
    }
}
