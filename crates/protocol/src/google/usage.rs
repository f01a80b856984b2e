//! Gemini `usageMetadata` into [`Usage`] buckets: `promptTokenCount` includes
//! `cachedContentTokenCount`, so input = prompt − cached (+ `toolUsePromptTokenCount`);
//! `candidatesTokenCount` is output and `thoughtsTokenCount` (separate from it) reasoning.

use serde::Deserialize;

use crate::Usage;
use crate::json_scan::{count, minus};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawUsage {
    #[serde(default, deserialize_with = "count")]
    prompt_token_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    cached_content_token_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    tool_use_prompt_token_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    candidates_token_count: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    thoughts_token_count: Option<i64>,
}

impl RawUsage {
    /// Whether the object carries any count (Vertex sends `{"trafficType": ...}` alone on
    /// intermediate chunks).
    pub(crate) fn has_counts(&self) -> bool {
        self.prompt_token_count.is_some()
            || self.cached_content_token_count.is_some()
            || self.tool_use_prompt_token_count.is_some()
            || self.candidates_token_count.is_some()
            || self.thoughts_token_count.is_some()
    }

    pub(crate) fn normalize(&self) -> Usage {
        let cached = self.cached_content_token_count.unwrap_or(0);
        Usage {
            input: minus(self.prompt_token_count.unwrap_or(0), cached)
                .saturating_add(self.tool_use_prompt_token_count.unwrap_or(0)),
            cached_input: cached,
            output: self.candidates_token_count.unwrap_or(0),
            reasoning: self.thoughts_token_count.unwrap_or(0),
            ..Usage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn buckets() {
        let u: RawUsage = serde_json::from_str(
            r#"{"promptTokenCount": 12000, "cachedContentTokenCount": 10240, "candidatesTokenCount": 350,
                "thoughtsTokenCount": 812, "toolUsePromptTokenCount": 5, "totalTokenCount": 13167,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12000}]}"#,
        )
        .unwrap();
        assert_eq!(
            u.normalize(),
            Usage { input: 1765, cached_input: 10240, output: 350, reasoning: 812, ..Usage::default() }
        );
        let empty: RawUsage = serde_json::from_str(r#"{"trafficType": "ON_DEMAND"}"#).unwrap();
        assert!(!empty.has_counts());
    }
}
