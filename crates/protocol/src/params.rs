//! The sampling parameters of a request body that traces name (`gen_ai.request.max_tokens`,
//! `temperature`, `top_p`), read with a serde visitor that skips every other member without
//! building values. Each family spells them its own way, and the spellings do not collide, so
//! one reader serves all: OpenAI `max_tokens` / `max_completion_tokens` (chat) and
//! `max_output_tokens` (Responses); Anthropic `max_tokens`; Gemini
//! `generationConfig.{maxOutputTokens,temperature,topP}`; Bedrock Converse
//! `inferenceConfig.{maxTokens,temperature,topP}` (InvokeModel bodies are the model vendor's
//! format, Anthropic's for Claude).
//!
//! Only called when a request's span is recorded: a body that is not a JSON object, or a
//! parameter of the wrong type, gives no parameters rather than an error (the upstream judges
//! the request, not the gateway).

use serde::Deserialize;

/// What [`request_params`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestParams {
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Body {
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    max_output_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    #[serde(rename = "generationConfig", alias = "generation_config")]
    generation_config: Option<Nested>,
    #[serde(rename = "inferenceConfig")]
    inference_config: Option<Nested>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Nested {
    #[serde(alias = "maxOutputTokens", alias = "max_output_tokens")]
    #[serde(rename = "maxTokens")]
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    #[serde(rename = "topP", alias = "top_p")]
    top_p: Option<f64>,
}

/// The parameters `body` sets (all `None` when it is not a JSON object or has none).
pub fn request_params(body: &[u8]) -> RequestParams {
    // Only an object: serde would also read a struct from a JSON array, by position.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return RequestParams::default();
    }
    let Ok(b) = serde_json::from_slice::<Body>(body) else {
        return RequestParams::default();
    };
    let nested = b.generation_config.or(b.inference_config).unwrap_or_default();
    RequestParams {
        max_tokens: b.max_tokens.or(b.max_completion_tokens).or(b.max_output_tokens).or(nested.max_tokens),
        temperature: b.temperature.or(nested.temperature),
        top_p: b.top_p.or(nested.top_p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_familys_spelling() {
        let p = |s: &str| request_params(s.as_bytes());
        let openai = p(
            r#"{"model":"m","messages":[{"role":"user","content":"max_tokens"}],"max_tokens":64,"temperature":0.5,"top_p":0.9}"#,
        );
        assert_eq!(openai, RequestParams { max_tokens: Some(64), temperature: Some(0.5), top_p: Some(0.9) });
        assert_eq!(p(r#"{"max_completion_tokens":10}"#).max_tokens, Some(10));
        assert_eq!(p(r#"{"input":"x","max_output_tokens":11}"#).max_tokens, Some(11));
        let gemini = p(r#"{"contents":[],"generationConfig":{"maxOutputTokens":12,"temperature":1,"topP":0.5}}"#);
        assert_eq!(gemini, RequestParams { max_tokens: Some(12), temperature: Some(1.0), top_p: Some(0.5) });
        let converse = p(r#"{"messages":[],"inferenceConfig":{"maxTokens":13,"topP":0.25}}"#);
        assert_eq!(converse, RequestParams { max_tokens: Some(13), temperature: None, top_p: Some(0.25) });
    }

    #[test]
    fn anything_else_gives_nothing() {
        assert_eq!(request_params(b"not json"), RequestParams::default());
        assert_eq!(request_params(br#"{"max_tokens":"lots"}"#), RequestParams::default());
        assert_eq!(request_params(b"[1,2]"), RequestParams::default());
        assert_eq!(request_params(b""), RequestParams::default());
    }
}
