//! The `tollgate` binary: parses the command line, runs it on a Tokio runtime, and turns
//! an error into `Error: …` on stderr with exit status 1 (clap exits 2 on usage errors).

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = tollgate_cli::args::Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let tollgate_cli::args::Command::Serve(a) = &cli.command
        && let Some(n) = a.worker_threads.filter(|n| *n > 0)
    {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
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
