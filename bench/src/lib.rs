//! The benchmark harness behind `bench/run.sh`: an OpenAI-shaped mock upstream ([`mock`]), a
//! load client with closed- and open-loop modes ([`load`]), `/proc` readings of the proxy
//! under test ([`procfs`]) and the report with the targets ([`report`]).
//!
//! The library is what the CI smoke test (`crates/cli/tests/it/bench_smoke.rs`) drives; the
//! `tollgate-bench` binary wraps it for the script. It depends on nothing of the gateway but
//! `tollgate-store` (to count usage events after a run) and must stay out of its hot path.

pub mod load;
pub mod mock;
pub mod procfs;
pub mod report;
