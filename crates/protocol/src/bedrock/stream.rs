//! Bedrock responses on the side.
//!
//! Streams are AWS event-stream frames ([`super::eventstream`]):
//! - InvokeModelWithResponseStream: `chunk` events whose JSON payload `{"bytes": "<base64>"}`
//!   holds one chunk of the model's own stream (for Anthropic models a Messages stream event,
//!   whose `message_start` / `message_delta` usage is merged as in the Anthropic family); the
//!   last chunk also carries `amazon-bedrock-invocationMetrics`, Bedrock's totals.
//! - ConverseStream: `messageStart`, `contentBlockDelta`, …, and a `metadata` event whose
//!   `usage` is the Converse usage.
//! - `:message-type: exception` (e.g. `modelStreamErrorException`, `throttlingException`) and
//!   `error` frames inside a 200 are recorded as the stream's error.
//!
//! Non-streamed bodies: the top-level `usage` member (Converse camelCase, an Anthropic
//! snake_case object for Anthropic models on InvokeModel, Nova's camelCase), or Llama's
//! `prompt_token_count` / `generation_token_count`; plus the token-count response headers.

use base64::Engine;
use serde::Deserialize;

use crate::Usage;
use crate::anthropic;
use crate::bedrock::usage::{ConverseUsage, InvocationMetrics, Totals, combine};
use crate::eventstream::Frame;
use crate::json_scan::{ErrorField, count, short};
use crate::wire::{Endpoint, StreamDecoder};

/// Top-level members of a non-streamed body that carry usage.
pub(crate) const BODY_MEMBERS: &[&str] =
    &["usage", "amazon-bedrock-invocationMetrics", "prompt_token_count", "generation_token_count"];

#[derive(Debug)]
pub(crate) struct Decoder {
    /// Bedrock's totals: token-count headers or invocation metrics.
    totals: Option<Totals>,
    /// Converse usage (body or `metadata` event), or Nova's camelCase invoke usage.
    converse: Option<ConverseUsage>,
    /// The model's own Anthropic-shaped usage on InvokeModel.
    anthropic: anthropic::stream::Decoder,
    /// Llama-style top-level counts.
    llama: (Option<i64>, Option<i64>),
    error: Option<String>,
    /// The stream's final event was seen: ConverseStream's `metadata`, or the
    /// InvokeModelWithResponseStream chunk carrying `amazon-bedrock-invocationMetrics`.
    terminal: bool,
    /// ConverseStream's `messageStop` was seen: generation is over, the `metadata` (usage) is next.
    stopped: bool,
}

#[derive(Deserialize)]
struct ChunkPayload {
    #[serde(default)]
    bytes: Option<String>,
}

#[derive(Deserialize)]
struct InnerChunk {
    #[serde(default, rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

#[derive(Deserialize)]
struct MetadataEvent {
    #[serde(default)]
    usage: Option<ConverseUsage>,
}

#[derive(Deserialize)]
struct ExceptionPayload {
    #[serde(default, alias = "Message")]
    message: Option<ErrorField>,
}

#[derive(Deserialize)]
struct UsageStyle {
    #[serde(default)]
    input_tokens: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    output_tokens: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Count(#[serde(deserialize_with = "count")] Option<i64>);

impl Decoder {
    pub(crate) fn new(endpoint: Endpoint) -> Decoder {
        Decoder {
            totals: None,
            converse: None,
            anthropic: anthropic::stream::Decoder::new(endpoint),
            llama: (None, None),
            error: None,
            terminal: false,
            stopped: false,
        }
    }

    /// A response header: the token-count headers are Bedrock's totals.
    pub(crate) fn on_header(&mut self, name: &str, value: &str) {
        let mut t = self.totals.unwrap_or_default();
        if t.set_header(name, value) {
            self.totals = Some(t);
        }
    }

    pub(crate) fn on_frame(&mut self, f: &Frame) {
        match f.message_type.as_deref() {
            Some("exception") => {
                if self.error.is_none() {
                    let text = serde_json::from_slice::<ExceptionPayload>(&f.payload)
                        .ok()
                        .and_then(|p| p.message)
                        .and_then(|m| m.message());
                    self.error = text.or_else(|| f.exception_type.clone()).or_else(|| Some("exception".into()));
                }
            }
            Some("error") => {
                if self.error.is_none() {
                    self.error =
                        f.error_message.clone().or_else(|| f.error_code.clone()).or_else(|| Some("error".into()));
                    self.error = self.error.as_deref().map(short);
                }
            }
            _ => match f.event_type.as_deref() {
                Some("chunk") => self.on_chunk(&f.payload),
                Some("messageStop") => self.stopped = true,
                Some("metadata") => {
                    self.terminal = true;
                    if let Ok(MetadataEvent { usage: Some(u) }) = serde_json::from_slice(&f.payload) {
                        self.converse = Some(u);
                    }
                }
                _ => {}
            },
        }
    }

    /// An InvokeModelWithResponseStream `chunk`: the base64 model chunk.
    fn on_chunk(&mut self, payload: &[u8]) {
        let Ok(ChunkPayload { bytes: Some(b64) }) = serde_json::from_slice(payload) else {
            return;
        };
        let Ok(inner) = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) else {
            return;
        };
        self.anthropic.on_element(&inner);
        if let Ok(InnerChunk { metrics: Some(m) }) = serde_json::from_slice(&inner) {
            self.totals = Some(m.totals());
            self.terminal = true;
        }
    }

    pub(crate) fn on_member(&mut self, name: &str, raw: &[u8]) {
        match name {
            "usage" => {
                let snake = serde_json::from_slice::<UsageStyle>(raw)
                    .is_ok_and(|s| s.input_tokens.is_some() || s.output_tokens.is_some());
                if snake {
                    self.anthropic.on_member(name, raw);
                } else if let Ok(Some(u)) = serde_json::from_slice::<Option<ConverseUsage>>(raw) {
                    self.converse = Some(u);
                }
            }
            "amazon-bedrock-invocationMetrics" => {
                if let Ok(m) = serde_json::from_slice::<InvocationMetrics>(raw) {
                    self.totals = Some(m.totals());
                }
            }
            "prompt_token_count" => self.llama.0 = serde_json::from_slice::<Count>(raw).ok().and_then(|c| c.0),
            "generation_token_count" => self.llama.1 = serde_json::from_slice::<Count>(raw).ok().and_then(|c| c.0),
            _ => {}
        }
    }

    pub(crate) fn usage(&self) -> Option<Usage> {
        let model =
            self.converse.as_ref().map(ConverseUsage::normalize).or_else(|| self.anthropic.usage()).or_else(|| {
                match self.llama {
                    (None, None) => None,
                    (i, o) => Some(Usage { input: i.unwrap_or(0), output: o.unwrap_or(0), ..Usage::default() }),
                }
            });
        combine(self.totals, model)
    }

    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref().or_else(|| self.anthropic.error())
    }

    pub(crate) fn terminal(&self) -> bool {
        self.terminal
    }

    pub(crate) fn generation_ended(&self) -> bool {
        self.stopped
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;

    fn event(kind: &str, payload: &str) -> Frame {
        Frame {
            message_type: Some("event".into()),
            event_type: Some(kind.into()),
            payload: Bytes::from(payload.to_string()),
            ..Frame::default()
        }
    }

    fn chunk(inner: &str) -> Frame {
        let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
        event("chunk", &format!(r#"{{"bytes":"{b64}","p":"abc"}}"#))
    }

    #[test]
    fn invoke_stream_metrics_win_and_anthropic_splits_writes() {
        let mut d = Decoder::new(Endpoint::InvokeStream);
        d.on_frame(&chunk(
            r#"{"type":"message_start","message":{"usage":{"input_tokens":21,"output_tokens":1,"cache_read_input_tokens":400,"cache_creation_input_tokens":90,"cache_creation":{"ephemeral_5m_input_tokens":30,"ephemeral_1h_input_tokens":60}}}}"#,
        ));
        d.on_frame(&chunk(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#));
        d.on_frame(&chunk(
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":17}}"#,
        ));
        assert_eq!(
            d.usage(),
            Some(Usage {
                input: 21,
                output: 17,
                cached_input: 400,
                cache_write_5m: 30,
                cache_write_1h: 60,
                ..Usage::default()
            })
        );
        assert!(!d.terminal());
        d.on_frame(&chunk(
            r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":21,"outputTokenCount":17,"invocationLatency":1200,"firstByteLatency":300,"cacheReadInputTokenCount":400,"cacheWriteInputTokenCount":90}}"#,
        ));
        assert_eq!(
            d.usage(),
            Some(Usage {
                input: 21,
                output: 17,
                cached_input: 400,
                cache_write_5m: 30,
                cache_write_1h: 60,
                ..Usage::default()
            })
        );
        assert_eq!(d.error(), None);
        assert!(d.terminal(), "the invocation metrics chunk ends an invoke stream");
    }

    #[test]
    fn converse_stream_metadata_and_exceptions() {
        let mut d = Decoder::new(Endpoint::ConverseStream);
        d.on_frame(&event("messageStart", r#"{"role":"assistant"}"#));
        assert!(!d.generation_ended());
        d.on_frame(&event("messageStop", r#"{"stopReason":"end_turn"}"#));
        assert!(!d.terminal(), "metadata follows messageStop");
        assert!(d.generation_ended(), "only the metadata (usage) is left");
        d.on_frame(&event(
            "metadata",
            r#"{"usage":{"inputTokens":9,"outputTokens":4,"totalTokens":113,"cacheReadInputTokens":100},"metrics":{"latencyMs":80}}"#,
        ));
        assert_eq!(d.usage(), Some(Usage { input: 9, output: 4, cached_input: 100, ..Usage::default() }));
        assert!(d.terminal());
        let ex = Frame {
            message_type: Some("exception".into()),
            exception_type: Some("throttlingException".into()),
            payload: Bytes::from_static(br#"{"message":"Too many requests, please wait before trying again."}"#),
            ..Frame::default()
        };
        d.on_frame(&ex);
        assert_eq!(d.error(), Some("Too many requests, please wait before trying again."));
        let mut d = Decoder::new(Endpoint::ConverseStream);
        d.on_frame(&Frame {
            message_type: Some("exception".into()),
            exception_type: Some("internalServerException".into()),
            ..Frame::default()
        });
        assert_eq!(d.error(), Some("internalServerException"));
    }

    #[test]
    fn non_streamed_bodies() {
        let mut d = Decoder::new(Endpoint::Converse);
        d.on_member("usage", br#"{"inputTokens":3,"outputTokens":2,"cacheWriteInputTokens":50,"cacheDetails":[{"ttl":"5m","inputTokens":50}]}"#);
        assert_eq!(d.usage(), Some(Usage { input: 3, output: 2, cache_write_5m: 50, ..Usage::default() }));

        let mut d = Decoder::new(Endpoint::Invoke);
        d.on_member("usage", br#"{"input_tokens":10,"output_tokens":6,"cache_creation_input_tokens":20,"cache_creation":{"ephemeral_1h_input_tokens":20}}"#);
        assert_eq!(d.usage(), Some(Usage { input: 10, output: 6, cache_write_1h: 20, ..Usage::default() }));
        d.on_header("X-Amzn-Bedrock-Input-Token-Count", "10");
        d.on_header("X-Amzn-Bedrock-Output-Token-Count", "6");
        d.on_header("X-Amzn-Bedrock-Cache-Write-Input-Token-Count", "25");
        assert_eq!(
            d.usage(),
            Some(Usage { input: 10, output: 6, cache_write_1h: 20, cache_write_unknown: 5, ..Usage::default() })
        );

        let mut d = Decoder::new(Endpoint::Invoke);
        d.on_member("prompt_token_count", b"11");
        d.on_member("generation_token_count", b"4");
        assert_eq!(d.usage(), Some(Usage { input: 11, output: 4, ..Usage::default() }));

        let mut d = Decoder::new(Endpoint::Invoke);
        d.on_member("usage", br#"{"inputTokens":8,"outputTokens":3,"cacheReadInputTokenCount":2}"#);
        assert_eq!(d.usage(), Some(Usage { input: 8, output: 3, cached_input: 2, ..Usage::default() }));
        assert_eq!(Decoder::new(Endpoint::Invoke).usage(), None);
    }
}
