//! The JSON scanners (`tollgate_protocol::json_scan`) and the models-list filter over
//! arbitrary bytes.
//!
//! Input: `[chunk seed, limit selector, allow-list selector] ++ body`. Checks:
//! - `ObjectCapture` and `ArraySplitter`: no panic; the same output whatever the chunking;
//!   captured values and elements are bytes of the input (never more out than in) and within
//!   the limit; when the body is valid JSON they equal what `serde_json` reads (the last
//!   `usage` / `usageMetadata` / `model` member; every element of an array of objects or
//!   arrays, or the one object);
//! - `object_members` / `array_elements`: ranges within the input and in order; for valid
//!   JSON, present, and each member found by `find_member` equals serde's value;
//! - `filter_model_list` for every family: never longer than the input; for valid JSON, the
//!   result is valid JSON equal to the input with the list narrowed to the allowed entries.
//!
//! The serde comparisons skip bodies with `\u` escapes, and the `find_member` one bodies with
//! any escape: the scanners match raw key bytes, so `"us\u0061ge"` is not `usage` to them
//! (no upstream escapes ASCII member names).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_fuzz::{chunkings, control};
use tollgate_protocol::json_scan::{ArraySplitter, ObjectCapture, array_elements, find_member, object_members};
use tollgate_protocol::{MAX_HELD_BYTES, WireFamilyId, filter_model_list};

const NAMES: &[&str] = &["usage", "usageMetadata", "model"];
const LIMITS: [usize; 4] = [MAX_HELD_BYTES, MAX_HELD_BYTES, 4, 40];

fuzz_target!(|data: &[u8]| {
    let ([seed, limit, allow], body) = control::<3>(data);
    let cap = LIMITS[usize::from(limit) % LIMITS.len()];
    let parsed: Option<Value> = if contains(body, b"\\u") { None } else { serde_json::from_slice(body).ok() };

    // ObjectCapture.
    let mut first: Option<Vec<(&str, Vec<u8>)>> = None;
    for pieces in chunkings(body, seed) {
        let mut c = ObjectCapture::with_limit(NAMES, cap);
        let mut got = Vec::new();
        for piece in &pieces {
            got.extend(c.push(piece));
        }
        for (_, raw) in &got {
            assert!(raw.len() <= cap && contains(body, raw), "captured bytes not from the input: {raw:?}");
        }
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(f, &got, "chunking changed the captures"),
        }
    }
    if let (Some(Value::Object(map)), Some(got), true) = (&parsed, &first, cap == MAX_HELD_BYTES) {
        for name in NAMES {
            let last = got.iter().rev().find(|(n, _)| n == name).map(|(_, raw)| serde_json::from_slice::<Value>(raw));
            match (map.get(*name), last) {
                (None, None) => {}
                (Some(want), Some(Ok(v))) => assert_eq!(want, &v, "captured `{name}` differs"),
                (want, got) => panic!("`{name}`: serde has {want:?}, the capture {got:?}"),
            }
        }
    }

    // ArraySplitter.
    let mut first: Option<Vec<Vec<u8>>> = None;
    for pieces in chunkings(body, seed) {
        let mut s = ArraySplitter::with_limit(cap);
        let mut got = Vec::new();
        for piece in &pieces {
            got.extend(s.push(piece));
        }
        for el in &got {
            assert!(el.len() <= cap && contains(body, el), "element bytes not from the input: {el:?}");
        }
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(f, &got, "chunking changed the elements"),
        }
    }
    if let (Some(got), true) = (&first, cap == MAX_HELD_BYTES) {
        let want = match &parsed {
            Some(Value::Array(a)) if a.iter().all(|v| v.is_object() || v.is_array()) => Some(a.clone()),
            Some(v @ Value::Object(_)) => Some(vec![v.clone()]),
            _ => None,
        };
        if let Some(want) = want {
            let got: Vec<Value> = got
                .iter()
                .map(|el| serde_json::from_slice(el).unwrap_or_else(|e| panic!("element {el:?} is not JSON: {e}")))
                .collect();
            assert_eq!(want, got, "elements differ from serde's");
        }
    }

    // object_members / array_elements / find_member.
    if let Some(span) = object_members(body, 0) {
        assert!(span.open < span.close && span.close < body.len());
        let mut at = span.open;
        for m in &span.members {
            assert!(at < m.key.start && m.key.end < m.value.start && m.value.end <= span.close, "member out of order");
            at = m.value.end;
        }
    }
    if let Some(span) = array_elements(body, 0) {
        assert!(span.open < span.close && span.close < body.len());
        let mut at = span.open;
        for e in &span.elements {
            assert!(at < e.start && e.start < e.end && e.end <= span.close, "element out of order");
            at = e.end;
        }
    }
    match &parsed {
        Some(Value::Object(map)) => {
            let span = object_members(body, 0).unwrap_or_else(|| panic!("valid object not scanned"));
            // `find_member` matches raw key bytes: only keys written without escapes compare.
            for (key, want) in map.iter().filter(|_| !body.contains(&b'\\')) {
                let m = find_member(body, &span, key).unwrap_or_else(|| panic!("member {key:?} not found"));
                let got: Value = serde_json::from_slice(&body[m.value.clone()])
                    .unwrap_or_else(|e| panic!("member {key:?} value is not JSON: {e}"));
                assert_eq!(want, &got, "member {key:?}");
            }
        }
        Some(Value::Array(a)) => {
            let span = array_elements(body, 0).unwrap_or_else(|| panic!("valid array not scanned"));
            assert_eq!(span.elements.len(), a.len());
        }
        _ => {}
    }

    // filter_model_list.
    let allowed = move |name: &str| match allow % 4 {
        0 => true,
        1 => false,
        _ => (name.len() + usize::from(allow)).is_multiple_of(2),
    };
    for family in WireFamilyId::ALL {
        let out = filter_model_list(family, body, &allowed);
        let Some(out) = out else { continue };
        assert!(out.len() <= body.len(), "{family:?}: the filtered list is longer than the input");
        let Some(Value::Object(mut want)) = parsed.clone() else { continue };
        let (list, field) = match family {
            WireFamilyId::OpenAi | WireFamilyId::Anthropic | WireFamilyId::Bedrock | WireFamilyId::AzureOpenAi => {
                ("data", "id")
            }
            WireFamilyId::Google => ("models", "name"),
        };
        let keep = |v: &Value| match v.get(field).and_then(Value::as_str) {
            Some(name) => {
                allowed(name) || (family == WireFamilyId::Google && name.strip_prefix("models/").is_some_and(allowed))
            }
            None => false,
        };
        if let Some(Value::Array(items)) = want.get_mut(list) {
            items.retain(keep);
        }
        let got: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!("{family:?}: filtered list is not JSON ({e}): {}", String::from_utf8_lossy(&out))
        });
        assert_eq!(Value::Object(want), got, "{family:?}: filtered list");
    }
});

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
