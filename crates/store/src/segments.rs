//! Usage events stored a batch at a time (issue 21: metering at a cost proportional to what
//! is new in a batch, not to columns and indexes per event). The usage writer's flush becomes
//! one or a few rows of `usage_segments`, each holding up to [`SEGMENT_MAX_EVENTS`] events
//! encoded together (protobuf, `prost`; text a segment repeats — provider, model, user,
//! status, … — is stored once in its dictionary), plus one row of `usage_segment_terms` per
//! distinct filterable value of the segment ([`Term`]: provider, model, user, agent, status,
//! "has a failure", conversation id, "has a one-turn conversation").
//!
//! A segment's events span at most [`SPAN_MAX_MS`] of arrival time (a flush whose events
//! spread further — a long stream finishing after many short requests — is cut), so a time
//! bound on an event is a bound on its segment's `ts_max` and the reads below walk the
//! `ts_max` index with exact ranges. Reads ([`Scan`]) page through candidate segments in
//! `ts_max` order (driven by the most selective term when the query names one, the other
//! terms intersected over each chunk's time window or looked up at its times), decode them
//! and filter events exactly in Rust; newest-first pages are final once no segment left can
//! hold a newer event. An event is found by id through the time in its UUIDv7
//! ([`id_time_ms`]: the proxy makes the id from the arrival time it records); an id of another
//! form names no event.
//!
//! Events stored before segments (rows of `usage_events`) are moved into segments when the
//! store opens ([`crate::UsageStore::upgrade`]).

use crate::{StoreError, UsageEvent};
use std::sync::Arc;
use tollgate_core::{Cost, ProviderType, RequestStatus, Usage};

/// The widest spread of arrival times (`ts`) inside one segment.
pub(crate) const SPAN_MAX_MS: i64 = 60_000;

/// The most events in one segment (a larger flush is cut): bounds what a read decodes to
/// find one event.
pub(crate) const SEGMENT_MAX_EVENTS: usize = 1_000;

/// How far an id's UUIDv7 time may lie from its event's `ts` (events recorded before the
/// proxy made ids from the arrival time took the clock twice).
pub(crate) const ID_TIME_SLACK_MS: i64 = 2_000;

/// One filterable value present in a segment, as stored in `usage_segment_terms.term`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Term<'a> {
    Provider(&'a str),
    /// `None`: events without one (the request log's "unattributed" filter).
    Model(Option<&'a str>),
    User(Option<&'a str>),
    Agent(Option<&'a str>),
    /// `RequestStatus::as_str`.
    Status(&'a str),
    /// At least one event that did not succeed.
    Failed,
    Conversation(&'a str),
    /// At least one event without a conversation id (a conversation of one turn).
    Single,
}

impl Term<'_> {
    pub(crate) fn text(&self) -> String {
        match self {
            Term::Provider(p) => format!("p:{p}"),
            Term::Model(m) => format!("m:{}", m.unwrap_or("")),
            Term::User(u) => format!("u:{}", u.unwrap_or("")),
            Term::Agent(a) => format!("a:{}", a.unwrap_or("")),
            Term::Status(s) => format!("s:{s}"),
            Term::Failed => "f".into(),
            Term::Conversation(c) => format!("c:{c}"),
            Term::Single => "n".into(),
        }
    }
}

/// One segment ready to insert.
pub(crate) struct NewSegment {
    pub ts_min: i64,
    pub ts_max: i64,
    pub events: i64,
    pub data: Vec<u8>,
    pub terms: Vec<String>,
}

/// Cuts `events` into segments (at most [`SPAN_MAX_MS`] of arrival times and
/// [`SEGMENT_MAX_EVENTS`] each: sorted by arrival and cut when they do not fit one) and
/// encodes them. Requests that did not succeed go into
/// segments of their own: a filter on failures (the console's status chip, Cost & Usage's
/// "Failed requests") then reads only those, a few percent of the events, whatever else it
/// filters on (a segment without the failure term is skipped before it is read).
pub(crate) fn cut(events: &[&UsageEvent]) -> Vec<NewSegment> {
    let (mut order, mut failed): (Vec<&UsageEvent>, Vec<&UsageEvent>) =
        events.iter().copied().partition(|e| e.status == RequestStatus::Success);
    let mut out = cut_sorted(&mut order);
    out.extend(cut_sorted(&mut failed));
    out
}

fn cut_sorted(order: &mut [&UsageEvent]) -> Vec<NewSegment> {
    // The usual flush fits one segment: its events are encoded in the order they came (a read
    // sorts what it decodes; the order inside a segment means nothing), without the sort
    // (~180 instructions an event: completion order is not arrival order).
    if order.is_empty() {
        return Vec::new();
    }
    let (lo, hi) = order.iter().fold((i64::MAX, i64::MIN), |(lo, hi), e| (lo.min(e.ts_ms), hi.max(e.ts_ms)));
    if order.len() <= SEGMENT_MAX_EVENTS && hi - lo <= SPAN_MAX_MS {
        return vec![encode_span(order, lo, hi)];
    }
    order.sort_by_key(|e| e.ts_ms);
    let mut out = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let first = order[start].ts_ms;
        let mut end = start + 1;
        while end < order.len() && end - start < SEGMENT_MAX_EVENTS && order[end].ts_ms - first <= SPAN_MAX_MS {
            end += 1;
        }
        out.push(encode(&order[start..end]));
        start = end;
    }
    out
}

/// Text values of one segment, each stored once: an event refers to them by index + 1
/// (0: none). Beside each value, which filterable fields ([`Mark`]) hold it in some event: the
/// segment's terms, collected without a set of strings.
#[derive(Default)]
struct Dict<'a> {
    index: hashbrown::HashMap<&'a str, u32>,
    values: Vec<(&'a str, u8)>,
    /// The last value looked up per [`Slot`]: consecutive events mostly repeat them, and a
    /// comparison costs less than a hash.
    last: [(&'a str, u32); SLOTS],
    /// Marks of the absent value (no model, user or agent), of a failure and of an event
    /// without a conversation.
    other: u8,
}

/// Fields whose values go into the dictionary (the cache of [`Dict::last`]).
#[derive(Clone, Copy)]
enum Slot {
    Provider,
    ProviderType,
    Model,
    Endpoint,
    User,
    Agent,
    Token,
    Status,
    ErrorClass,
    Catalog,
    Conversation,
    Batch,
}
const SLOTS: usize = 12;

/// Bits of [`Dict::values`]' marks: the field a value appeared in. In [`Dict::other`] the
/// same bits of `MODEL`, `USER` and `AGENT` mean "absent in some event".
mod mark {
    pub const PROVIDER: u8 = 1;
    pub const MODEL: u8 = 2;
    pub const USER: u8 = 4;
    pub const AGENT: u8 = 8;
    pub const STATUS: u8 = 16;
    pub const CONVERSATION: u8 = 32;
    /// Only in `Dict::other`.
    pub const FAILED: u8 = 64;
    /// Only in `Dict::other`.
    pub const SINGLE: u8 = 128;
}

impl<'a> Dict<'a> {
    /// Inlined where each field is encoded: most lookups are the slot's last value, and the
    /// call cost more than the check (the hashed lookup is [`Dict::find`]).
    #[inline(always)]
    fn get(&mut self, slot: Slot, s: &'a str, mark: u8) -> u32 {
        let (last, i) = self.last[slot as usize];
        // Shared values (the provider, the token's text, the catalog version, the static
        // names) are the same pointer from event to event: no byte comparison then.
        let i = if i != 0 && (std::ptr::eq(last, s) || last == s) { i } else { self.find(slot, s) };
        if mark != 0 {
            self.values[i as usize - 1].1 |= mark;
        }
        i
    }

    #[inline(never)]
    fn find(&mut self, slot: Slot, s: &'a str) -> u32 {
        let next = self.values.len() as u32 + 1;
        let values = &mut self.values;
        let i = *self.index.entry(s).or_insert_with(|| {
            values.push((s, 0));
            next
        });
        self.last[slot as usize] = (s, i);
        i
    }

    /// An absent model, user or agent is marked in [`Dict::other`].
    #[inline(always)]
    fn opt(&mut self, slot: Slot, s: Option<&'a str>, mark: u8) -> u32 {
        match s {
            Some(s) => self.get(slot, s, mark),
            None => {
                self.other |= mark & (mark::MODEL | mark::USER | mark::AGENT);
                0
            }
        }
    }

    /// The segment's terms, sorted.
    fn terms(&self) -> Vec<String> {
        let mut out = Vec::new();
        for &(v, m) in &self.values {
            for (bit, term) in [
                (mark::PROVIDER, Term::Provider(v)),
                (mark::MODEL, Term::Model(Some(v))),
                (mark::USER, Term::User(Some(v))),
                (mark::AGENT, Term::Agent(Some(v))),
                (mark::STATUS, Term::Status(v)),
                (mark::CONVERSATION, Term::Conversation(v)),
            ] {
                if m & bit != 0 {
                    out.push(term.text());
                }
            }
        }
        for (bit, term) in [
            (mark::MODEL, Term::Model(None)),
            (mark::USER, Term::User(None)),
            (mark::AGENT, Term::Agent(None)),
            (mark::FAILED, Term::Failed),
            (mark::SINGLE, Term::Single),
        ] {
            if self.other & bit != 0 {
                out.push(term.text());
            }
        }
        out.sort_unstable();
        out
    }
}

// Field tags of the encoding; [`SegmentWire`] / [`EventWire`] decode it.
mod tag {
    pub const DICT: u32 = 1;
    pub const EVENT: u32 = 2;
    pub const TS_BASE: u32 = 3;

    pub const ID: u32 = 1;
    pub const TS: u32 = 2;
    pub const PROVIDER: u32 = 3;
    pub const PROVIDER_TYPE: u32 = 4;
    pub const MODEL: u32 = 5;
    pub const ENDPOINT: u32 = 6;
    pub const USER: u32 = 7;
    pub const AGENT: u32 = 8;
    pub const TOKEN: u32 = 9;
    pub const STATUS: u32 = 10;
    pub const HTTP_STATUS: u32 = 11;
    pub const ERROR_CLASS: u32 = 12;
    pub const STREAMED: u32 = 13;
    pub const LATENCY: u32 = 14;
    pub const TTFT: u32 = 15;
    pub const TOKENS: u32 = 16; // 16..=22
    pub const COST: u32 = 23; // 23..=30
    pub const CATALOG: u32 = 31;
    pub const OVERRIDE: u32 = 32;
    pub const UNPRICED: u32 = 33;
    pub const REQUEST_ID: u32 = 34;
    pub const CONVERSATION: u32 = 35;
    pub const TRANSCRIPT_BATCH: u32 = 36;
    pub const TRANSCRIPT_FLAGS: u32 = 37;
}

/// A varint (prost's encoding), one byte without a call for the small values most fields
/// hold. (Two-byte values written inline as well measured +270 instructions an event under
/// callgrind, not the saving hoped for: not kept.)
#[inline]
fn put_varint(buf: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        buf.push(v as u8);
    } else {
        prost::encoding::encode_varint(v, buf);
    }
}

/// A field key: `tag << 3 | wire type` (0 varint, 2 length-delimited).
#[inline]
fn put_key(buf: &mut Vec<u8>, tag: u32, wire: u32) {
    put_varint(buf, u64::from((tag << 3) | wire));
}

/// Writes one event's fields (proto3: zero values are left out) in prost's wire format,
/// straight from the event (no owned copy of its strings).
fn encode_event<'e>(buf: &mut Vec<u8>, e: &'e UsageEvent, base: i64, d: &mut Dict<'e>) {
    let text = |buf: &mut Vec<u8>, t: u32, s: &str| {
        if !s.is_empty() {
            put_key(buf, t, 2);
            put_varint(buf, s.len() as u64);
            buf.extend_from_slice(s.as_bytes());
        }
    };
    let int = |buf: &mut Vec<u8>, t: u32, v: i64| {
        if v != 0 {
            put_key(buf, t, 0);
            put_varint(buf, v as u64);
        }
    };
    let opt = |buf: &mut Vec<u8>, t: u32, v: Option<i64>| {
        if let Some(v) = v {
            put_key(buf, t, 0);
            put_varint(buf, v as u64);
        }
    };
    text(buf, tag::ID, &e.id);
    // zigzag (sint64): an event may precede the segment's base by nothing, but keep it exact
    let delta = e.ts_ms.wrapping_sub(base);
    int(buf, tag::TS, (delta << 1) ^ (delta >> 63));
    int(buf, tag::PROVIDER, i64::from(d.get(Slot::Provider, &e.provider, mark::PROVIDER)));
    int(buf, tag::PROVIDER_TYPE, i64::from(d.get(Slot::ProviderType, e.provider_type.as_str(), 0)));
    int(buf, tag::MODEL, i64::from(d.opt(Slot::Model, e.model.as_deref(), mark::MODEL)));
    int(buf, tag::ENDPOINT, i64::from(d.get(Slot::Endpoint, &e.endpoint, 0)));
    int(buf, tag::USER, i64::from(d.opt(Slot::User, e.user.as_deref(), mark::USER)));
    int(buf, tag::AGENT, i64::from(d.opt(Slot::Agent, e.agent.as_deref(), mark::AGENT)));
    int(buf, tag::TOKEN, i64::from(d.opt(Slot::Token, e.token_id.as_deref(), 0)));
    int(buf, tag::STATUS, i64::from(d.get(Slot::Status, e.status.as_str(), mark::STATUS)));
    if e.status != RequestStatus::Success {
        d.other |= mark::FAILED;
    }
    opt(buf, tag::HTTP_STATUS, e.http_status);
    int(buf, tag::ERROR_CLASS, i64::from(d.opt(Slot::ErrorClass, e.error_class.as_deref(), 0)));
    int(buf, tag::STREAMED, i64::from(e.streamed));
    int(buf, tag::LATENCY, e.latency_ms);
    opt(buf, tag::TTFT, e.ttft_ms);
    let u = &e.usage;
    for (i, v) in
        [u.input, u.output, u.reasoning, u.cached_input, u.cache_write_5m, u.cache_write_1h, u.cache_write_unknown]
            .into_iter()
            .enumerate()
    {
        int(buf, tag::TOKENS + i as u32, v);
    }
    let c = &e.cost;
    for (i, v) in [
        c.input,
        c.output,
        c.reasoning,
        c.cached_input,
        c.cache_write_5m,
        c.cache_write_1h,
        c.cache_write_unknown,
        c.total,
    ]
    .into_iter()
    .enumerate()
    {
        int(buf, tag::COST + i as u32, v);
    }
    int(buf, tag::CATALOG, i64::from(d.opt(Slot::Catalog, e.catalog_version.as_deref(), 0)));
    int(buf, tag::OVERRIDE, i64::from(e.priced_by_override));
    int(buf, tag::UNPRICED, i64::from(e.unpriced));
    // The request id is the event id for every proxied request: stored only when it differs.
    if e.request_id != e.id {
        text(buf, tag::REQUEST_ID, &e.request_id);
    }
    int(buf, tag::CONVERSATION, i64::from(d.opt(Slot::Conversation, e.conversation_id.as_deref(), mark::CONVERSATION)));
    if e.conversation_id.is_none() {
        d.other |= mark::SINGLE;
    }
    if let Some(t) = &e.transcript {
        int(buf, tag::TRANSCRIPT_BATCH, i64::from(d.get(Slot::Batch, &t.batch, 0)));
        opt(buf, tag::TRANSCRIPT_FLAGS, Some(t.flags.bits()));
    }
}

fn encode(events: &[&UsageEvent]) -> NewSegment {
    let ts_min = events.iter().map(|e| e.ts_ms).min().unwrap_or(0);
    let ts_max = events.iter().map(|e| e.ts_ms).max().unwrap_or(0);
    encode_span(events, ts_min, ts_max)
}

/// [`encode`] with the events' earliest and latest arrival already known.
fn encode_span(events: &[&UsageEvent], ts_min: i64, ts_max: i64) -> NewSegment {
    let mut dict = Dict::default();
    let mut body = Vec::with_capacity(events.len() * 96);
    let mut one = Vec::with_capacity(256);
    for e in events {
        one.clear();
        encode_event(&mut one, e, ts_min, &mut dict);
        put_key(&mut body, tag::EVENT, 2);
        put_varint(&mut body, one.len() as u64);
        body.extend_from_slice(&one);
    }
    let mut data = Vec::with_capacity(body.len() + dict.values.iter().map(|(v, _)| v.len() + 3).sum::<usize>() + 12);
    put_key(&mut data, tag::TS_BASE, 0);
    put_varint(&mut data, ts_min as u64);
    for (v, _) in &dict.values {
        put_key(&mut data, tag::DICT, 2);
        put_varint(&mut data, v.len() as u64);
        data.extend_from_slice(v.as_bytes());
    }
    data.extend_from_slice(&body);
    NewSegment { ts_min, ts_max, events: events.len() as i64, data, terms: dict.terms() }
}

#[derive(Clone, PartialEq, prost::Message)]
struct SegmentWire {
    #[prost(string, repeated, tag = "1")]
    dict: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    events: Vec<EventWire>,
    #[prost(int64, tag = "3")]
    ts_base: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EventWire {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(sint64, tag = "2")]
    ts: i64,
    #[prost(uint32, tag = "3")]
    provider: u32,
    #[prost(uint32, tag = "4")]
    provider_type: u32,
    #[prost(uint32, tag = "5")]
    model: u32,
    #[prost(uint32, tag = "6")]
    endpoint: u32,
    #[prost(uint32, tag = "7")]
    user: u32,
    #[prost(uint32, tag = "8")]
    agent: u32,
    #[prost(uint32, tag = "9")]
    token: u32,
    #[prost(uint32, tag = "10")]
    status: u32,
    #[prost(int64, optional, tag = "11")]
    http_status: Option<i64>,
    #[prost(uint32, tag = "12")]
    error_class: u32,
    #[prost(bool, tag = "13")]
    streamed: bool,
    #[prost(int64, tag = "14")]
    latency_ms: i64,
    #[prost(int64, optional, tag = "15")]
    ttft_ms: Option<i64>,
    #[prost(int64, tag = "16")]
    tokens_input: i64,
    #[prost(int64, tag = "17")]
    tokens_output: i64,
    #[prost(int64, tag = "18")]
    tokens_reasoning: i64,
    #[prost(int64, tag = "19")]
    tokens_cached_input: i64,
    #[prost(int64, tag = "20")]
    tokens_cache_write_5m: i64,
    #[prost(int64, tag = "21")]
    tokens_cache_write_1h: i64,
    #[prost(int64, tag = "22")]
    tokens_cache_write_unknown: i64,
    #[prost(int64, tag = "23")]
    cost_input: i64,
    #[prost(int64, tag = "24")]
    cost_output: i64,
    #[prost(int64, tag = "25")]
    cost_reasoning: i64,
    #[prost(int64, tag = "26")]
    cost_cached_input: i64,
    #[prost(int64, tag = "27")]
    cost_cache_write_5m: i64,
    #[prost(int64, tag = "28")]
    cost_cache_write_1h: i64,
    #[prost(int64, tag = "29")]
    cost_cache_write_unknown: i64,
    #[prost(int64, tag = "30")]
    cost_total: i64,
    #[prost(uint32, tag = "31")]
    catalog_version: u32,
    #[prost(bool, tag = "32")]
    priced_by_override: bool,
    #[prost(bool, tag = "33")]
    unpriced: bool,
    #[prost(string, tag = "34")]
    request_id: String,
    #[prost(uint32, tag = "35")]
    conversation: u32,
    #[prost(uint32, tag = "36")]
    transcript_batch: u32,
    #[prost(int64, optional, tag = "37")]
    transcript_flags: Option<i64>,
}

/// The events of a segment as [`encode`] wrote them; `segment` names it in errors.
pub(crate) fn decode(segment: i64, data: &[u8]) -> Result<Vec<UsageEvent>, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("usage segment {segment}: {what}"));
    let wire: SegmentWire = prost::Message::decode(data).map_err(|e| corrupt(format!("does not decode: {e}")))?;
    let dict = &wire.dict;
    let entry = |i: u32, what: &str| -> Result<Option<&str>, StoreError> {
        match i {
            0 => Ok(None),
            i => dict
                .get(i as usize - 1)
                .map(|s| Some(s.as_str()))
                .ok_or_else(|| corrupt(format!("{what} refers to entry {i} of a {}-entry dictionary", dict.len()))),
        }
    };
    let text = |i: u32, what: &str| -> Result<Option<String>, StoreError> { Ok(entry(i, what)?.map(str::to_string)) };
    let missing = |what: &str| corrupt(format!("an event has no {what}"));
    let required = |i: u32, what: &str| -> Result<&str, StoreError> { entry(i, what)?.ok_or_else(|| missing(what)) };
    // The values events hold as shared text (provider, user, agent, token, catalog version):
    // one `Arc<str>` per dictionary entry used so, made on first use and cloned into each event.
    let mut shared_dict: Vec<Option<Arc<str>>> = vec![None; dict.len()];
    let mut shared = |i: u32, what: &str| -> Result<Option<Arc<str>>, StoreError> {
        Ok(entry(i, what)?.map(|s| shared_dict[i as usize - 1].get_or_insert_with(|| Arc::from(s)).clone()))
    };
    let mut out = Vec::with_capacity(wire.events.len());
    for w in wire.events {
        let type_text = required(w.provider_type, "provider type")?;
        let provider_type = type_text
            .parse::<ProviderType>()
            .map_err(|_| corrupt(format!("event \"{}\" has unknown provider type \"{type_text}\"", w.id)))?;
        let status_text = required(w.status, "status")?;
        let status = RequestStatus::parse(status_text)
            .ok_or_else(|| corrupt(format!("event \"{}\" has unknown status \"{status_text}\"", w.id)))?;
        let transcript = match text(w.transcript_batch, "transcript batch")? {
            Some(batch) => Some(crate::transcripts::TranscriptRef {
                batch: batch.into(),
                flags: crate::transcripts::TranscriptFlags::from_bits(w.transcript_flags.unwrap_or(0)),
            }),
            None => None,
        };
        let request_id = if w.request_id.is_empty() { w.id.clone() } else { w.request_id };
        out.push(UsageEvent {
            ts_ms: wire.ts_base.wrapping_add(w.ts),
            provider: shared(w.provider, "provider")?.ok_or_else(|| missing("provider"))?,
            provider_type,
            model: text(w.model, "model")?,
            endpoint: text(w.endpoint, "endpoint")?.unwrap_or_default(),
            user: shared(w.user, "user")?,
            agent: shared(w.agent, "agent")?,
            token_id: shared(w.token, "token")?,
            status,
            http_status: w.http_status,
            error_class: text(w.error_class, "error class")?,
            streamed: w.streamed,
            latency_ms: w.latency_ms,
            ttft_ms: w.ttft_ms,
            usage: Usage {
                input: w.tokens_input,
                output: w.tokens_output,
                reasoning: w.tokens_reasoning,
                cached_input: w.tokens_cached_input,
                cache_write_5m: w.tokens_cache_write_5m,
                cache_write_1h: w.tokens_cache_write_1h,
                cache_write_unknown: w.tokens_cache_write_unknown,
            },
            cost: Cost {
                input: w.cost_input,
                output: w.cost_output,
                reasoning: w.cost_reasoning,
                cached_input: w.cost_cached_input,
                cache_write_5m: w.cost_cache_write_5m,
                cache_write_1h: w.cost_cache_write_1h,
                cache_write_unknown: w.cost_cache_write_unknown,
                total: w.cost_total,
            },
            catalog_version: shared(w.catalog_version, "catalog version")?,
            priced_by_override: w.priced_by_override,
            unpriced: w.unpriced,
            request_id,
            conversation_id: text(w.conversation, "conversation")?,
            transcript,
            id: w.id,
        });
    }
    Ok(out)
}

/// The arrival time a UUIDv7 id carries (epoch ms); `None` for any other id.
pub(crate) fn id_time_ms(id: &str) -> Option<i64> {
    let u = uuid::Uuid::try_parse(id).ok()?;
    if u.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = u.get_timestamp()?.to_unix();
    i64::try_from(secs).ok().map(|s| s * 1000 + i64::from(nanos / 1_000_000))
}

/// A read over segments: which segments can hold a wanted event (their terms and times),
/// in which order, and how many events are wanted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scan<'a> {
    /// Every group must be present in a segment; a group is present when any of its terms
    /// is. The first group of a single term drives the read (callers put the most selective
    /// first).
    pub groups: Vec<Vec<String>>,
    /// `ts >= start_ms`.
    pub start_ms: Option<i64>,
    /// `ts < end_ms`.
    pub end_ms: Option<i64>,
    /// Oldest first (default: newest first).
    pub oldest_first: bool,
    /// Only events after this `(ts, id)` key in the read's order.
    pub after: Option<(i64, &'a str)>,
    /// At most this many events (0: all).
    pub limit: usize,
}

/// Segments whose data is fetched per statement.
const PAGE: usize = 16;

/// Segment keys read per statement from the driving term (or the segments' time index):
/// the first read is small (a page usually ends in the newest segments), later ones grow.
const KEYS_FIRST: i64 = 64;
const KEYS_MAX: i64 = 1_024;

/// A term group is read over a chunk's time window while it has at most this many rows per
/// driving key there (plus a few); denser, its rows at the chunk's keys are looked up instead
/// (a rare user filtered with a common provider would otherwise read the provider's rows over
/// the days between that user's requests).
const WINDOW_ROWS_PER_KEY: usize = 8;

/// A segment's place in the read order: `(ts_max, id)`.
type Key = (i64, i64);

/// Which rows of a term group to read: over a `ts_max` window (at most `limit`), or at
/// these `ts_max` values.
enum TermsAt<'a> {
    Window { a: i64, b: i64, limit: usize },
    Times(&'a [i64]),
}

impl crate::UsageStore {
    /// The events of `scan` for which `keep` holds, in the scan's order.
    ///
    /// The plan is the same on both backends and does not depend on the planner's
    /// statistics (PostgreSQL, joining a term's rows to the segments, drove a two-term read
    /// from the wrong side and took seconds at 10^5 segments): the driving term's segment keys
    /// (or, without one, the segments' time index) are read in `ts_max` order, a chunk at a
    /// time, each an index-only range read; every other group is checked by reading its
    /// terms' keys over the chunk's `ts_max` window (again an index range; a group much denser
    /// there than the driver is looked up at the chunk's `ts_max` values instead) and
    /// intersecting here; the segments left are fetched by id a page at a time, decoded and
    /// filtered exactly, until the events wanted are final (no segment left can hold one that
    /// sorts before them).
    pub(crate) async fn scan(
        &self,
        scan: &Scan<'_>,
        keep: impl Fn(&UsageEvent) -> bool,
    ) -> Result<Vec<UsageEvent>, StoreError> {
        if scan.groups.iter().any(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let desc = !scan.oldest_first;
        // Bounds on ts_max that follow from bounds on ts (a segment spans at most SPAN_MAX_MS).
        let mut lo = scan.start_ms;
        let mut hi = scan.end_ms.map(|e| e.saturating_sub(1).saturating_add(SPAN_MAX_MS));
        // Upper bound on ts_min: an event with ts < end needs ts_min < end.
        let mut min_below = scan.end_ms;
        if let Some((ts, _)) = scan.after {
            if desc {
                hi = Some(hi.map_or(ts.saturating_add(SPAN_MAX_MS), |h| h.min(ts.saturating_add(SPAN_MAX_MS))));
                min_below = Some(min_below.map_or(ts.saturating_add(1), |m| m.min(ts.saturating_add(1))));
            } else {
                lo = Some(lo.map_or(ts, |l| l.max(ts)));
            }
        }
        let driver = scan.groups.iter().position(|g| g.len() == 1);
        let others: Vec<&Vec<String>> =
            scan.groups.iter().enumerate().filter(|(i, _)| Some(*i) != driver).map(|(_, g)| g).collect();
        let in_range = |e: &UsageEvent| {
            scan.start_ms.is_none_or(|s| e.ts_ms >= s)
                && scan.end_ms.is_none_or(|x| e.ts_ms < x)
                && scan.after.is_none_or(|(ts, id)| {
                    let key = (e.ts_ms, e.id.as_str());
                    if desc { key < (ts, id) } else { key > (ts, id) }
                })
        };
        // Events already found that no segment from `ts_max` on can precede.
        let settled = |out: &[UsageEvent], ts_max: i64| {
            scan.limit > 0
                && scan.limit
                    <= if desc {
                        out.iter().filter(|e| e.ts_ms > ts_max).count()
                    } else {
                        out.iter().filter(|e| e.ts_ms < ts_max - SPAN_MAX_MS).count()
                    }
        };
        let mut out: Vec<UsageEvent> = Vec::new();
        let mut cursor: Option<Key> = None;
        let mut chunk = KEYS_FIRST;
        'chunks: loop {
            let mut keys =
                self.segment_keys(driver.map(|d| scan.groups[d][0].as_str()), (lo, hi), cursor, desc, chunk).await?;
            let full = keys.len() as i64 == chunk;
            cursor = keys.last().copied();
            for g in &others {
                let (Some(first), Some(last)) = (keys.first(), keys.last()) else { break };
                let window = (first.0.min(last.0), first.0.max(last.0));
                let cap = keys.len() * WINDOW_ROWS_PER_KEY + 64;
                let present = match self.term_keys(g, window, cap).await? {
                    Some(present) => present,
                    // The group is much denser than the driver here: probe the keys instead.
                    None => self.term_keys_at(g, &keys).await?,
                };
                keys.retain(|k| present.contains(k));
            }
            for page in keys.chunks(PAGE) {
                if settled(&out, page[0].0) {
                    break 'chunks;
                }
                let mut data = self.segment_data(page, min_below).await?;
                for &(ts_max, id) in page {
                    if settled(&out, ts_max) {
                        break 'chunks;
                    }
                    // Absent: its events all arrived too late for `min_below`.
                    if let Some(bytes) = data.remove(&id) {
                        out.extend(decode(id, &bytes)?.into_iter().filter(|e| in_range(e) && keep(e)));
                    }
                }
            }
            if !full {
                break;
            }
            chunk = (chunk * 4).min(KEYS_MAX);
        }
        if desc {
            out.sort_unstable_by(|a, b| (b.ts_ms, &b.id).cmp(&(a.ts_ms, &a.id)));
        } else {
            out.sort_unstable_by(|a, b| (a.ts_ms, &a.id).cmp(&(b.ts_ms, &b.id)));
        }
        if scan.limit > 0 {
            out.truncate(scan.limit);
        }
        Ok(out)
    }

    /// Up to `limit` segment keys in read order after `cursor`, with `ts_max` in `lo..=hi`:
    /// those of segments holding `term`, or of every segment. One index-only range read.
    async fn segment_keys(
        &self,
        term: Option<&str>,
        (lo, hi): (Option<i64>, Option<i64>),
        cursor: Option<Key>,
        desc: bool,
        limit: i64,
    ) -> Result<Vec<Key>, StoreError> {
        use sqlx::QueryBuilder;
        let col_id = if term.is_some() { "segment" } else { "id" };
        Ok(on_pool!(self, |p| {
            let mut qb = match term {
                Some(t) => {
                    let mut qb = QueryBuilder::new("SELECT ts_max, segment FROM usage_segment_terms WHERE term = ");
                    qb.push_bind(t.to_owned());
                    qb
                }
                None => QueryBuilder::new("SELECT ts_max, id FROM usage_segments WHERE 1 = 1"),
            };
            if let Some(lo) = lo {
                qb.push(" AND ts_max >= ");
                qb.push_bind(lo);
            }
            if let Some(hi) = hi {
                qb.push(" AND ts_max <= ");
                qb.push_bind(hi);
            }
            if let Some((ts, id)) = cursor {
                let op = if desc { "<" } else { ">" };
                qb.push(format!(" AND (ts_max {op} "));
                qb.push_bind(ts);
                qb.push(" OR (ts_max = ");
                qb.push_bind(ts);
                qb.push(format!(" AND {col_id} {op} "));
                qb.push_bind(id);
                qb.push("))");
            }
            let dir = if desc { "DESC" } else { "ASC" };
            qb.push(format!(" ORDER BY ts_max {dir}, {col_id} {dir} LIMIT "));
            qb.push_bind(limit);
            qb.build_query_as::<Key>().persistent(false).fetch_all(p).await?
        }))
    }

    /// The keys of segments holding any of `terms` with `ts_max` in `a..=b` (an index range
    /// read per term); `None` when there are more than `cap` (the caller probes instead).
    async fn term_keys(
        &self,
        terms: &[String],
        (a, b): (i64, i64),
        cap: usize,
    ) -> Result<Option<std::collections::HashSet<Key>>, StoreError> {
        let rows = self.term_rows(terms, TermsAt::Window { a, b, limit: cap.saturating_add(1) }).await?;
        Ok((rows.len() <= cap).then(|| rows.into_iter().collect()))
    }

    /// The keys among `keys` of segments holding any of `terms`: the terms' rows at the keys'
    /// `ts_max` values (index lookups, `PROBES` values a statement).
    async fn term_keys_at(&self, terms: &[String], keys: &[Key]) -> Result<std::collections::HashSet<Key>, StoreError> {
        const PROBES: usize = 256;
        let mut times: Vec<i64> = keys.iter().map(|k| k.0).collect();
        times.sort_unstable();
        times.dedup();
        let mut present = std::collections::HashSet::new();
        for part in times.chunks(PROBES) {
            present.extend(self.term_rows(terms, TermsAt::Times(part)).await?);
        }
        Ok(present)
    }

    /// The `(ts_max, segment)` rows of `terms` at `at`.
    async fn term_rows(&self, terms: &[String], at: TermsAt<'_>) -> Result<Vec<Key>, StoreError> {
        use sqlx::QueryBuilder;
        Ok(on_pool!(self, |p| {
            let mut qb = QueryBuilder::new("SELECT ts_max, segment FROM usage_segment_terms WHERE term IN (");
            let mut sep = qb.separated(", ");
            for t in terms {
                sep.push_bind(t.clone());
            }
            match at {
                TermsAt::Window { a, b, limit } => {
                    qb.push(") AND ts_max >= ");
                    qb.push_bind(a);
                    qb.push(" AND ts_max <= ");
                    qb.push_bind(b);
                    qb.push(" LIMIT ");
                    qb.push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
                }
                TermsAt::Times(times) => {
                    qb.push(") AND ts_max IN (");
                    let mut sep = qb.separated(", ");
                    for t in times {
                        sep.push_bind(*t);
                    }
                    qb.push(")");
                }
            }
            qb.build_query_as::<Key>().persistent(false).fetch_all(p).await?
        }))
    }

    /// The data of the segments `keys` (by id) whose `ts_min` is below `min_below`.
    async fn segment_data(
        &self,
        keys: &[Key],
        min_below: Option<i64>,
    ) -> Result<std::collections::HashMap<i64, Vec<u8>>, StoreError> {
        use sqlx::QueryBuilder;
        let rows: Vec<(i64, Vec<u8>)> = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new("SELECT id, data FROM usage_segments WHERE id IN (");
            let mut sep = qb.separated(", ");
            for (_, id) in keys {
                sep.push_bind(*id);
            }
            qb.push(")");
            if let Some(m) = min_below {
                qb.push(" AND ts_min < ");
                qb.push_bind(m);
            }
            qb.build_query_as::<(i64, Vec<u8>)>().persistent(false).fetch_all(p).await?
        });
        Ok(rows.into_iter().collect())
    }

    /// One event by id, through the time its UUIDv7 carries (the segments around it); an id
    /// of another form names no event (the proxy makes every event id a UUIDv7, and reading
    /// every segment for a mistyped id would cost a full scan of the log).
    pub(crate) async fn find_event(&self, id: &str) -> Result<Option<UsageEvent>, StoreError> {
        let Some(t) = id_time_ms(id) else { return Ok(None) };
        let scan = Scan {
            start_ms: Some(t.saturating_sub(ID_TIME_SLACK_MS)),
            end_ms: Some(t.saturating_add(ID_TIME_SLACK_MS)),
            limit: 1,
            ..Scan::default()
        };
        Ok(self.scan(&scan, |e| e.id == id).await?.pop())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::tests::event;

    #[test]
    fn varints_are_prosts() {
        for v in [0, 1, 127, 128, 300, 0x3fff, 0x4000, 0x1f_ffff, 0x20_0000, u64::from(u32::MAX), u64::MAX] {
            let (mut ours, mut prosts) = (Vec::new(), Vec::new());
            put_varint(&mut ours, v);
            prost::encoding::encode_varint(v, &mut prosts);
            assert_eq!(ours, prosts, "{v}");
        }
    }

    #[test]
    fn a_segment_round_trips_every_field() {
        let mut a = event(3);
        a.status = RequestStatus::UpstreamError;
        a.http_status = Some(529);
        a.error_class = Some("upstream_5xx".into());
        a.ttft_ms = Some(0);
        a.streamed = true;
        a.cost = Cost { input: 1, output: 2, reasoning: 3, cached_input: 4, total: 10, ..Cost::default() };
        a.usage.cache_write_1h = 7;
        a.conversation_id = Some("conv".into());
        a.agent = Some("".into());
        a.transcript = Some(crate::transcripts::TranscriptRef {
            batch: "b1".into(),
            flags: crate::transcripts::TranscriptFlags { input: true, output: false, truncated: true },
        });
        a.catalog_version = Some("2026-11-01".into());
        a.priced_by_override = true;
        let mut b = event(1);
        b.request_id = b.id.clone();
        b.ts_ms = -5;
        let c = event(2);
        let mut d = a.clone();
        d.status = RequestStatus::Success;
        let segs = cut(&[&a, &b, &c, &d]);
        assert_eq!(segs.len(), 2, "the failed request in a segment of its own");
        let back = decode(1, &segs[0].data).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, vec![b, c, d], "in the order given (one segment: not sorted)");
        assert!(Arc::ptr_eq(&back[0].provider, &back[2].provider), "one provider value shared by the segment's events");
        assert_eq!((segs[0].ts_min, segs[0].ts_max, segs[0].events), (-5, 3000, 3));
        assert!(!segs[0].terms.iter().any(|t| t == "f"));
        assert_eq!(decode(2, &segs[1].data).unwrap_or_else(|e| panic!("{e}")), vec![a]);
        assert!(segs[1].terms.iter().any(|t| t == "f"));
    }

    #[test]
    fn segments_are_cut_by_span_and_size() {
        let mut events: Vec<UsageEvent> = (0..2_500).map(event).collect();
        for (i, e) in events.iter_mut().enumerate() {
            e.ts_ms = i as i64;
        }
        events[7].ts_ms = 10 * SPAN_MAX_MS;
        let segs = cut(&events.iter().collect::<Vec<_>>());
        let sizes: Vec<i64> = segs.iter().map(|s| s.events).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 499, 1]);
        assert!(segs.iter().all(|s| s.ts_max - s.ts_min <= SPAN_MAX_MS));
        let all: usize =
            segs.iter().enumerate().map(|(i, s)| decode(i as i64, &s.data).map(|v| v.len()).unwrap_or(0)).sum();
        assert_eq!(all, 2_500);
    }

    /// The terms an event puts in its segment, one by one (what `Dict::terms` collects).
    fn terms_of(e: &UsageEvent) -> Vec<String> {
        [
            Some(Term::Provider(&e.provider)),
            Some(Term::Model(e.model.as_deref())),
            Some(Term::User(e.user.as_deref())),
            Some(Term::Agent(e.agent.as_deref())),
            Some(Term::Status(e.status.as_str())),
            (e.status != RequestStatus::Success).then_some(Term::Failed),
            Some(e.conversation_id.as_deref().map_or(Term::Single, Term::Conversation)),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.text())
        .collect()
    }

    #[test]
    fn a_segments_terms_are_those_of_its_events() {
        let events: Vec<UsageEvent> = (0..300)
            .map(|i| {
                let mut e = event(i);
                e.ts_ms = i as i64;
                e.provider = format!("p{}", i % 3).into();
                e.model = (i % 7 != 0).then(|| format!("m{}", i % 4));
                e.user = (i % 5 != 0).then(|| format!("u{}", i % 6).into());
                // a value that is a user in some events and an agent in others
                e.agent = (i % 2 == 0).then(|| format!("u{}", i % 3).into());
                e.status = if i % 11 == 0 { RequestStatus::UpstreamError } else { RequestStatus::Success };
                e.conversation_id = (i % 3 == 0).then(|| format!("c{}", i % 9));
                e
            })
            .collect();
        for chunk in [&events[..], &events[..1], &events[1..2], &events[6..7]] {
            let segs = cut(&chunk.iter().collect::<Vec<_>>());
            for seg in &segs {
                let events = decode(0, &seg.data).unwrap_or_else(|e| panic!("{e}"));
                let mut want: Vec<String> = events.iter().flat_map(terms_of).collect();
                want.sort_unstable();
                want.dedup();
                assert_eq!(seg.terms, want);
            }
            assert_eq!(segs.iter().map(|s| s.events).sum::<i64>(), chunk.len() as i64);
        }
    }

    #[test]
    fn terms_name_every_filterable_value_once() {
        let mut a = event(1);
        a.conversation_id = Some("c1".into());
        let mut b = event(2);
        b.status = RequestStatus::ClientCancelled;
        b.model = None;
        let segs = cut(&[&a, &b]);
        let terms: Vec<String> = segs.iter().flat_map(|s| s.terms.clone()).collect();
        for t in ["p:p", "m:model-1", "m:", "u:user-1", "u:user-2", "a:", "s:success", "f", "c:c1", "n"] {
            assert!(terms.iter().any(|x| x == t), "{t} in {terms:?}");
        }
        assert_eq!(segs[0].terms.iter().filter(|t| *t == "p:p").count(), 1);
    }

    #[test]
    fn corrupt_segments_are_reported() {
        assert!(matches!(decode(9, &[0xff, 0xff]), Err(StoreError::Corrupt(m)) if m.contains("segment 9")));
        let mut data = cut(&[&event(1)]).remove(0).data;
        // the first dictionary entry (the provider) removed: indexes point past the end
        let mut wire: SegmentWire = prost::Message::decode(data.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        wire.dict.clear();
        data = prost::Message::encode_to_vec(&wire);
        assert!(matches!(decode(2, &data), Err(StoreError::Corrupt(m)) if m.contains("dictionary")));
    }

    #[test]
    fn uuid_v7_ids_carry_their_time() {
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_765_000_000, 123_000_000);
        let id = uuid::Uuid::new_v7(ts).to_string();
        assert_eq!(id_time_ms(&id), Some(1_765_000_000_123));
        assert_eq!(id_time_ms("67e55044-10b1-426f-9247-bb680e5fe0c8"), None, "a UUIDv4");
        assert_eq!(id_time_ms("ev-1"), None);
    }
}
