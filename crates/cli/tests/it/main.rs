//! The one integration-test binary: every test here drives real servers over HTTP (or the
//! real `tollgate` binary), on SQLite always and on PostgreSQL when
//! `TOLLGATE_TEST_DATABASE_URL` is set.
//!
//! Notable modules: `proxy/` (the proxy per provider type, with the official SDKs), `cost`
//! (the cost conformance cases of `tests/fixtures/cost/`), `console/` (HTTP tests, and the
//! headless-Chromium end-to-end test that also writes `docs/screenshots/`), `connect_snippets`
//! (every Connect tab snippet run with the real SDK or tool, installed by
//! `tests/tools/install.sh`), `faults` (a full disk, a locked database, slowloris, the
//! connection cap, SIGTERM and SIGKILL under load), `observability` (traces of every family
//! through the testkit's OTLP receiver, `/metrics` parsed as Prometheus text, the binary's
//! logs and OTEL_* variables), `bench_smoke` (a two-second run of
//! `bench/`), `cli` and `serve_binary` (the real `tollgate` binary), `transcripts` (recorded
//! bodies, the request log and conversations, every provider family, on both stores),
//! `replicas` (two real processes on one PostgreSQL converging by notification; config writes
//! in constant rows).

mod support;

mod admin_auth;
mod admin_providers;
mod admin_secrets_tokens;
mod bench_smoke;
mod catalog_api;
mod cli;
mod connect_snippets;
mod console;
mod cost;
mod deploy;
mod faults;
mod observability;
mod oidc;
mod openapi;
mod proxy;
mod replicas;
mod serve_binary;
mod store;
mod tls;
mod transcripts;
