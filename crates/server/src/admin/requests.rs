//! `/api/v1/requests[/{id}]`: the request log — every usage event, whether its provider
//! recorded bodies or not — newest first, keyset-paginated (`page_token` = the last `(ts, id)`),
//! and one request with its recorded bodies.
//!
//! Bodies (ARCHITECTURE.md, Decisions: Transcripts) are returned to the `admin` role only; a
//! reader gets the metadata and `bodies_withheld: true`. Every read of a body is logged (target
//! `tollgate::audit`: which token read which request). A JSON body comes back as JSON; any other
//! body (an SSE stream) as its text, an AWS event stream as its frames; the response is also
//! read back as a message (`output_message`: text, thinking, tool calls) by the protocol crate.
//! A token scoped to providers sees only their requests.

use super::paging;
use super::query::Query;
use crate::auth::{authorize, in_scope};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::rfc3339;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tollgate_core::{RequestStatus, Role};
use tollgate_store::{RequestFilter, TokenRecord, Transcript, TranscriptFlags, UsageEvent};
use utoipa::{IntoParams, ToSchema};

/// Filters of the request log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestParams {
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The user (email) the request is attributed to; empty = unattributed.
    pub user: Option<String>,
    pub agent: Option<String>,
    /// `failed` is anything but success.
    #[param(value_type = Option<StatusFilter>, inline)]
    pub status: Option<String>,
    pub conversation: Option<String>,
    /// Inclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    pub start: Option<String>,
    /// Exclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    pub end: Option<String>,
    /// 1 to 1000 (larger values are capped); absent or 0: 50.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub page_size: Option<String>,
    /// `next_page_token` of the previous page: a cursor (`k1.` + the hex of `<ms>:<id>`).
    #[param(pattern = r"^(k1\.(2d)?(3[0-9]){1,18}3a([0-9a-f]{2})*)?$")]
    pub page_token: Option<String>,
}

/// How a request ended, or `failed` (anything but success): the `status` filter.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the values are parsed by `RequestStatus::parse`
pub enum StatusFilter {
    Success,
    UpstreamError,
    Timeout,
    ConnectionError,
    ClientCancelled,
    Failed,
}

/// Tokens per bucket and their sum.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCounts {
    pub input: i64,
    pub output: i64,
    pub reasoning: i64,
    pub cached_input: i64,
    pub cache_write_5m: i64,
    pub cache_write_1h: i64,
    pub cache_write_unknown: i64,
    pub total: i64,
}

/// One request of the log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestSummary {
    /// The usage event id (also sent to the client as `x-tollgate-request-id`).
    pub id: String,
    /// Arrival, RFC 3339.
    pub time: String,
    pub provider: String,
    pub provider_type: String,
    pub model: Option<String>,
    pub endpoint: String,
    pub user: Option<String>,
    pub agent: Option<String>,
    /// success | upstream_error | timeout | connection_error | client_cancelled
    pub status: String,
    pub http_status: Option<i64>,
    pub error_class: Option<String>,
    pub streamed: bool,
    pub latency_ms: i64,
    /// Time to the first response byte.
    pub ttft_ms: Option<i64>,
    pub tokens: TokenCounts,
    /// Microcents (1 USD = 100,000,000).
    pub cost_microcents: i64,
    pub unpriced: bool,
    /// The upstream's request id, when it sent one.
    pub request_id: String,
    pub conversation_id: String,
    /// The request body was recorded.
    pub input_recorded: bool,
    /// The response body was recorded.
    pub output_recorded: bool,
    /// A recorded body was longer than `--transcript-max-bytes` (its head is kept).
    pub truncated: bool,
}

/// `GET /api/v1/requests`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestList {
    /// Newest first.
    pub requests: Vec<RequestSummary>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A response read back as a message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssembledMessage {
    pub text: String,
    /// Reasoning the model showed (Anthropic thinking, Gemini thoughts, reasoning summaries).
    pub thinking: String,
    pub tool_calls: Vec<AssembledToolCall>,
}

/// One tool call of an assembled message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssembledToolCall {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// As the model wrote them (JSON text).
    pub arguments: String,
}

/// `GET /api/v1/requests/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub request: RequestSummary,
    /// The caller's role may not read bodies (admin only): `input` and `output` are null.
    pub bodies_withheld: bool,
    /// The request body as the client sent it: JSON when it is JSON, else text; null when not
    /// recorded (or withheld).
    #[schema(value_type = Object, nullable = true)]
    pub input: Option<serde_json::Value>,
    pub input_truncated: bool,
    /// The response body: JSON when it is JSON, the raw text of a stream (an AWS event stream
    /// as its frames: `[{"event", "payload"}]`); null when not recorded (or withheld).
    #[schema(value_type = Object, nullable = true)]
    pub output: Option<serde_json::Value>,
    pub output_truncated: bool,
    /// The recorded response read back as a message (streams assembled chunk by chunk).
    pub output_message: Option<AssembledMessage>,
    /// The allow-listed request headers kept with the transcript.
    #[schema(value_type = Object, nullable = true)]
    pub request_headers: Option<serde_json::Value>,
    pub response_content_type: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The query parameters → a store filter, the caller's scope applied.
pub(crate) fn filter(caller: &TokenRecord, p: &RequestParams) -> Result<RequestFilter, ApiError> {
    let (status, failed) = match super::given("status", &p.status)? {
        None => (None, false),
        Some("failed") => (None, true),
        Some(s) => (
            Some(RequestStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "status",
                    format!(
                        "`{s}` is not one of success, upstream_error, timeout, connection_error, client_cancelled, failed"
                    ),
                )
            })?),
            false,
        ),
    };
    let provider = nonempty(&p.provider);
    if let Some(pr) = &provider {
        crate::auth::require_scope(caller, pr)?;
    }
    Ok(RequestFilter {
        provider,
        scope: caller.providers.clone(),
        model: p.model.clone(),
        user: p.user.clone(),
        agent: p.agent.clone(),
        status,
        failed,
        conversation: nonempty(&p.conversation),
        start_ms: super::time_param("start", &p.start)?,
        end_ms: super::time_param("end", &p.end)?,
    })
}

/// The `(ts, id)` a page token continues after.
pub(crate) fn cursor(token: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    let Some(key) = token else { return Ok(None) };
    let bad = || ApiError::invalid("page_token", "is not a page token returned by this list; omit it to start over");
    let (ts, id) = key.split_once(':').ok_or_else(bad)?;
    Ok(Some((ts.parse::<i64>().map_err(|_| bad())?, id.to_string())))
}

/// Keeps the first `limit` of `rows` (read as `limit + 1`) and answers the token that continues
/// after the last kept row when more followed: the inverse of [`cursor`].
pub(crate) fn next_page<T>(rows: &mut Vec<T>, limit: u32, key: impl Fn(&T) -> (i64, &str)) -> Option<String> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    more.then(|| {
        rows.last().map(|r| {
            let (ts, id) = key(r);
            paging::encode(&format!("{ts}:{id}"))
        })
    })
    .flatten()
}

/// One event as the API shows it.
pub(crate) fn summary(e: &UsageEvent, flags: TranscriptFlags) -> RequestSummary {
    let u = &e.usage;
    RequestSummary {
        id: e.id.clone(),
        time: rfc3339(e.ts_ms),
        provider: e.provider.to_string(),
        provider_type: e.provider_type.as_str().to_string(),
        model: e.model.clone(),
        endpoint: e.endpoint.clone(),
        user: e.user.as_deref().map(str::to_string),
        agent: e.agent.as_deref().map(str::to_string),
        status: e.status.as_str().to_string(),
        http_status: e.http_status,
        error_class: e.error_class.clone(),
        streamed: e.streamed,
        latency_ms: e.latency_ms,
        ttft_ms: e.ttft_ms,
        tokens: TokenCounts {
            input: u.input,
            output: u.output,
            reasoning: u.reasoning,
            cached_input: u.cached_input,
            cache_write_5m: u.cache_write_5m,
            cache_write_1h: u.cache_write_1h,
            cache_write_unknown: u.cache_write_unknown,
            total: u.total_tokens(),
        },
        cost_microcents: e.cost.total,
        unpriced: e.unpriced,
        request_id: e.request_id.clone(),
        conversation_id: tollgate_store::conversation_of(e).to_string(),
        input_recorded: flags.input,
        output_recorded: flags.output,
        truncated: flags.truncated,
    }
}

/// Summaries of `events` with their transcript flags (one query for the page).
pub(crate) async fn summaries(state: &AppState, events: &[UsageEvent]) -> Result<Vec<RequestSummary>, ApiError> {
    let flags = state.transcripts().flags(events).await?;
    Ok(events.iter().map(|e| summary(e, flags.get(&e.id).copied().unwrap_or_default())).collect())
}

/// The request log, newest first.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests",
    params(RequestParams),
    responses((status = 200, body = RequestList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<RequestParams>,
) -> Result<Json<RequestList>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let page = paging::parse(p.page_size.as_deref(), p.page_token.as_deref())?;
    let f = filter(&caller, &p)?;
    let after = cursor(page.after.as_deref())?;
    let limit = i64::from(page.limit);
    let mut events =
        state.usage().list_requests(&f, after.as_ref().map(|(ts, id)| (*ts, id.as_str())), limit + 1).await?;
    let next = next_page(&mut events, page.limit, |e| (e.ts_ms, e.id.as_str()));
    Ok(Json(RequestList { requests: summaries(&state, &events).await?, next_page_token: next }))
}

/// One request, with its recorded bodies (admin only; readers get the metadata).
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "Request (usage event) id")),
    responses((status = 200, body = RequestDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RequestDetail>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    Ok(Json(detail(&state, &caller, &id).await?))
}

/// A request with its bodies as `caller` may see them (shared with the console).
pub async fn detail(state: &AppState, caller: &TokenRecord, id: &str) -> Result<RequestDetail, ApiError> {
    let not_found = || ApiError::NotFound(format!("no request with id \"{id}\""));
    let event = state.usage().get_event(id).await?.ok_or_else(not_found)?;
    if !in_scope(caller, &event.provider) {
        return Err(not_found());
    }
    let keyring = state.store().keyring();
    let record = state.transcripts().open(&keyring, id, event.transcript.as_ref()).await?;
    let mut out = RequestDetail {
        request: summary(&event, record.as_ref().map(Transcript::flags).unwrap_or_default()),
        bodies_withheld: false,
        input: None,
        input_truncated: false,
        output: None,
        output_truncated: false,
        output_message: None,
        request_headers: None,
        response_content_type: None,
    };
    let Some(record) = record else { return Ok(out) };
    if !caller.role.allows(Role::Admin) {
        out.bodies_withheld = true;
        return Ok(out);
    }
    tracing::info!(target: "tollgate::audit", token = %caller.name, token_id = %caller.id, request = %id,
        provider = %event.provider, "transcript bodies read");
    fill(&event, record, &mut out);
    Ok(out)
}

fn fill(event: &UsageEvent, record: Transcript, out: &mut RequestDetail) {
    out.request_headers = Some(serde_json::Value::Object(
        record.request_headers.iter().map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone()))).collect(),
    ));
    out.response_content_type.clone_from(&record.response_content_type);
    if let Some(b) = &record.input {
        out.input = Some(as_json_or_text(&b.bytes));
        out.input_truncated = b.truncated;
    }
    if let Some(b) = &record.output {
        let bytes = &b.bytes;
        let ct = record.response_content_type.as_deref();
        let family = event.provider_type.descriptor().wire_family;
        let endpoint = tollgate_protocol::inspect(family, "POST", &event.endpoint, None, b"{}").endpoint;
        out.output_message = tollgate_protocol::assemble(family, endpoint, ct, bytes).map(|m| AssembledMessage {
            text: m.text,
            thinking: m.thinking,
            tool_calls: m
                .tool_calls
                .into_iter()
                .map(|t| AssembledToolCall { id: t.id, name: t.name, arguments: t.arguments })
                .collect(),
        });
        out.output = Some(if ct.is_some_and(|c| c.starts_with("application/vnd.amazon.eventstream")) {
            event_stream_frames(bytes)
        } else {
            as_json_or_text(bytes)
        });
        out.output_truncated = b.truncated;
    }
}

/// A body as JSON when it parses, else as (lossy UTF-8) text.
fn as_json_or_text(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into()))
}

/// An AWS event stream as `[{"event", "payload"}]` (payloads as JSON when they parse).
fn event_stream_frames(bytes: &[u8]) -> serde_json::Value {
    let mut reader = tollgate_protocol::EventStreamReader::new();
    let frames = reader
        .push(bytes)
        .into_iter()
        .map(|f| {
            serde_json::json!({
                "event": f.event_type.or(f.exception_type).or(f.message_type),
                "payload": as_json_or_text(&f.payload),
            })
        })
        .collect();
    serde_json::Value::Array(frames)
}
