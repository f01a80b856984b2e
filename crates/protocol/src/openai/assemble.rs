//! OpenAI responses read back as a message (transcripts): Chat Completions (`choices[].message`
//! / `choices[].delta`, tool calls keyed by their `index` across chunks), legacy Completions
//! (`choices[].text`) and the Responses API (`output[]` items; stream events
//! `response.output_text.delta`, `response.reasoning_*.delta`, `response.output_item.done`).
//! Reasoning text some compatible servers add (`reasoning_content`, `reasoning`) counts as
//! thinking. Also used by Azure OpenAI.

use crate::wire::{Assembled, ToolCall, json_text, str_of};
use serde_json::Value;

/// Content that is a string, or an array of parts with `text`.
fn content_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().map(|p| str_of(p, "text")).collect(),
        _ => String::new(),
    }
}

fn reasoning(m: &Value) -> String {
    let r = content_text(m.get("reasoning_content"));
    if r.is_empty() { content_text(m.get("reasoning")) } else { r }
}

/// A Responses API output item.
fn output_item(item: &Value, out: &mut Assembled) {
    match str_of(item, "type") {
        "message" => {
            if let Some(parts) = item.get("content").and_then(Value::as_array) {
                for p in parts {
                    out.text.push_str(str_of(p, "text"));
                }
            }
        }
        "reasoning" => {
            for list in ["summary", "content"] {
                if let Some(parts) = item.get(list).and_then(Value::as_array) {
                    for p in parts {
                        out.thinking.push_str(str_of(p, "text"));
                    }
                }
            }
        }
        "function_call" | "custom_tool_call" => out.push_tool(ToolCall {
            id: item.get("call_id").and_then(Value::as_str).map(str::to_string),
            name: str_of(item, "name").to_string(),
            arguments: json_text(item.get("arguments").or_else(|| item.get("input"))),
        }),
        _ => {}
    }
}

pub(crate) fn body(v: &Value, out: &mut Assembled) {
    if let Some(items) = v.get("output").and_then(Value::as_array) {
        for item in items {
            output_item(item, out);
        }
        return;
    }
    let Some(choices) = v.get("choices").and_then(Value::as_array) else { return };
    for c in choices.iter().take(1) {
        if let Some(t) = c.get("text").and_then(Value::as_str) {
            out.text.push_str(t);
        }
        let Some(m) = c.get("message") else { continue };
        out.thinking.push_str(&reasoning(m));
        out.text.push_str(&content_text(m.get("content")));
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                let f = call.get("function").unwrap_or(&Value::Null);
                out.push_tool(ToolCall {
                    id: call.get("id").and_then(Value::as_str).map(str::to_string),
                    name: str_of(f, "name").to_string(),
                    arguments: json_text(f.get("arguments")),
                });
            }
        }
    }
}

pub(crate) fn event(v: &Value, out: &mut Assembled) {
    match str_of(v, "type") {
        "response.output_text.delta" | "response.refusal.delta" => out.text.push_str(str_of(v, "delta")),
        "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
            out.thinking.push_str(str_of(v, "delta"));
        }
        "response.output_item.done" => {
            if let Some(item) = v.get("item").filter(|i| str_of(i, "type").ends_with("call")) {
                output_item(item, out);
            }
        }
        _ => {}
    }
    let Some(choices) = v.get("choices").and_then(Value::as_array) else { return };
    for c in choices.iter().filter(|c| c.get("index").and_then(Value::as_i64).unwrap_or(0) == 0) {
        if let Some(t) = c.get("text").and_then(Value::as_str) {
            out.text.push_str(t);
        }
        let Some(d) = c.get("delta") else { continue };
        out.thinking.push_str(&reasoning(d));
        out.text.push_str(&content_text(d.get("content")));
        if let Some(calls) = d.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                let key = call.get("index").and_then(Value::as_i64).unwrap_or(0).to_string();
                let t = out.tool(&key);
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    t.id = Some(id.to_string());
                }
                let f = call.get("function").unwrap_or(&Value::Null);
                t.name.push_str(str_of(f, "name"));
                t.arguments.push_str(str_of(f, "arguments"));
            }
        }
    }
}
