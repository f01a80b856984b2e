//! The Azure OpenAI fake: a resource with fixed deployments, speaking the OpenAI format on
//! Azure's paths and checking Azure's credential.
//!
//! - `POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings|responses}`
//!   needs `?api-version=` (else 404 `Resource not found`, as Azure answers); an unknown
//!   deployment is a 404 `DeploymentNotFound`.
//! - `POST /openai/v1/{…}`: the body's `model` is the deployment name; no api-version.
//! - `GET /openai/v1/models` and `GET /openai/models?api-version=…`: the deployments' models.
//! - Credential: `api-key: <key>`, or `Authorization: Bearer <key>` (an Entra ID token); a
//!   missing or wrong one is a 401 in Azure's `{"error":{"code":"401","message"}}` shape.
//!
//! Bodies and usage are the OpenAI fake's ([`super::openai`]), except that `model` in every
//! reply is the deployment's model, as Azure reports it.

use super::*;

/// The deployments of the fake resource: `(deployment name, model it reports)`. The last
/// one's model is not in the catalog (a fine-tune), so it is priced by the deployment name.
pub const DEPLOYMENTS: [(&str, &str); 3] =
    [("chat", "gpt-4o-2024-08-06"), ("mini", "gpt-4o-mini-2024-07-18"), ("tuned", "ft-gpt-4o-contoso-7f3a")];

fn reply(status: u16, body: &Value) -> Reply {
    Reply::raw(status, "application/json", pretty(body)).with_header("apim-request-id", "azure-req-fake")
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    reply(status, &json!({"error": {"code": code, "message": message}}))
}

pub(super) fn serve(req: &Received, credential: Option<&str>, pace: Duration) -> Reply {
    if let Some(expected) = credential {
        let presented =
            req.header("api-key").or_else(|| req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")));
        if presented != Some(expected) {
            return error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
            );
        }
    }
    let path = req.path.as_str();
    let has_version = req.query.as_deref().is_some_and(|q| q.split('&').any(|p| p.starts_with("api-version=")));
    if req.method == "GET" && (path == "/openai/v1/models" || (path == "/openai/models" && has_version)) {
        let data: Vec<Value> = DEPLOYMENTS
            .iter()
            .map(|(_, m)| json!({"id": m, "object": "model", "created": CREATED, "owned_by": "system"}))
            .collect();
        return reply(200, &json!({"object": "list", "data": data}));
    }
    let (deployment, operation) = if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let Some((d, op)) = rest.split_once('/') else {
            return error(404, "404", "Resource not found");
        };
        if !has_version {
            return error(404, "404", "Resource not found");
        }
        (Some(d.to_string()), op)
    } else if let Some(op) = path.strip_prefix("/openai/v1/") {
        (None, op)
    } else {
        return error(404, "404", "Resource not found");
    };
    let Some(mut body) = json_object(req) else {
        return error(400, "BadRequest", "The request body is not valid JSON.");
    };
    let Some(deployment) = deployment.or_else(|| body.get("model").and_then(Value::as_str).map(str::to_string)) else {
        return error(400, "BadRequest", "model is required on the v1 API: the deployment name");
    };
    let Some((_, model)) = DEPLOYMENTS.iter().find(|(d, _)| *d == deployment) else {
        return error(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        );
    };
    body["model"] = json!(model);
    let inner = Received {
        method: req.method.clone(),
        path: format!("/v1/{operation}"),
        query: None,
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_string()),
        peer: req.peer,
    };
    openai::serve(&inner, None, pace)
}
