//! Gemini responses read back as a message (transcripts): `candidates[0].content.parts[]`
//! (`text`, thought parts as thinking, `functionCall`), the same for a body and for each
//! streamed chunk (SSE or JSON-array element), appended in order.

use crate::wire::{Assembled, ToolCall, json_text, str_of};
use serde_json::Value;

pub(crate) fn chunk(v: &Value, out: &mut Assembled) {
    let parts = v
        .get("candidates")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("content"))
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array);
    for p in parts.into_iter().flatten() {
        if let Some(call) = p.get("functionCall") {
            out.push_tool(ToolCall {
                id: call.get("id").and_then(Value::as_str).map(str::to_string),
                name: str_of(call, "name").to_string(),
                arguments: json_text(call.get("args")),
            });
        } else if p.get("thought").and_then(Value::as_bool) == Some(true) {
            out.thinking.push_str(str_of(p, "text"));
        } else {
            out.text.push_str(str_of(p, "text"));
        }
    }
}
