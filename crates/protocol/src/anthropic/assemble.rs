//! Anthropic Messages responses read back as a message (transcripts): `content[]` blocks
//! (`text`, `thinking`, `tool_use`) of a body, or the stream's `content_block_start` /
//! `content_block_delta` events (`text_delta`, `thinking_delta`, `input_json_delta`), tool
//! calls keyed by block index. Also used by Bedrock's InvokeModel for Claude.

use crate::wire::{Assembled, ToolCall, json_text, str_of};
use serde_json::Value;

pub(crate) fn body(v: &Value, out: &mut Assembled) {
    let Some(blocks) = v.get("content").and_then(Value::as_array) else { return };
    for b in blocks {
        match str_of(b, "type") {
            "text" => out.text.push_str(str_of(b, "text")),
            "thinking" => out.thinking.push_str(str_of(b, "thinking")),
            "tool_use" | "server_tool_use" => out.push_tool(ToolCall {
                id: b.get("id").and_then(Value::as_str).map(str::to_string),
                name: str_of(b, "name").to_string(),
                arguments: json_text(b.get("input")),
            }),
            _ => {}
        }
    }
}

pub(crate) fn event(v: &Value, out: &mut Assembled) {
    let key = v.get("index").and_then(Value::as_i64).unwrap_or(0).to_string();
    match str_of(v, "type") {
        "content_block_start" => {
            let b = v.get("content_block").unwrap_or(&Value::Null);
            match str_of(b, "type") {
                "tool_use" | "server_tool_use" => {
                    let t = out.tool(&key);
                    t.id = b.get("id").and_then(Value::as_str).map(str::to_string);
                    t.name = str_of(b, "name").to_string();
                }
                "text" => out.text.push_str(str_of(b, "text")),
                "thinking" => out.thinking.push_str(str_of(b, "thinking")),
                _ => {}
            }
        }
        "content_block_delta" => {
            let d = v.get("delta").unwrap_or(&Value::Null);
            match str_of(d, "type") {
                "text_delta" => out.text.push_str(str_of(d, "text")),
                "thinking_delta" => out.thinking.push_str(str_of(d, "thinking")),
                "input_json_delta" => out.tool(&key).arguments.push_str(str_of(d, "partial_json")),
                _ => {}
            }
        }
        _ => {}
    }
}
