//! The Tollgate service as a library: settings, the in-memory config snapshot, the native
//! proxy (`/llm/v1/providers/{name}/…`) with its off-path usage metering and transcript
//! capture, the admin REST
//! API (with its generated OpenAPI document), health and metrics endpoints, and graceful
//! startup and shutdown, and the web console (`/`). The `tollgate` binary in `crates/cli` is a thin shell around [`Gateway`].
//!
//! SQL lives only in `tollgate-store`; this crate talks to the database through it.
//! Request handlers read configuration and gateway tokens from the snapshot, never the DB.

pub mod address_policy;
pub mod admin;
pub mod auth;
pub mod aws;
pub mod binding;
pub mod body;
pub mod catalog;
pub mod conn;
pub mod console;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod limits;
pub mod meter;
pub mod metrics;
pub mod oidc;
pub mod proxy;
pub mod report;
pub mod request_span;
pub mod retention;
pub mod secrets;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod transcript;
pub mod upstream;

pub use error::{ApiError, ServerError};
pub use gateway::Gateway;
pub use settings::{SecretBackendKind, Sensitive, Settings};
