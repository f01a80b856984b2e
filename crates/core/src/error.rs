//! The one error type of domain validation: which field broke which rule.

use std::fmt;

/// A rejected input: `field` is the dotted JSON path of the offending field
/// (`anthropic_config.api_key_ref`, `provider_models[1].name`), `message` the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub field: String,
    pub message: String,
    pub kind: Broken,
}

/// What an input broke: its shape (not JSON, a wrong JSON type, an unknown field: the admin
/// API answers 400) or a rule on its values (422), see STYLE.md, Errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    Shape,
    Rule,
}

impl ValidationError {
    /// A value that breaks a rule.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), kind: Broken::Rule }
    }

    /// An input of the wrong shape.
    pub fn shape(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), kind: Broken::Shape }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// An optional integer that JSON may also write with a zero fraction (`1500000.0` is the
/// integer 1500000 in JSON Schema, and so in the OpenAPI document). Read exactly: a number with
/// a fraction, or one beyond 2^53 written as a float (not exact), is refused.
pub fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize as _;
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => {
            #[allow(clippy::cast_possible_truncation)] // integral and within ±2^53: exact
            Ok(Some(f as i64))
        }
        _ => Err(D::Error::custom(format!(
            "invalid value: {n}, expected an integer (at most 2^53 when written with a fraction)"
        ))),
    }
}

/// [`integer`] for a required field.
pub fn required_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error as _;
    integer(d)?.ok_or_else(|| D::Error::custom("invalid type: null, expected an integer"))
}

/// Deserializes a JSON value into `T`, turning a type error into a [`ValidationError`] whose
/// `field` is the dotted path of the offending field (for an unknown field: that field itself,
/// which serde reports at its parent).
pub fn from_json_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        ValidationError::shape(unknown_field_path(&path, &message), message)
    })
}

fn unknown_field_path(path: &str, message: &str) -> String {
    let base = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some(name) = rest.split('`').next()
    {
        if base.is_empty() || base.ends_with(name) {
            return if base.is_empty() { name.to_string() } else { base.to_string() };
        }
        return format!("{base}.{name}");
    }
    base.to_string()
}
