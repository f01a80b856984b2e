//! A request's input messages in the OpenTelemetry GenAI conventions' parts format, for the
//! `gen_ai.input.messages` span attribute:
//! `[{"role":"user","parts":[{"type":"text","content":"…"}]}, …]`.
//!
//! One reader serves every family, since their shapes differ only in member names: the message
//! list is `messages` (OpenAI chat, Anthropic, Bedrock Converse and Claude InvokeModel),
//! `contents` (Gemini) or `input` (OpenAI Responses: a string or a list of items); a message's
//! content is `content` or `parts`, a string or a list of parts whose text is `text`. System
//! instructions (`system`, Gemini `systemInstruction`, Responses `instructions`) become a leading
//! `system` message. Gemini's `model` role is `assistant`. A part without text (an image, a
//! tool call or result) keeps only its `type` (never its payload: images and files stay out of
//! traces).
//!
//! Only called when the provider's `transcripts.record_input_messages` toggle is on and the
//! span is recorded: it parses the body (`serde_json`), which the request path otherwise never
//! does.

use serde_json::{Value, json};

fn text_parts(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "content": s})],
        Value::Array(items) => items
            .iter()
            .map(|p| match (p.get("text").and_then(Value::as_str), p.as_str()) {
                (Some(t), _) | (None, Some(t)) => json!({"type": "text", "content": t}),
                (None, None) => {
                    let kind = p.get("type").and_then(Value::as_str).map_or_else(
                        || p.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_else(|| "other".into()),
                        str::to_string,
                    );
                    json!({"type": kind})
                }
            })
            .collect(),
        Value::Object(_) => text_parts(&Value::Array(vec![content.clone()])),
        _ => Vec::new(),
    }
}

fn message(m: &Value) -> Option<Value> {
    let role = match m.get("role").and_then(Value::as_str).unwrap_or("user") {
        "model" => "assistant",
        r => r,
    };
    let content = m.get("content").or_else(|| m.get("parts"))?;
    Some(json!({"role": role, "parts": text_parts(content)}))
}

/// The input messages of a JSON request body, serialised; `None` when the body has none.
pub fn input_messages(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let mut out = Vec::new();
    let system = obj
        .get("system")
        .or_else(|| obj.get("systemInstruction").or_else(|| obj.get("system_instruction")).and_then(|s| s.get("parts")))
        .or_else(|| obj.get("instructions"));
    if let Some(s) = system {
        let parts = text_parts(s);
        if !parts.is_empty() {
            out.push(json!({"role": "system", "parts": parts}));
        }
    }
    match obj.get("messages").or_else(|| obj.get("contents")).or_else(|| obj.get("input")) {
        Some(Value::String(s)) => out.push(json!({"role": "user", "parts": text_parts(&Value::String(s.clone()))})),
        Some(Value::Array(items)) => out.extend(items.iter().filter_map(message)),
        _ => {}
    }
    (!out.is_empty()).then(|| Value::Array(out).to_string())
}

/// The output message of an assembled response (text, thinking, tool calls), serialised in the
/// same parts format: one `assistant` message whose parts are `reasoning`, `text` and
/// `tool_call` (arguments as JSON when they parse, else as written). `None` when the response
/// carried none of them. No `finish_reason`: the assembly does not keep it.
pub fn output_messages(a: &crate::wire::Assembled) -> Option<String> {
    let mut parts = Vec::new();
    if !a.thinking.is_empty() {
        parts.push(json!({"type": "reasoning", "content": a.thinking}));
    }
    if !a.text.is_empty() {
        parts.push(json!({"type": "text", "content": a.text}));
    }
    for t in &a.tool_calls {
        let arguments =
            serde_json::from_str::<Value>(&t.arguments).unwrap_or_else(|_| Value::String(t.arguments.clone()));
        let mut call = json!({"type": "tool_call", "name": t.name, "arguments": arguments});
        if let (Some(id), Some(o)) = (&t.id, call.as_object_mut()) {
            o.insert("id".into(), Value::String(id.clone()));
        }
        parts.push(call);
    }
    (!parts.is_empty()).then(|| json!([{"role": "assistant", "parts": parts}]).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assembled_answer_is_one_assistant_message() {
        let mut a = crate::wire::Assembled::default();
        a.text = "hello".into();
        a.thinking = "hmm".into();
        let t = a.tool("0");
        t.id = Some("call_1".into());
        t.name = "get_weather".into();
        t.arguments = r#"{"city":"Oslo"}"#.into();
        let v: Value = output_messages(&a).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null);
        assert_eq!(
            v,
            json!([{"role": "assistant", "parts": [
                {"type": "reasoning", "content": "hmm"},
                {"type": "text", "content": "hello"},
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}]}])
        );
        assert_eq!(output_messages(&crate::wire::Assembled::default()), None);
    }

    fn parsed(body: &str) -> Value {
        input_messages(body.as_bytes()).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null)
    }

    #[test]
    fn every_familys_messages_in_the_parts_format() {
        let openai = parsed(
            r#"{"model":"m","messages":[{"role":"system","content":"be brief"},
               {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:xyz"}}]}]}"#,
        );
        assert_eq!(
            openai,
            json!([{"role":"system","parts":[{"type":"text","content":"be brief"}]},
                   {"role":"user","parts":[{"type":"text","content":"hi"},{"type":"image_url"}]}])
        );
        let anthropic = parsed(r#"{"system":"be brief","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(
            anthropic,
            json!([{"role":"system","parts":[{"type":"text","content":"be brief"}]},
                   {"role":"user","parts":[{"type":"text","content":"hi"}]}])
        );
        let gemini = parsed(
            r#"{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hi"}]},{"role":"model","parts":[{"text":"yo"}]}]}"#,
        );
        assert_eq!(gemini[2], json!({"role":"assistant","parts":[{"type":"text","content":"yo"}]}));
        assert_eq!(gemini[0]["role"], "system");
        let converse = parsed(r#"{"messages":[{"role":"user","content":[{"text":"hi"},{"image":{"bytes":"AAAA"}}]}]}"#);
        assert_eq!(converse, json!([{"role":"user","parts":[{"type":"text","content":"hi"},{"type":"image"}]}]));
        let responses = parsed(r#"{"model":"m","instructions":"be brief","input":"hi"}"#);
        assert_eq!(responses[1], json!({"role":"user","parts":[{"type":"text","content":"hi"}]}));
    }

    #[test]
    fn no_messages_no_attribute() {
        assert_eq!(input_messages(b"not json"), None);
        assert_eq!(input_messages(br#"{"model":"m"}"#), None);
        assert!(input_messages(br#"{"input":["a","b"]}"#).is_none(), "embedding inputs are not messages");
    }
}
