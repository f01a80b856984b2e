//! The response `Tap` over every family, fed an arbitrary body in random chunkings.
//!
//! Input: `[fixture case, mode, chunk seed] ++ body`. The case (one of the golden fixtures
//! under `tests/fixtures/`, embedded by `build.rs`) gives the family, request, status,
//! content type and response headers; the body replaces its recorded response. Mode bit 0:
//! for an event-stream case, the body is an `.events.json` description encoded into real
//! frames; bit 1: the request was not edited (no `include_usage` injection, so no filtering).
//! Checks:
//! - no panic; the client bytes, usage, stream error and terminal flag are the same whatever
//!   the chunking (whole, byte by byte, random);
//! - without the edit, the client receives the input unchanged; with it, the input minus
//!   whole SSE events (offsets from `SseParser` over the whole input), each of them a
//!   usage-only chunk (`usage` set, no `choices`, no `error`), so never more out than in;
//! - with the edit, the usage, stream error and terminal flag are those of the same body read
//!   without it (filtering changes what the client receives, never what is metered);
//! - `finish` twice returns nothing the second time; `terminal_seen` never goes back to false;
//!   the tap holds at most twice what it was given (the open event and its parse).
#![no_main]

use std::collections::BTreeSet;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_fuzz::{Fixture, Lenient, chunkings, control, fixture, lenient};
use tollgate_protocol::fixture::event_stream_frames;
use tollgate_protocol::{RequestInfo, SseEvent, SseParser, Tap, Usage, inspect, prepare_body};

fuzz_target!(|data: &[u8]| {
    let ([index, mode, seed], raw) = control::<3>(data);
    let fx = fixture(index);
    let case = &fx.case;
    let event_stream = case.content_type.starts_with("application/vnd.amazon.eventstream");
    let input: Vec<u8> = if event_stream && mode & 1 == 1 {
        match event_stream_frames(raw) {
            Ok(frames) => frames.concat(),
            Err(_) => return,
        }
    } else {
        raw.to_vec()
    };
    let body = case.request_body();
    let info = inspect(fx.family, &case.method, &case.path, case.query.as_deref(), &body);
    let (_, injected) = prepare_body(fx.family, &info, Bytes::from(body));
    let injected = injected && mode & 2 == 0;

    let mut first: Option<Outcome> = None;
    for pieces in chunkings(&input, seed) {
        let got = feed(fx, &info, &pieces, injected);
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(f, &got, "{}: chunking changed the result", fx.name),
        }
    }
    let Some((out, usage, error, terminal)) = first else { return };
    if injected {
        // Filtering changes what the client receives, never what the tap reads.
        let plain = feed(fx, &info, &[&input], false);
        assert_eq!((usage, error, terminal), (plain.1, plain.2, plain.3), "{}: filtering changed the usage", fx.name);
        assert!(
            is_input_minus_usage_chunks(&input, &out),
            "{}: the client bytes are not the input minus usage-only chunks",
            fx.name
        );
    } else {
        assert!(out == input, "{}: bytes changed without the edit", fx.name);
    }
});

/// Feeds `pieces` to a fresh tap for the case; checks the per-feed invariants.
fn feed(fx: &Fixture, info: &RequestInfo, pieces: &[&[u8]], injected: bool) -> Outcome {
    let case = &fx.case;
    let mut tap = Tap::new(fx.family, info, case.status, Some(&case.content_type), injected);
    for (name, value) in &case.response_headers {
        tap.observe_header(name, value);
    }
    let mut out = Vec::new();
    let mut fed = 0;
    let mut terminal = false;
    for piece in pieces {
        out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(piece)));
        fed += piece.len();
        assert!(!terminal || tap.terminal_seen(), "{}: terminal_seen went back to false", fx.name);
        terminal = tap.terminal_seen();
        assert!(out.len() <= fed, "{}: more out than in", fx.name);
        assert!(tap.buffered_len() <= 2 * fed, "{}: holds more than twice what it was given", fx.name);
    }
    out.extend_from_slice(&tap.finish());
    assert!(tap.finish().is_empty(), "{}: finish twice", fx.name);
    (out, tap.usage(), tap.stream_error().map(str::to_string), tap.terminal_seen())
}

/// What the client received, the usage, the stream error and the terminal flag.
type Outcome = (Vec<u8>, Option<Usage>, Option<String>, bool);

/// Whether `out` is `input` with some whole SSE events removed, each a usage-only chunk.
fn is_input_minus_usage_chunks(input: &[u8], out: &[u8]) -> bool {
    let mut parser = SseParser::new();
    let mut events = parser.push(input);
    events.extend(parser.finish());
    // Every position in `out` that the input read so far can align with.
    let mut states: BTreeSet<usize> = BTreeSet::from([0]);
    let mut at = 0usize;
    for ev in &events {
        let (start, end) = (offset(ev.start), offset(ev.end));
        let gap = &input[at..start];
        let bytes = &input[start..end];
        let droppable = usage_only(ev);
        let mut next = BTreeSet::new();
        for j in states {
            if !out[j..].starts_with(gap) {
                continue;
            }
            let j = j + gap.len();
            if out[j..].starts_with(bytes) {
                next.insert(j + bytes.len());
            }
            if droppable {
                next.insert(j);
            }
        }
        states = next;
        at = end;
    }
    states.into_iter().any(|j| out[j..] == input[at..])
}

fn offset(o: u64) -> usize {
    usize::try_from(o).unwrap_or(usize::MAX)
}

/// An OpenAI chat chunk carrying only usage: `usage` set, `choices` absent or empty, no `error`.
fn usage_only(ev: &SseEvent) -> bool {
    if ev.truncated {
        return false;
    }
    let o = match lenient(ev.data.as_bytes()) {
        Lenient::Value(Value::Object(o)) => o,
        // JSON a `Value` cannot hold (`1e400`), which the tap's decoder skips: either way.
        Lenient::Unrepresentable => return true,
        Lenient::Value(_) | Lenient::Invalid => return false,
    };
    let set = |k: &str| o.get(k).is_some_and(|v| !v.is_null());
    set("usage")
        && !set("error")
        && o.get("choices").is_none_or(|c| c.is_null() || c.as_array().is_some_and(Vec::is_empty))
}
