//! Azure OpenAI requests. On `/openai/deployments/{deployment}/{operation}` the deployment
//! (percent-decoded) is the model the allow-list checks, whatever the body says; the
//! operation is classified like OpenAI's (`chat/completions`, `completions`, `embeddings`,
//! …). Every other path (`/openai/v1/…`, `/openai/models`) is an OpenAI request whose body
//! `model` is the deployment name.

use percent_encoding::percent_decode_str;

use crate::openai;
use crate::wire::RequestInfo;

pub(crate) fn inspect(method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestInfo {
    let mut info = openai::request::inspect(method, path, query, body);
    if let Some(deployment) = deployment(path) {
        info.model = Some(deployment);
    }
    info
}

/// The deployment named by a `/openai/deployments/{deployment}/…` path.
fn deployment(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (raw, _operation) = rest.split_once('/')?;
    let name = percent_decode_str(raw).decode_utf8().ok()?;
    (!name.is_empty()).then(|| name.into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::Endpoint;

    #[test]
    fn deployment_paths_name_the_model() {
        let i = inspect(
            "POST",
            "/openai/deployments/prod-4o/chat/completions",
            Some("api-version=2024-10-21"),
            br#"{"model":"ignored","stream":true}"#,
        );
        assert_eq!((i.endpoint, i.model.as_deref(), i.stream), (Endpoint::ChatCompletions, Some("prod-4o"), true));
        let e = inspect("POST", "/openai/deployments/emb%2Dsmall/embeddings", None, br#"{"input":"x"}"#);
        assert_eq!((e.endpoint, e.model.as_deref()), (Endpoint::Embeddings, Some("emb-small")));
        let c = inspect("POST", "/openai/deployments/legacy/completions", None, b"{}");
        assert_eq!(c.endpoint, Endpoint::Completions);
    }

    #[test]
    fn v1_paths_read_the_body() {
        let i = inspect("POST", "/openai/v1/chat/completions", None, br#"{"model":"prod-4o"}"#);
        assert_eq!((i.endpoint, i.model.as_deref()), (Endpoint::ChatCompletions, Some("prod-4o")));
        let r = inspect("POST", "/openai/v1/responses", None, br#"{"model":"prod-4o","stream":true}"#);
        assert_eq!((r.endpoint, r.model.as_deref(), r.stream), (Endpoint::Responses, Some("prod-4o"), true));
        assert_eq!(inspect("GET", "/openai/v1/models", None, b"").endpoint, Endpoint::ListModels);
        assert_eq!(
            inspect("GET", "/openai/models", Some("api-version=2024-10-21"), b"").endpoint,
            Endpoint::ListModels
        );
        let no_operation = inspect("GET", "/openai/deployments/x", None, b"");
        assert_eq!((no_operation.endpoint, no_operation.model), (Endpoint::Other, None));
    }
}
