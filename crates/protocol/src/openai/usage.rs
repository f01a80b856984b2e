//! OpenAI `usage` objects into [`Usage`] buckets. Chat/completions/embeddings report
//! `prompt_tokens` (including `prompt_tokens_details.cached_tokens`) and `completion_tokens`
//! (including `completion_tokens_details.reasoning_tokens`); the Responses API reports
//! `input_tokens` / `output_tokens` with `input_tokens_details.cached_tokens` and
//! `output_tokens_details.reasoning_tokens`. Both are read by one lenient struct.

use serde::Deserialize;

use crate::Usage;
use crate::json_scan::{count, minus};

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RawUsage {
    #[serde(default, deserialize_with = "count")]
    prompt_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    completion_tokens: Option<i64>,
    #[serde(default)]
    prompt_tokens_details: Option<InputDetails>,
    #[serde(default)]
    completion_tokens_details: Option<OutputDetails>,
    #[serde(default, deserialize_with = "count")]
    input_tokens: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    output_tokens: Option<i64>,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct InputDetails {
    #[serde(default, deserialize_with = "count")]
    cached_tokens: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct OutputDetails {
    #[serde(default, deserialize_with = "count")]
    reasoning_tokens: Option<i64>,
}

impl RawUsage {
    /// Disjoint buckets: cached tokens out of the prompt, reasoning out of the completion.
    pub(crate) fn normalize(&self) -> Usage {
        let responses_style = self.input_tokens.is_some() || self.output_tokens.is_some();
        let (prompt, completion, input_details, output_details) = if responses_style {
            (self.input_tokens, self.output_tokens, &self.input_tokens_details, &self.output_tokens_details)
        } else {
            (self.prompt_tokens, self.completion_tokens, &self.prompt_tokens_details, &self.completion_tokens_details)
        };
        let cached = input_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0);
        let reasoning = output_details.as_ref().and_then(|d| d.reasoning_tokens).unwrap_or(0);
        Usage {
            input: minus(prompt.unwrap_or(0), cached),
            cached_input: cached,
            output: minus(completion.unwrap_or(0), reasoning),
            reasoning,
            ..Usage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn norm(s: &str) -> Usage {
        serde_json::from_str::<RawUsage>(s).unwrap().normalize()
    }

    #[test]
    fn chat_style() {
        let u = norm(
            r#"{"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0}}"#,
        );
        assert_eq!(u, Usage { input: 86, cached_input: 1920, output: 108, reasoning: 192, ..Usage::default() });
    }

    #[test]
    fn responses_style() {
        let u = norm(
            r#"{"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40},
                "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 150}"#,
        );
        assert_eq!(u, Usage { input: 60, cached_input: 40, output: 30, reasoning: 20, ..Usage::default() });
    }

    #[test]
    fn embeddings_and_odd_shapes() {
        assert_eq!(norm(r#"{"prompt_tokens": 8, "total_tokens": 8}"#), Usage { input: 8, ..Usage::default() });
        let u = norm(r#"{"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": null}"#);
        assert_eq!(u, Usage { input: 5, output: 2, ..Usage::default() });
        let u = norm(r#"{"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}"#);
        assert_eq!(u, Usage { input: 0, cached_input: 9, ..Usage::default() });
    }
}
