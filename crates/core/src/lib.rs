//! Tollgate's domain: the types and rules every other crate shares.
//!
//! This crate does no IO: no sockets, no files, no clock, no randomness. Time and
//! randomness are passed in by callers. It must not depend on any other Tollgate crate.

pub mod budget;
pub mod catalog;
pub mod error;
pub mod money;
pub mod patch;
pub mod pricing;
pub mod provider;
pub mod token;
pub mod usage;
pub mod validate;
pub mod warnings;

pub use catalog::{Catalog, CatalogError, ModelEntry};
pub use error::{Broken, ValidationError};
pub use money::Microcents;
pub use provider::{CredentialScheme, ErrorShape, ProviderDescriptor, ProviderSpec, ProviderType, WireFamilyId};
pub use token::Role;
pub use usage::{Bucket, Cost, RequestStatus, Usage};
