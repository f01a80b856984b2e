//! OpenAI requests: the endpoint from the path (matched by suffix, so `/v1/chat/completions`
//! and Azure-style `/openai/deployments/x/chat/completions` classify too), `model` and
//! `stream` from the JSON body, the `stream_options.include_usage` edit, and models-list
//! filtering on `data[].id`.

use bytes::Bytes;

use crate::json_scan::{self, Member, ObjectSpan, object_members};
#[cfg(test)]
use crate::wire::OutputLimit;
use crate::wire::{Endpoint, RequestInfo, filter_list};

pub(crate) fn inspect(method: &str, path: &str, _query: Option<&str>, body: &[u8]) -> RequestInfo {
    let p = path.trim_end_matches('/');
    let endpoint = if method.eq_ignore_ascii_case("POST") {
        if p.ends_with("/chat/completions") {
            Endpoint::ChatCompletions
        } else if p.ends_with("/completions") {
            Endpoint::Completions
        } else if p.ends_with("/responses") {
            Endpoint::Responses
        } else if p.ends_with("/embeddings") {
            Endpoint::Embeddings
        } else {
            Endpoint::Other
        }
    } else if method.eq_ignore_ascii_case("GET") && p.ends_with("/models") {
        Endpoint::ListModels
    } else {
        Endpoint::Other
    };
    let peek = json_scan::peek_body(body);
    let mut info = RequestInfo::peeked(endpoint, peek);
    info.body_names_model = method.eq_ignore_ascii_case("POST") && MODEL_IN_BODY.iter().any(|s| p.ends_with(s));
    info
}

/// The POST endpoints whose body names the model (JSON `model`, or the `model` form field of
/// the multipart ones: audio transcriptions and translations, image edits and variations).
/// Images, audio and moderations have upstream defaults, so a request to them without a model
/// still runs one (see [`RequestInfo::body_names_model`]).
const MODEL_IN_BODY: [&str; 11] = [
    "/chat/completions",
    "/completions",
    "/responses",
    "/embeddings",
    "/images/generations",
    "/images/edits",
    "/images/variations",
    "/audio/speech",
    "/audio/transcriptions",
    "/audio/translations",
    "/moderations",
];

/// The endpoints the `include_usage` edit (and so the usage-chunk filter) applies to.
pub(crate) fn edits(endpoint: Endpoint) -> bool {
    matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
}

/// The endpoints whose responses the OpenAI decoder reads.
pub(crate) fn is_openai_endpoint(endpoint: Endpoint) -> bool {
    matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Responses | Endpoint::Embeddings)
}

pub(crate) fn prepare_body(info: &RequestInfo, body: Bytes) -> (Bytes, bool) {
    if !edits(info.endpoint) || !info.stream || info.body_error.is_some() {
        return (body, false);
    }
    match with_include_usage(&body) {
        Some(edited) => (Bytes::from(edited), true),
        None => (body, false),
    }
}

const STREAM_OPTIONS: &[u8] = br#""stream_options":{"include_usage":true}"#;
const INCLUDE_USAGE: &[u8] = br#""include_usage":true"#;

/// `body` with `stream_options.include_usage` set to `true`, or `None` when it already is (or
/// the body's shape does not allow a safe edit: then the request goes as the client sent it).
fn with_include_usage(body: &[u8]) -> Option<Vec<u8>> {
    let obj = object_members(body, 0)?;
    let Some(options) = find_decoded(body, &obj, "stream_options") else {
        return Some(insert_member(body, obj.open, STREAM_OPTIONS, !obj.members.is_empty()));
    };
    let value = options.value.clone();
    match body[value.start] {
        b'n' if &body[value.clone()] == b"null" => Some(splice(body, value, br#"{"include_usage":true}"#)),
        b'{' => {
            let inner = object_members(body, value.start)?;
            match find_decoded(body, &inner, "include_usage") {
                Some(m) if &body[m.value.clone()] == b"true" => None,
                Some(m) => Some(splice(body, m.value.clone(), b"true")),
                None => Some(insert_member(body, inner.open, INCLUDE_USAGE, !inner.members.is_empty())),
            }
        }
        _ => None,
    }
}

/// The last member of `span` named `name` as a JSON parser reads the name: an escaped key
/// (`"stream_\u006fptions"`) is unescaped first, since the upstream keeps the last member of
/// that name whichever way it is spelled.
fn find_decoded<'a>(body: &[u8], span: &'a ObjectSpan, name: &str) -> Option<&'a Member> {
    span.members.iter().rev().find(|m| {
        let raw = &body[m.key.clone()];
        if raw.contains(&b'\\') {
            // The key range is inside the quotes; parse it with them.
            body.get(m.key.start.saturating_sub(1)..m.key.end + 1)
                .and_then(|quoted| serde_json::from_slice::<String>(quoted).ok())
                .is_some_and(|key| key == name)
        } else {
            raw == name.as_bytes()
        }
    })
}

/// Inserts `member` right after the `{` at `open`, with a comma if other members follow.
fn insert_member(body: &[u8], open: usize, member: &[u8], comma: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + member.len() + 1);
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(member);
    if comma {
        out.push(b',');
    }
    out.extend_from_slice(&body[open + 1..]);
    out
}

fn splice(body: &[u8], range: std::ops::Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + with.len());
    out.extend_from_slice(&body[..range.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&body[range.end..]);
    out
}

pub(crate) fn filter_model_list(body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    filter_list(body, "data", "id", allowed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(endpoint: Endpoint, stream: bool) -> RequestInfo {
        RequestInfo {
            endpoint,
            model: Some("gpt-4o".into()),
            stream,
            body_error: None,
            output_limit: OutputLimit::Unread,
            body_names_model: true,
        }
    }

    fn edit(body: &str) -> (String, bool) {
        let (b, injected) =
            prepare_body(&info(Endpoint::ChatCompletions, true), Bytes::copy_from_slice(body.as_bytes()));
        (String::from_utf8(b.to_vec()).unwrap(), injected)
    }

    #[test]
    fn inserts_when_absent() {
        assert_eq!(
            edit(r#"{"model":"gpt-4o","stream":true}"#),
            (r#"{"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true}"#.into(), true)
        );
        assert_eq!(
            edit("  {\n  \"stream\": true\n}\n"),
            ("  {\"stream_options\":{\"include_usage\":true},\n  \"stream\": true\n}\n".into(), true)
        );
    }

    #[test]
    fn empty_object_gets_no_trailing_comma() {
        assert_eq!(edit("{}"), (r#"{"stream_options":{"include_usage":true}}"#.into(), true));
        assert_eq!(edit("{ }"), (r#"{"stream_options":{"include_usage":true} }"#.into(), true));
    }

    #[test]
    fn rewrites_only_the_stream_options_value() {
        assert_eq!(
            edit(r#"{"stream":true, "stream_options": {"foo": 1}, "n": 2}"#),
            (r#"{"stream":true, "stream_options": {"include_usage":true,"foo": 1}, "n": 2}"#.into(), true)
        );
        assert_eq!(
            edit(r#"{"stream":true,"stream_options":{}}"#),
            (r#"{"stream":true,"stream_options":{"include_usage":true}}"#.into(), true)
        );
        assert_eq!(
            edit(r#"{"stream":true,"stream_options":{ "include_usage" : false , "x":1}}"#),
            (r#"{"stream":true,"stream_options":{ "include_usage" : true , "x":1}}"#.into(), true)
        );
        assert_eq!(
            edit(r#"{"stream":true,"stream_options":null}"#),
            (r#"{"stream":true,"stream_options":{"include_usage":true}}"#.into(), true)
        );
    }

    /// Found by the `inspect` fuzz target: the edit matched member names byte for byte, so an
    /// escaped name (`"stream_\u006fptions"`, which every JSON parser reads as
    /// `stream_options`) got a second `stream_options` inserted before it; the upstream keeps
    /// the last one, so `include_usage` stayed off (or `false`) while the tap expected the
    /// usage chunk: the request went unmetered.
    #[test]
    fn escaped_member_names_are_the_names_the_upstream_reads() {
        let upstream_view = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
        for body in [
            r#"{"stream":true,"stream_\u006fptions":{"include_usage":false}}"#,
            r#"{"stream":true,"stream_options":{"include_\u0075sage":false}}"#,
            r#"{"stream":true,"stream_options":{"include_usage":true},"stream_\u006Fptions":null}"#,
        ] {
            let (edited, injected) = edit(body);
            assert!(injected, "{body}");
            assert_eq!(
                upstream_view(&edited)["stream_options"]["include_usage"],
                serde_json::Value::Bool(true),
                "{body} became {edited}"
            );
        }
        assert_eq!(
            edit(r#"{"stream":true,"stream_options":{"include_\u0075sage":false}}"#).0,
            r#"{"stream":true,"stream_options":{"include_\u0075sage":true}}"#
        );
        assert!(!edit(r#"{"stream":true,"stream_options":{"include_\u0075sage":true}}"#).1);
    }

    #[test]
    fn unchanged_when_already_true_or_not_applicable() {
        let body = "{ \"stream\" : true,\n \"stream_options\" : { \"include_usage\" : true } }";
        let original = Bytes::copy_from_slice(body.as_bytes());
        let (b, injected) = prepare_body(&info(Endpoint::ChatCompletions, true), original.clone());
        assert!(!injected);
        assert_eq!(b.as_ptr(), original.as_ptr(), "the same Bytes comes back");
        for (endpoint, stream) in
            [(Endpoint::ChatCompletions, false), (Endpoint::Responses, true), (Endpoint::Embeddings, true)]
        {
            let original = Bytes::from_static(br#"{"stream":true}"#);
            let (b, injected) = prepare_body(&info(endpoint, stream), original.clone());
            assert!(!injected);
            assert_eq!(b, original);
        }
        let bad = RequestInfo { body_error: Some("x".into()), ..info(Endpoint::ChatCompletions, true) };
        assert!(!prepare_body(&bad, Bytes::from_static(b"{\"stream\":true}")).1);
        assert!(!edit(r#"{"stream":true,"stream_options":"weird"}"#).1);
        let (b, injected) =
            prepare_body(&info(Endpoint::Completions, true), Bytes::from_static(br#"{"prompt":"x","stream":true}"#));
        assert!(injected);
        assert_eq!(&b[..], br#"{"stream_options":{"include_usage":true},"prompt":"x","stream":true}"#);
    }

    #[test]
    fn classifies_by_suffix() {
        let e = |m: &str, p: &str| inspect(m, p, None, b"").endpoint;
        assert_eq!(e("POST", "/chat/completions"), Endpoint::ChatCompletions);
        assert_eq!(e("POST", "/v1/chat/completions"), Endpoint::ChatCompletions);
        assert_eq!(e("post", "/openai/deployments/x/chat/completions"), Endpoint::ChatCompletions);
        assert_eq!(e("POST", "/completions"), Endpoint::Completions);
        assert_eq!(e("POST", "/responses"), Endpoint::Responses);
        assert_eq!(e("POST", "/embeddings"), Endpoint::Embeddings);
        assert_eq!(e("GET", "/models"), Endpoint::ListModels);
        assert_eq!(e("GET", "/models/gpt-4o"), Endpoint::Other);
        assert_eq!(e("GET", "/chat/completions"), Endpoint::Other);
        assert_eq!(e("POST", "/responses/resp_1/cancel"), Endpoint::Other);
        assert_eq!(e("POST", "/images/generations"), Endpoint::Other);
        let i = inspect("POST", "/audio/speech", None, br#"{"model":"tts-1","input":"hi"}"#);
        assert_eq!(i.model.as_deref(), Some("tts-1"));
    }
}
