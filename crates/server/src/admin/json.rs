//! Strict JSON for admin request bodies: a document with a key twice in one object is refused
//! (serde_json would keep the last value, so `{"role":"invoker","role":"admin"}` would read as
//! an admin token to this server and as an invoker to a proxy or audit log in front of it).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum StrictJsonError {
    /// `path` (dotted, `[i]` for array elements) appears twice in its object.
    Duplicate { path: String },
    /// Not JSON; serde_json's message.
    Syntax(serde_json::Error),
}

/// Parses `body` into a [`Value`], refusing a key that appears twice in the same object at
/// any depth.
pub(crate) fn parse(body: &[u8]) -> Result<Value, StrictJsonError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Seed { path: String::new(), duplicate: &duplicate }.deserialize(&mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    match (parsed, duplicate.into_inner()) {
        (_, Some(path)) => Err(StrictJsonError::Duplicate { path }),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(StrictJsonError::Syntax(e)),
    }
}

/// Why [`strict_value`] refused a document.
#[derive(Debug)]
pub enum Strict<E> {
    /// `path` (dotted, `[i]` for sequence elements) appears twice in its mapping.
    Duplicate { path: String },
    /// The format's own error (not valid YAML or JSON).
    Format(E),
}

/// Reads one document of any self-describing format into a [`Value`] with the rule admin
/// bodies have: a key twice in one mapping is refused, never resolved to the last value. The
/// CLI reads manifests (YAML or JSON) through it, so a file says what the API would accept.
pub fn strict_value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, Strict<D::Error>> {
    let duplicate = RefCell::new(None);
    let parsed = Seed { path: String::new(), duplicate: &duplicate }.deserialize(d);
    match (parsed, duplicate.into_inner()) {
        (_, Some(path)) => Err(Strict::Duplicate { path }),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(Strict::Format(e)),
    }
}

struct Seed<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) =
            seq.next_element_seed(Seed { path: format!("{}[{}]", self.path, out.len()), duplicate: self.duplicate })?
        {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            if out.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
            let v = map.next_value_seed(Seed { path, duplicate: self.duplicate })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(body: &str) -> Option<String> {
        match parse(body.as_bytes()) {
            Err(StrictJsonError::Duplicate { path }) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn duplicates_are_found_at_any_depth() {
        assert_eq!(dup(r#"{"role":"invoker","role":"admin"}"#).as_deref(), Some("role"));
        assert_eq!(dup(r#"{"a":{"b":1,"c":2,"b":3}}"#).as_deref(), Some("a.b"));
        assert_eq!(dup(r#"{"a":[{"x":1},{"x":1,"x":2}]}"#).as_deref(), Some("a[1].x"));
        assert_eq!(dup(r#"{"a":1,"b":{"a":1}}"#), None);
    }

    #[test]
    fn values_are_the_same_as_serde_json() {
        let body = r#"{"a":[1,-2,3.5,true,null,"s",{"k":"v"}],"u":18446744073709551615}"#;
        let strict = parse(body.as_bytes()).ok();
        let loose: Option<Value> = serde_json::from_str(body).ok();
        assert_eq!(strict, loose);
        assert!(matches!(parse(b"{\"a\":1} x"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(parse(b"{\"a\":"), Err(StrictJsonError::Syntax(_))));
    }
}
