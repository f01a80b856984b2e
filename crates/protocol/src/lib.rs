//! Wire formats of the upstream LLM APIs, as pure functions over bytes: no sockets, no
//! clock, no database. The proxy (in `tollgate-server`) calls into this crate; this crate
//! depends only on `tollgate-core`.
//!
//! Today: the native error shape of each provider family ([`errors`]), so errors the gateway
//! itself produces on the proxy path surface in clients' SDKs as their normal error types.
//! The data-plane issue adds per-provider request peeking, usage extraction and stream taps
//! here, one module per provider with the same files.

pub mod errors;
