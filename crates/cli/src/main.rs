//! The `tollgate` binary: parses the command line, runs it on a Tokio runtime, and turns
//! an error into `Error: …` on stderr with exit status 1 (clap exits 2 on usage errors).

use clap::Parser as _;
use std::process::ExitCode;

/// mimalloc instead of the system allocator (ARCHITECTURE.md, Decisions: Memory allocator):
/// a proxied request makes about a hundred small allocations, and glibc's malloc spent a fifth
/// of the gateway's instructions on them (consolidating its fast bins whenever a request asked
/// for a block over 1 KiB, as a response head with rate-limit headers does). Called through
/// its C API (`tollgate_cli::alloc`), not the `mimalloc` crate's wrapper.
#[global_allocator]
static ALLOCATOR: tollgate_cli::alloc::Allocator = tollgate_cli::alloc::Allocator;

fn main() -> ExitCode {
    let cli = tollgate_cli::args::Cli::parse();
    // One worker thread means the current-thread scheduler: the same single thread runs every
    // task, with no work-stealing queues or cross-thread wakeups to pay for.
    let workers = match &cli.command {
        tollgate_cli::args::Command::Serve(a) => a.worker_threads,
        _ => None,
    };
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tollgate_cli::output::error(&anyhow::Error::new(e).context("starting the async runtime"));
            return ExitCode::FAILURE;
        }
    };
    if matches!(cli.command, tollgate_cli::args::Command::Serve(_)) {
        runtime.spawn(release_freed_memory());
    }
    match runtime.block_on(tollgate_cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<tollgate_cli::apply::Exit>() {
            // A command that chose its exit status has printed what it had to say.
            Some(exit) => ExitCode::from(exit.0),
            None => {
                tollgate_cli::output::error(&e);
                ExitCode::FAILURE
            }
        },
    }
}

/// Once a second, hands the memory mimalloc has freed back to the OS (ARCHITECTURE.md,
/// Decisions: Memory allocator). mimalloc returns a freed page only after a delay (1 s), and
/// only when the thread that freed it calls into the allocator again; after a burst (1,000
/// streams ending, their connections closing) the runtime thread goes quiet and the memory
/// stayed resident for good (P6: 67 MiB of anonymous memory 97 s after the streams, 10 MiB
/// before them). The collect runs on a runtime thread; it walks that thread's heap and purges
/// the shared arenas' pages whose delay has passed.
async fn release_freed_memory() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        tollgate_cli::alloc::collect();
    }
}
