//! `/api/v1/conversations[/{id}]`: requests grouped by conversation id (`X-Tollgate-Conversation`,
//! or the session id Claude Code or Codex sends; a request without one is a conversation of its
//! own), most recently active first, keyset-paginated; one conversation's turns oldest first.
//! Conversation rows are upserted by the usage writer with their events, so the list pages
//! over one indexed table however many events there are. Bodies are read per turn through
//! `/api/v1/requests/{id}` (admin only).

use super::paging;
use super::query::Query;
use super::requests::{RequestSummary, cursor, next_page, summaries};
use crate::auth::{authorize, in_scope};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::rfc3339;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tollgate_core::Role;
use tollgate_store::{ConversationFilter, ConversationRow, TokenRecord};
use utoipa::{IntoParams, ToSchema};

/// Most turns `GET /api/v1/conversations/{id}` returns.
pub const MAX_TURNS: i64 = 1000;

/// Filters of the conversation list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationParams {
    /// Conversations that used this provider.
    pub provider: Option<String>,
    /// Empty = unattributed.
    pub user: Option<String>,
    pub agent: Option<String>,
    /// A conversation failed if any turn did not succeed.
    #[param(value_type = Option<ConversationStatus>, inline)]
    pub status: Option<String>,
    /// The last turn at or after this.
    #[param(value_type = Option<String>, format = DateTime)]
    pub start: Option<String>,
    /// The last turn before this.
    #[param(value_type = Option<String>, format = DateTime)]
    pub end: Option<String>,
    /// 1 to 1000 (larger values are capped); absent or 0: 50.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub page_size: Option<String>,
    /// `next_page_token` of the previous page: a cursor (`k1.` + the hex of `<ms>:<id>`).
    #[param(pattern = r"^(k1\.(2d)?(3[0-9]){1,18}3a([0-9a-f]{2})*)?$")]
    pub page_token: Option<String>,
}

/// The conversation `status` filter.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only
pub enum ConversationStatus {
    Ok,
    Failed,
}

/// One conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub providers: Vec<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub started_at: String,
    pub last_at: String,
    /// From the first turn's arrival to the last turn's arrival.
    pub duration_ms: i64,
    pub turns: i64,
    /// ok | failed
    pub status: String,
    pub failed_turns: i64,
    pub tokens: i64,
    /// Microcents (1 USD = 100,000,000).
    pub cost_microcents: i64,
}

/// `GET /api/v1/conversations`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationList {
    /// Most recently active first.
    pub conversations: Vec<ConversationSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `GET /api/v1/conversations/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationSummary,
    /// The turns themselves (`turns` is their count), oldest first (at most 1000). Named
    /// apart from `turns`: a flattened summary and this list under one key wrote it twice.
    pub requests: Vec<RequestSummary>,
}

pub(crate) fn view(c: &ConversationRow) -> ConversationSummary {
    ConversationSummary {
        id: c.id.clone(),
        providers: c.providers.clone(),
        user: c.user.clone(),
        agent: c.agent.clone(),
        started_at: rfc3339(c.started_at_ms),
        last_at: rfc3339(c.last_at_ms),
        duration_ms: c.last_at_ms - c.started_at_ms,
        turns: c.turns,
        status: if c.failed_turns > 0 { "failed" } else { "ok" }.to_string(),
        failed_turns: c.failed_turns,
        tokens: c.tokens,
        cost_microcents: c.cost,
    }
}

pub(crate) fn filter(caller: &TokenRecord, p: &ConversationParams) -> Result<ConversationFilter, ApiError> {
    let failed = match super::given("status", &p.status)? {
        None => None,
        Some("ok") => Some(false),
        Some("failed") => Some(true),
        Some(s) => return Err(ApiError::invalid("status", format!("`{s}` is not one of ok, failed"))),
    };
    let provider = p.provider.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(pr) = &provider {
        crate::auth::require_scope(caller, pr)?;
    }
    Ok(ConversationFilter {
        provider,
        scope: caller.providers.clone(),
        user: p.user.clone(),
        agent: p.agent.clone(),
        failed,
        start_ms: super::time_param("start", &p.start)?,
        end_ms: super::time_param("end", &p.end)?,
    })
}

/// Conversations, most recently active first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "requests",
    params(ConversationParams),
    responses((status = 200, body = ConversationList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ConversationParams>,
) -> Result<Json<ConversationList>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let page = paging::parse(p.page_size.as_deref(), p.page_token.as_deref())?;
    let f = filter(&caller, &p)?;
    let after = cursor(page.after.as_deref())?;
    let limit = i64::from(page.limit);
    let mut rows =
        state.usage().list_conversations(&f, after.as_ref().map(|(ts, id)| (*ts, id.as_str())), limit + 1).await?;
    let next = next_page(&mut rows, page.limit, |c| (c.last_at_ms, c.id.as_str()));
    Ok(Json(ConversationList { conversations: rows.iter().map(view).collect(), next_page_token: next }))
}

/// One conversation and its turns, oldest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "requests",
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    Ok(Json(detail(&state, &caller, &id).await?))
}

/// A conversation with the turns `caller` may see (shared with the console).
pub async fn detail(state: &AppState, caller: &TokenRecord, id: &str) -> Result<ConversationDetail, ApiError> {
    let not_found = || ApiError::NotFound(format!("no conversation with id \"{id}\""));
    let row = state.usage().get_conversation(id).await?.ok_or_else(not_found)?;
    let events: Vec<_> = state
        .usage()
        .conversation_turns(id, MAX_TURNS)
        .await?
        .into_iter()
        .filter(|e| in_scope(caller, &e.provider))
        .collect();
    if events.is_empty() && caller.providers.is_some() {
        return Err(not_found());
    }
    Ok(ConversationDetail { conversation: view(&row), requests: summaries(state, &events).await? })
}
