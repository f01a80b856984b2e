//! Bedrock responses read back as a message (transcripts). Converse bodies
//! (`output.message.content[]`: `text`, `reasoningContent`, `toolUse`) and ConverseStream
//! frames (`contentBlockStart` / `contentBlockDelta`, tool calls keyed by block index);
//! InvokeModel bodies and `chunk` frames carry the model's own format, read as Anthropic's
//! (the base64 `bytes` of a chunk decoded first).

use crate::anthropic;
use crate::wire::{Assembled, ToolCall, json_text, str_of};
use base64::Engine as _;
use serde_json::Value;

pub(crate) fn body(v: &Value, out: &mut Assembled) {
    let Some(blocks) = v.pointer("/output/message/content").and_then(Value::as_array) else {
        anthropic::assemble::body(v, out);
        return;
    };
    for b in blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            out.text.push_str(t);
        } else if let Some(r) = b.get("reasoningContent") {
            out.thinking.push_str(r.pointer("/reasoningText/text").and_then(Value::as_str).unwrap_or(""));
        } else if let Some(t) = b.get("toolUse") {
            out.push_tool(ToolCall {
                id: t.get("toolUseId").and_then(Value::as_str).map(str::to_string),
                name: str_of(t, "name").to_string(),
                arguments: json_text(t.get("input")),
            });
        }
    }
}

pub(crate) fn frame(event: Option<&str>, v: &Value, out: &mut Assembled) {
    let key = v.get("contentBlockIndex").and_then(Value::as_i64).unwrap_or(0).to_string();
    match event {
        Some("chunk") => {
            let inner = v
                .get("bytes")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            if let Some(inner) = inner {
                anthropic::assemble::event(&inner, out);
            }
        }
        Some("contentBlockStart") => {
            if let Some(t) = v.pointer("/start/toolUse") {
                let call = out.tool(&key);
                call.id = t.get("toolUseId").and_then(Value::as_str).map(str::to_string);
                call.name = str_of(t, "name").to_string();
            }
        }
        Some("contentBlockDelta") => {
            let d = v.get("delta").unwrap_or(&Value::Null);
            if let Some(t) = d.get("text").and_then(Value::as_str) {
                out.text.push_str(t);
            } else if let Some(r) = d.get("reasoningContent") {
                out.thinking.push_str(str_of(r, "text"));
            } else if let Some(t) = d.get("toolUse") {
                out.tool(&key).arguments.push_str(str_of(t, "input"));
            }
        }
        _ => {}
    }
}
