//! The Requests page (`/requests`: the request log with filter chips, keyset pages, a row per
//! request linking to `/requests/{id}`) and the Transcripts page (`/transcripts`:
//! conversations; `/transcripts/{id}`: its turns in a **Chat** view — messages as bubbles, tool
//! calls and results collapsible, thinking collapsed, per-turn tokens, cost and latency — or a
//! **Detailed** view with the raw bodies). Readers see everything but bodies; admins see bodies,
//! and each body read is logged as on the API (both call `admin::requests::detail`).
//!
//! Reading request messages for bubbles is shape sniffing over the recorded JSON (`messages`,
//! Gemini `contents`, Responses `input`, a `system` prompt); the response side is the message
//! the protocol crate assembled.

use super::{Console, ConsoleError, Layout, Session, format, html_page};
use crate::admin::conversations::{self, ConversationParams};
use crate::admin::paging;
use crate::admin::requests::{self, RequestDetail, RequestParams, RequestSummary};
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tollgate_core::Role;

/// Filters the Requests page takes (and shows as chips), in display order.
const FILTERS: [&str; 7] = ["provider", "model", "user", "agent", "status", "conversation", "start"];

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub status: Option<String>,
    pub conversation: Option<String>,
    pub start: Option<String>,
    pub after: Option<String>,
    pub view: Option<String>,
    /// The "+ Filter" builder: `field` (one of [`FILTERS`]) and its `value`; the page
    /// redirects to the URL with that filter set (replacing the field's previous value).
    pub field: Option<String>,
    pub value: Option<String>,
}

impl ListQuery {
    fn get(&self, k: &str) -> Option<&str> {
        match k {
            "provider" => self.provider.as_deref(),
            "model" => self.model.as_deref(),
            "user" => self.user.as_deref(),
            "agent" => self.agent.as_deref(),
            "status" => self.status.as_deref(),
            "conversation" => self.conversation.as_deref(),
            "start" => self.start.as_deref(),
            _ => None,
        }
        .filter(|v| !v.is_empty())
    }

    /// `path?k=v&…` of the set filters, minus `without`, plus `extra`.
    fn url(&self, path: &str, without: Option<&str>, extra: &[(&str, &str)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for k in FILTERS {
            if Some(k) != without
                && let Some(v) = self.get(k)
            {
                q.append_pair(k, v);
            }
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        let q = q.finish();
        if q.is_empty() { path.to_string() } else { format!("{path}?{q}") }
    }
}

/// The URL `q` names once the builder's `field=value` is applied, if it was given.
fn added_filter_url(q: &ListQuery) -> Option<String> {
    let field = q.field.as_deref().filter(|f| FILTERS.contains(f))?;
    let value = q.value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
    Some(q.url("/requests", Some(field), &[(field, value)]))
}

/// One filter chip.
#[derive(Debug)]
pub struct Chip {
    pub dim: &'static str,
    pub label: String,
    pub remove_url: String,
}

/// One row of the request table.
#[derive(Debug)]
pub struct Row {
    pub id: String,
    pub time: String,
    pub provider: String,
    pub model: String,
    pub who: String,
    pub status: String,
    pub ok: bool,
    pub latency: String,
    pub ttft: String,
    pub tokens: String,
    pub cost: String,
    pub recorded: String,
}

fn row(r: &RequestSummary) -> Row {
    let who = [r.user.as_deref(), r.agent.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" / ");
    let mut recorded = [(r.input_recorded, "input"), (r.output_recorded, "output")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, l)| *l)
        .collect::<Vec<_>>()
        .join(" + ");
    if r.truncated {
        recorded.push_str(" (truncated)");
    }
    Row {
        id: r.id.clone(),
        time: r.time.replace('T', " ").trim_end_matches('Z').to_string(),
        provider: r.provider.clone(),
        model: r.model.clone().unwrap_or_else(|| "—".into()),
        who: if who.is_empty() { "—".into() } else { who },
        status: r.status.clone(),
        ok: r.status == "success",
        latency: format!("{} ms", r.latency_ms),
        ttft: r.ttft_ms.map_or_else(|| "—".into(), |t| format!("{t} ms")),
        tokens: format::int(r.tokens.total),
        cost: format::usd(r.cost_microcents),
        recorded: if recorded.is_empty() { "—".into() } else { recorded },
    }
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    layout: Layout,
    rows: Vec<Row>,
    chips: Vec<Chip>,
    clear_url: String,
    next_url: String,
    statuses: Vec<(&'static str, String, bool)>,
    /// The fields the builder offers, and the view's other filters it keeps.
    fields: [&'static str; 7],
    keep: Vec<(String, String)>,
    providers: Vec<String>,
}

/// `GET /requests`: the request log, newest first.
pub async fn list(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Reader)?;
    if let Some(url) = added_filter_url(&q) {
        return Ok(axum::response::Redirect::to(&url).into_response());
    }
    let state = &console.state;
    let params = RequestParams {
        provider: q.provider.clone(),
        model: q.model.clone(),
        user: q.user.clone(),
        agent: q.agent.clone(),
        status: q.status.clone(),
        conversation: q.conversation.clone(),
        start: q.start.clone(),
        ..RequestParams::default()
    };
    let filter = requests::filter(&session.token, &params)?;
    let after = requests::cursor(q.after.as_deref())?;
    let limit = i64::from(paging::DEFAULT_PAGE_SIZE);
    let mut events = state
        .usage()
        .list_requests(&filter, after.as_ref().map(|(t, i)| (*t, i.as_str())), limit + 1)
        .await
        .map_err(ApiError::from)?;
    let more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    let next_url = match (more, events.last()) {
        (true, Some(e)) => q.url("/requests", None, &[("after", &format!("{}:{}", e.ts_ms, e.id))]),
        _ => String::new(),
    };
    let rows = requests::summaries(state, &events).await?.iter().map(row).collect();
    let chips = FILTERS
        .iter()
        .filter_map(|k| {
            q.get(k).map(|v| Chip { dim: k, label: v.to_string(), remove_url: q.url("/requests", Some(k), &[]) })
        })
        .collect();
    let statuses = ["", "failed", "success", "upstream_error", "timeout", "connection_error", "client_cancelled"]
        .into_iter()
        .map(|s| {
            let extra = [("status", s)];
            let extra: &[(&str, &str)] = if s.is_empty() { &[] } else { &extra };
            (s, q.url("/requests", Some("status"), extra), q.get("status").unwrap_or("") == s)
        })
        .collect();
    html_page(
        StatusCode::OK,
        &RequestsPage {
            layout: Layout::of(&session, "Requests", "requests"),
            rows,
            chips,
            clear_url: "/requests".into(),
            next_url,
            statuses,
            fields: FILTERS,
            keep: FILTERS.iter().filter_map(|k| q.get(k).map(|v| (k.to_string(), v.to_string()))).collect(),
            providers: {
                let mut p: Vec<String> = state
                    .snapshot()
                    .providers
                    .keys()
                    .filter(|n| session.token.providers.as_ref().is_none_or(|s| s.contains(n)))
                    .cloned()
                    .collect();
                p.sort();
                p
            },
        },
    )
}

/// One chat bubble.
#[derive(Debug, Default)]
pub struct Bubble {
    /// user | assistant | system | tool
    pub role: String,
    pub text: String,
    pub thinking: String,
    /// Tool calls and tool results: (title, body), shown collapsed.
    pub tools: Vec<(String, String)>,
}

/// Text of a content value: a string, or parts with `text`.
fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
        }
        _ => String::new(),
    }
}

/// Tool calls and results inside a message's parts.
fn content_tools(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in v.as_array().into_iter().flatten() {
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        let pretty =
            |x: Option<&Value>| x.map(|x| serde_json::to_string_pretty(x).unwrap_or_default()).unwrap_or_default();
        if kind == "tool_use" {
            out.push((format!("tool call: {}", p["name"].as_str().unwrap_or("")), pretty(p.get("input"))));
        } else if kind == "tool_result" {
            out.push(("tool result".to_string(), pretty(p.get("content"))));
        } else if let Some(f) = p.get("functionCall") {
            out.push((format!("tool call: {}", f["name"].as_str().unwrap_or("")), pretty(f.get("args"))));
        } else if let Some(f) = p.get("functionResponse") {
            out.push((format!("tool result: {}", f["name"].as_str().unwrap_or("")), pretty(f.get("response"))));
        } else if let Some(t) = p.get("toolUse") {
            out.push((format!("tool call: {}", t["name"].as_str().unwrap_or("")), pretty(t.get("input"))));
        } else if let Some(t) = p.get("toolResult") {
            out.push(("tool result".to_string(), pretty(t.get("content"))));
        }
    }
    out
}

/// The request's messages as bubbles (shape-sniffed; see the module header).
pub fn input_bubbles(input: &Value) -> Vec<Bubble> {
    let mut out = Vec::new();
    let system = match input.get("system").or_else(|| input.get("instructions")) {
        Some(s) => content_text(s),
        None => input.pointer("/systemInstruction/parts").map(content_text).unwrap_or_default(),
    };
    if !system.is_empty() {
        out.push(Bubble { role: "system".into(), text: system, ..Bubble::default() });
    }
    let list = input.get("messages").or_else(|| input.get("contents")).or_else(|| input.get("input"));
    match list {
        Some(Value::String(s)) => out.push(Bubble { role: "user".into(), text: s.clone(), ..Bubble::default() }),
        Some(Value::Array(msgs)) => {
            for m in msgs {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                let role = if role == "model" { "assistant" } else { role };
                let content = m.get("content").or_else(|| m.get("parts")).unwrap_or(&Value::Null);
                let mut tools = content_tools(content);
                for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let f = &call["function"];
                    tools.push((
                        format!("tool call: {}", f["name"].as_str().unwrap_or("")),
                        f["arguments"].as_str().unwrap_or("").to_string(),
                    ));
                }
                out.push(Bubble {
                    role: role.to_string(),
                    text: content_text(content),
                    thinking: String::new(),
                    tools,
                });
            }
        }
        Some(other) => out.push(Bubble { role: "user".into(), text: other.to_string(), ..Bubble::default() }),
        None if input.is_string() => {
            out.push(Bubble {
                role: "user".into(),
                text: input.as_str().unwrap_or("").to_string(),
                ..Bubble::default()
            });
        }
        None => {}
    }
    out
}

/// The assembled response as one assistant bubble.
pub fn output_bubble(d: &RequestDetail) -> Option<Bubble> {
    let m = d.output_message.as_ref()?;
    Some(Bubble {
        role: "assistant".into(),
        text: m.text.clone(),
        thinking: m.thinking.clone(),
        tools: m.tool_calls.iter().map(|t| (format!("tool call: {}", t.name), t.arguments.clone())).collect(),
    })
}

/// A failed request's recorded answer as an `error` bubble when it read back as no message
/// (an upstream's error JSON has no text to assemble): the upstream's own message where its
/// shape has one (`error.message`: OpenAI, Anthropic, Gemini; `message` / `Message`: Bedrock),
/// else the body as recorded.
pub fn error_bubble(d: &RequestDetail) -> Option<Bubble> {
    if d.request.status == "success" {
        return None;
    }
    let said = d
        .output_message
        .as_ref()
        .is_some_and(|m| !m.text.trim().is_empty() || !m.thinking.trim().is_empty() || !m.tool_calls.is_empty());
    if said {
        return None;
    }
    let output = d.output.as_ref()?;
    let message = [&output["error"]["message"], &output["message"], &output["Message"]]
        .into_iter()
        .find_map(|v| v.as_str().filter(|s| !s.trim().is_empty()))
        .map(str::to_string)
        .unwrap_or_else(|| pretty(&d.output));
    let status = d.request.http_status.map(|s| format!("HTTP {s}: ")).unwrap_or_default();
    Some(Bubble { role: "error".into(), text: format!("{status}{message}"), ..Bubble::default() })
}

fn pretty(v: &Option<Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

/// One request as the pages show it.
#[derive(Debug)]
pub struct Turn {
    pub row: Row,
    pub recorded: bool,
    pub withheld: bool,
    pub bubbles: Vec<Bubble>,
    pub raw_input: String,
    pub raw_output: String,
    pub input_truncated: bool,
    pub output_truncated: bool,
}

fn turn(d: &RequestDetail, only_last_input: bool) -> Turn {
    let mut bubbles = d.input.as_ref().map(input_bubbles).unwrap_or_default();
    if only_last_input && bubbles.len() > 1 {
        // In a conversation each turn repeats the history: show what is new (the last message).
        bubbles = bubbles.split_off(bubbles.len() - 1);
    }
    match error_bubble(d) {
        Some(e) => bubbles.push(e),
        None => bubbles.extend(output_bubble(d)),
    }
    Turn {
        row: row(&d.request),
        recorded: d.request.input_recorded || d.request.output_recorded,
        withheld: d.bodies_withheld,
        bubbles,
        raw_input: pretty(&d.input),
        raw_output: pretty(&d.output),
        input_truncated: d.input_truncated,
        output_truncated: d.output_truncated,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ViewQuery {
    pub view: Option<String>,
}

#[derive(Template)]
#[template(path = "request_detail.html")]
struct RequestPage {
    layout: Layout,
    t: Turn,
    id: String,
    conversation: String,
    error_class: String,
    endpoint: String,
    chat: bool,
}

/// `GET /requests/{id}`: one request, Chat or Detailed view.
pub async fn show(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(v): Query<ViewQuery>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Reader)?;
    let d = requests::detail(&console.state, &session.token, &id).await?;
    let page = RequestPage {
        layout: Layout::of(&session, format!("Request {id}"), "requests"),
        conversation: d.request.conversation_id.clone(),
        error_class: d.request.error_class.clone().unwrap_or_default(),
        endpoint: d.request.endpoint.clone(),
        t: turn(&d, false),
        id,
        chat: v.view.as_deref() != Some("detailed"),
    };
    html_page(StatusCode::OK, &page)
}

/// One conversation row.
#[derive(Debug)]
pub struct ConvRow {
    pub id: String,
    pub started: String,
    pub duration: String,
    pub turns: i64,
    pub failed: bool,
    pub tokens: String,
    pub cost: String,
    pub providers: String,
}

fn duration(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{} s", ms / 1000)
    } else if ms < 3_600_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

fn conv_row(c: &conversations::ConversationSummary) -> ConvRow {
    ConvRow {
        id: c.id.clone(),
        started: c.started_at.replace('T', " ").trim_end_matches('Z').to_string(),
        duration: duration(c.duration_ms),
        turns: c.turns,
        failed: c.status == "failed",
        tokens: format::int(c.tokens),
        cost: format::usd(c.cost_microcents),
        providers: c.providers.join(", "),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ConvQuery {
    pub provider: Option<String>,
    pub status: Option<String>,
    pub after: Option<String>,
}

#[derive(Template)]
#[template(path = "transcripts.html")]
struct TranscriptsPage {
    layout: Layout,
    rows: Vec<ConvRow>,
    next_url: String,
    chips: Vec<Chip>,
}

/// `GET /transcripts`: conversations, most recently active first.
pub async fn conversations_page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<ConvQuery>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Reader)?;
    let params = ConversationParams { provider: q.provider.clone(), status: q.status.clone(), ..Default::default() };
    let filter = conversations::filter(&session.token, &params)?;
    let after = requests::cursor(q.after.as_deref())?;
    let limit = i64::from(paging::DEFAULT_PAGE_SIZE);
    let mut rows = console
        .state
        .usage()
        .list_conversations(&filter, after.as_ref().map(|(t, i)| (*t, i.as_str())), limit + 1)
        .await
        .map_err(ApiError::from)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let keep = |without: &str, extra: Option<(&str, String)>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("provider", &q.provider), ("status", &q.status)] {
            if k != without
                && let Some(v) = v.as_deref().filter(|v| !v.is_empty())
            {
                s.append_pair(k, v);
            }
        }
        if let Some((k, v)) = extra {
            s.append_pair(k, &v);
        }
        let s = s.finish();
        if s.is_empty() { "/transcripts".to_string() } else { format!("/transcripts?{s}") }
    };
    let next_url = match (more, rows.last()) {
        (true, Some(c)) => keep("", Some(("after", format!("{}:{}", c.last_at_ms, c.id)))),
        _ => String::new(),
    };
    let chips = [("provider", &q.provider), ("status", &q.status)]
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_deref().filter(|v| !v.is_empty()).map(|v| Chip {
                dim: k,
                label: v.to_string(),
                remove_url: keep(k, None),
            })
        })
        .collect();
    let rows = rows.iter().map(conversations::view).map(|c| conv_row(&c)).collect();
    html_page(
        StatusCode::OK,
        &TranscriptsPage { layout: Layout::of(&session, "Transcripts", "transcripts"), rows, next_url, chips },
    )
}

#[derive(Template)]
#[template(path = "transcript_detail.html")]
struct TranscriptPage {
    layout: Layout,
    c: ConvRow,
    turns: Vec<Turn>,
    chat: bool,
}

/// `GET /transcripts/{id}`: a conversation's turns, Chat or Detailed view.
pub async fn conversation(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(v): Query<ViewQuery>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Reader)?;
    let c = conversations::detail(&console.state, &session.token, &id).await?;
    let mut turns = Vec::with_capacity(c.requests.len());
    for (i, t) in c.requests.iter().enumerate() {
        let d = requests::detail(&console.state, &session.token, &t.id).await?;
        turns.push(turn(&d, i > 0));
    }
    let page = TranscriptPage {
        layout: Layout::of(&session, format!("Conversation {id}"), "transcripts"),
        c: conv_row(&c.conversation),
        turns,
        chat: v.view.as_deref() != Some("detailed"),
    };
    html_page(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bubbles_from_each_request_shape() {
        let anthropic = json!({"system": "be brief", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "content": "42"}]}
        ]});
        let b = input_bubbles(&anthropic);
        assert_eq!(b.iter().map(|b| b.role.as_str()).collect::<Vec<_>>(), ["system", "user", "assistant", "user"]);
        assert_eq!(b[2].tools[0].0, "tool call: f");
        assert_eq!(b[3].tools[0].0, "tool result");
        let gemini = json!({"contents": [{"role": "model", "parts": [{"text": "x"}]}]});
        assert_eq!(input_bubbles(&gemini)[0].role, "assistant");
        let responses = json!({"input": "plain"});
        assert_eq!(input_bubbles(&responses)[0].text, "plain");
        assert_eq!(duration(61_000), "1 min");
    }
}
