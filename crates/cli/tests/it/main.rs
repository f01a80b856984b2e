//! The one integration-test binary: every test here drives real servers over HTTP (or the
//! real `tollgate` binary), on SQLite always and on PostgreSQL when
//! `TOLLGATE_TEST_DATABASE_URL` is set.

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
mod openapi;
mod proxy;
mod serve_binary;
mod store;
