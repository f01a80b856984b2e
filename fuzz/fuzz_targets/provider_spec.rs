//! Provider spec parsing and validation (`tollgate_core::ProviderSpec`).
//!
//! Input: any bytes, parsed as a provider body. Checks:
//! - no panic on any input (invalid JSON, wrong types, unknown fields, odd values);
//! - an error names a field and a rule (non-empty message);
//! - a spec that parses re-serialises to JSON that parses again to the same value (round trip
//!   through the API's own output: validation is idempotent);
//! - the accessors the proxy calls on a valid spec do not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::ProviderSpec;

fuzz_target!(|data: &[u8]| {
    let spec = match ProviderSpec::parse(data) {
        Ok(spec) => spec,
        Err(e) => {
            assert!(!e.message.is_empty(), "an error without a message: {e:?}");
            return;
        }
    };
    let json = serde_json::to_vec(&spec).unwrap_or_else(|e| panic!("a valid spec does not serialise: {e}"));
    match ProviderSpec::parse(&json) {
        Ok(again) => assert_eq!(spec, again, "round trip changed the spec: {}", String::from_utf8_lossy(&json)),
        Err(e) => panic!("a valid spec re-parses with an error ({e}): {}", String::from_utf8_lossy(&json)),
    }
    let _ = (spec.kind(), spec.is_enabled(), spec.config(), spec.secret_refs(), spec.api_key_ref());
    let _ = (spec.upstream_base_url(), spec.authorization_passthrough(), spec.bedrock_credential_mode());
    let _ = spec.allows_model("gpt-4o");
});
