//! Gemini requests: the model is in the path, not the body —
//! `/v1beta/models/{model}:generateContent`, `:streamGenerateContent`, `:embedContent`,
//! `:batchEmbedContents`, `:countTokens` (also under `/v1/`, `/v1alpha/`, `tunedModels/`, and
//! Vertex-style `.../publishers/google/models/{model}:...`), percent-decoded, so
//! `models/tunedModels%2Fx` names `tunedModels/x`. `GET .../models` is the models list,
//! `GET .../models/{model}` names the model. The body is never read.

use percent_encoding::percent_decode_str;

use crate::wire::{Endpoint, OutputLimit, RequestInfo, filter_list};

pub(crate) fn inspect(method: &str, path: &str, _query: Option<&str>, _body: &[u8]) -> RequestInfo {
    let (model, action) = model_and_action(path);
    let mut endpoint = match action.as_deref() {
        Some("generateContent") => Endpoint::GenerateContent,
        Some("streamGenerateContent") => Endpoint::StreamGenerateContent,
        Some("embedContent" | "batchEmbedContents") => Endpoint::EmbedContent,
        Some("countTokens") => Endpoint::CountTokens,
        _ => Endpoint::Other,
    };
    if !method.eq_ignore_ascii_case("POST") && endpoint != Endpoint::Other {
        endpoint = Endpoint::Other;
    }
    if endpoint == Endpoint::Other
        && method.eq_ignore_ascii_case("GET")
        && path.trim_end_matches('/').ends_with("/models")
    {
        endpoint = Endpoint::ListModels;
    }
    RequestInfo {
        endpoint,
        model,
        stream: endpoint == Endpoint::StreamGenerateContent,
        body_error: None,
        output_limit: OutputLimit::Unread,
        body_names_model: false,
    }
}

/// The model named by the path, and the `:action` when the model is the last segment.
fn model_and_action(path: &str) -> (Option<String>, Option<String>) {
    let found = [("/models/", ""), ("/tunedModels/", "tunedModels/")]
        .into_iter()
        .filter_map(|(marker, prefix)| path.find(marker).map(|i| (i, marker, prefix)))
        .min_by_key(|(i, _, _)| *i);
    let Some((i, marker, prefix)) = found else {
        return (None, None);
    };
    let rest = &path[i + marker.len()..];
    let (segment, last) = match rest.find('/') {
        Some(slash) => (&rest[..slash], false),
        None => (rest, true),
    };
    let decoded = percent_decode_str(segment).decode_utf8_lossy();
    let (name, action) = match decoded.rfind(':') {
        Some(c) => (&decoded[..c], Some(&decoded[c + 1..])),
        None => (&decoded[..], None),
    };
    let model = (!name.is_empty()).then(|| format!("{prefix}{name}"));
    (model, action.filter(|_| last).map(str::to_string))
}

pub(crate) fn filter_model_list(body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let keep = |name: &str| allowed(name) || name.strip_prefix("models/").is_some_and(allowed);
    filter_list(body, "models", "name", &keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str) -> (Endpoint, Option<String>, bool) {
        let i = inspect(method, path, None, b"not json at all {");
        assert_eq!(i.body_error, None);
        (i.endpoint, i.model, i.stream)
    }

    #[test]
    fn model_and_endpoint_from_path() {
        let m = |s: &str| Some(s.to_string());
        assert_eq!(
            info("POST", "/v1beta/models/gemini-2.5-flash:generateContent"),
            (Endpoint::GenerateContent, m("gemini-2.5-flash"), false)
        );
        assert_eq!(
            info("POST", "/v1/models/gemini-2.5-pro:streamGenerateContent"),
            (Endpoint::StreamGenerateContent, m("gemini-2.5-pro"), true)
        );
        assert_eq!(
            info("POST", "/v1alpha/models/gemini-embedding-001:embedContent"),
            (Endpoint::EmbedContent, m("gemini-embedding-001"), false)
        );
        assert_eq!(
            info("POST", "/v1beta/models/text-embedding-004:batchEmbedContents"),
            (Endpoint::EmbedContent, m("text-embedding-004"), false)
        );
        assert_eq!(
            info("POST", "/v1beta/models/gemini-2.5-flash:countTokens"),
            (Endpoint::CountTokens, m("gemini-2.5-flash"), false)
        );
        assert_eq!(info("GET", "/v1beta/models"), (Endpoint::ListModels, None, false));
        assert_eq!(info("GET", "/v1beta/models/gemini-2.5-flash"), (Endpoint::Other, m("gemini-2.5-flash"), false));
        assert_eq!(
            info("POST", "/v1beta/models/tunedModels%2Fmy-model-7:generateContent"),
            (Endpoint::GenerateContent, m("tunedModels/my-model-7"), false)
        );
        assert_eq!(
            info("POST", "/v1beta/tunedModels/my-model-7:generateContent"),
            (Endpoint::GenerateContent, m("tunedModels/my-model-7"), false)
        );
        assert_eq!(
            info("POST", "/v1beta/models/gemini-2.5-flash%3AgenerateContent"),
            (Endpoint::GenerateContent, m("gemini-2.5-flash"), false)
        );
        assert_eq!(
            info("POST", "/v1/projects/p/locations/us/publishers/google/models/gemini-2.5-flash:generateContent"),
            (Endpoint::GenerateContent, m("gemini-2.5-flash"), false)
        );
        assert_eq!(info("POST", "/v1beta/models/x/operations/y:cancel"), (Endpoint::Other, m("x"), false));
        assert_eq!(info("POST", "/v1beta/cachedContents"), (Endpoint::Other, None, false));
        assert_eq!(info("POST", "/v1beta/models/:generateContent"), (Endpoint::GenerateContent, None, false));
    }
}
