//! The Bedrock control-plane answers Bedrock clients fetch through the runtime endpoint they
//! were given (Claude Code in Bedrock mode lists inference profiles at start):
//! `ListInferenceProfiles` (`{"inferenceProfileSummaries": [...], "nextToken"}`),
//! `GetInferenceProfile` (one summary-shaped object) and `ListFoundationModels`
//! (`{"modelSummaries": [...]}`), narrowed to what a provider allows. Kept elements keep their
//! bytes; other members (`nextToken`) pass unchanged.

use serde::Deserialize;

use crate::wire::filter_list_by;

/// A control-plane call a Bedrock client makes on the proxy URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlCall {
    /// `GET /inference-profiles`
    ListInferenceProfiles,
    /// `GET /inference-profiles/{inferenceProfileIdentifier}`
    GetInferenceProfile,
    /// `GET /foundation-models`
    ListFoundationModels,
}

impl ControlCall {
    /// The control-plane call a `GET` of `path` (raw, below the proxy URL) is, if any.
    pub fn of(method: &str, path: &str) -> Option<ControlCall> {
        if method != "GET" {
            return None;
        }
        match path.trim_end_matches('/') {
            "/inference-profiles" => Some(ControlCall::ListInferenceProfiles),
            "/foundation-models" => Some(ControlCall::ListFoundationModels),
            p => p
                .strip_prefix("/inference-profiles/")
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .map(|_| ControlCall::GetInferenceProfile),
        }
    }

    /// The AWS operation name, for messages and logs.
    pub fn operation(self) -> &'static str {
        match self {
            ControlCall::ListInferenceProfiles => "ListInferenceProfiles",
            ControlCall::GetInferenceProfile => "GetInferenceProfile",
            ControlCall::ListFoundationModels => "ListFoundationModels",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default)]
    inference_profile_id: Option<String>,
    #[serde(default)]
    inference_profile_arn: Option<String>,
    #[serde(default)]
    models: Vec<ProfileModel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileModel {
    #[serde(default)]
    model_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoundationModel {
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    model_arn: Option<String>,
}

/// The foundation-model id of a foundation-model ARN (`arn:aws:bedrock:us-east-1::foundation-model/x` → `x`).
fn foundation_model_id(arn: &str) -> Option<&str> {
    arn.split_once(":foundation-model/").map(|(_, id)| id)
}

/// Whether one inference profile (a summary or a `GetInferenceProfile` body) passes: its id
/// or ARN is allowed, or one of its foundation models (by id or ARN) is. `None` when the JSON
/// is not a profile object.
pub fn profile_allowed(json: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<bool> {
    let p = serde_json::from_slice::<Profile>(json).ok()?;
    let own = p.inference_profile_id.iter().chain(p.inference_profile_arn.iter()).any(|id| allowed(id));
    let inner = p
        .models
        .iter()
        .filter_map(|m| m.model_arn.as_deref())
        .any(|arn| allowed(arn) || foundation_model_id(arn).is_some_and(allowed));
    Some(own || inner)
}

/// Narrows a control-plane list answer to what `allowed` accepts (model or profile ids and
/// ARNs). `None` when the body is not the expected shape, or `call` is not a list.
pub fn filter_control_list(call: ControlCall, body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    match call {
        ControlCall::ListInferenceProfiles => {
            filter_list_by(body, "inferenceProfileSummaries", &|el| profile_allowed(el, allowed).unwrap_or(false))
        }
        ControlCall::ListFoundationModels => filter_list_by(body, "modelSummaries", &|el| {
            serde_json::from_slice::<FoundationModel>(el)
                .is_ok_and(|m| m.model_id.iter().chain(m.model_arn.iter()).any(|id| allowed(id)))
        }),
        ControlCall::GetInferenceProfile => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calls_by_path() {
        assert_eq!(ControlCall::of("GET", "/inference-profiles"), Some(ControlCall::ListInferenceProfiles));
        assert_eq!(ControlCall::of("GET", "/inference-profiles/"), Some(ControlCall::ListInferenceProfiles));
        assert_eq!(
            ControlCall::of("GET", "/inference-profiles/us.anthropic.claude-sonnet-4-6"),
            Some(ControlCall::GetInferenceProfile)
        );
        assert_eq!(ControlCall::of("GET", "/foundation-models"), Some(ControlCall::ListFoundationModels));
        assert_eq!(ControlCall::of("POST", "/inference-profiles"), None);
        assert_eq!(ControlCall::of("GET", "/model/x/converse"), None);
        assert_eq!(ControlCall::of("GET", "/inference-profiles/a/b"), None);
    }

    #[test]
    fn profiles_pass_by_id_arn_or_model() {
        let body = br#"{"inferenceProfileSummaries": [
            {"inferenceProfileId": "us.anthropic.claude-sonnet-4-6", "inferenceProfileArn": "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
             "models": [{"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6"}]},
            {"inferenceProfileId": "global.anthropic.claude-haiku-4-5-20251001-v1:0", "inferenceProfileArn": "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-haiku-4-5-20251001-v1:0",
             "models": [{"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"}]},
            {"inferenceProfileId": "us.amazon.nova-pro-v1:0", "models": [{"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"}]}
        ], "nextToken": "2"}"#;
        let ids = |out: Vec<u8>| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["nextToken"], "2");
            v["inferenceProfileSummaries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["inferenceProfileId"].as_str().unwrap().to_string())
                .collect()
        };
        let by_id = filter_control_list(ControlCall::ListInferenceProfiles, body, &|m| {
            m == "global.anthropic.claude-haiku-4-5-20251001-v1:0"
        });
        assert_eq!(ids(by_id.unwrap()), ["global.anthropic.claude-haiku-4-5-20251001-v1:0"]);
        let by_model =
            filter_control_list(ControlCall::ListInferenceProfiles, body, &|m| m == "anthropic.claude-sonnet-4-6");
        assert_eq!(ids(by_model.unwrap()), ["us.anthropic.claude-sonnet-4-6"]);
        assert_eq!(
            ids(filter_control_list(ControlCall::ListInferenceProfiles, body, &|_| false).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(profile_allowed(b"[1]", &|_| true), None);
    }

    #[test]
    fn foundation_models_pass_by_id_or_arn() {
        let body = br#"{"modelSummaries": [{"modelId": "amazon.nova-pro-v1:0", "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"}, {"modelId": "anthropic.claude-sonnet-4-6"}]}"#;
        let out = filter_control_list(ControlCall::ListFoundationModels, body, &|m| m == "anthropic.claude-sonnet-4-6");
        assert_eq!(
            String::from_utf8(out.unwrap()).unwrap(),
            r#"{"modelSummaries": [{"modelId": "anthropic.claude-sonnet-4-6"}]}"#
        );
        assert_eq!(filter_control_list(ControlCall::GetInferenceProfile, body, &|_| true), None);
    }
}
