//! The incremental SSE parser (`tollgate_protocol::SseParser`) over arbitrary bytes.
//!
//! Input: `[chunk seed, limit selector] ++ stream`. Checks, for a per-event limit picked by the
//! selector (the default 16 MiB, or a few bytes to reach the truncation paths):
//! - the same events (fields, byte offsets, truncation) whatever the chunking: whole, byte by
//!   byte, random pieces;
//! - with the default limit, the same events as a whole-buffer reference parser written here
//!   from the documented rules (lines end in LF, CRLF or lone CR; `:` comments; `event`,
//!   `data` joined with LF, `id` without NUL; a blank line dispatches an event with data; a
//!   final event without its blank line is dispatched at the end);
//! - offsets lie within the input, in order, never overlapping; never more out than in (each
//!   event's data has no more characters than the event has bytes); a truncated event has no
//!   data; `boundary() <= offset()`, `offset()` counts the bytes pushed, the parser holds at
//!   most the limit; after `finish` everything is in a closed block.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::{chunkings, control};
use tollgate_protocol::{MAX_HELD_BYTES, SseEvent, SseParser};

const LIMITS: [usize; 6] = [MAX_HELD_BYTES, MAX_HELD_BYTES, 1, 8, 32, 100];

fuzz_target!(|data: &[u8]| {
    let ([seed, limit], input) = control::<2>(data);
    let cap = LIMITS[usize::from(limit) % LIMITS.len()];
    let mut first: Option<Vec<SseEvent>> = None;
    for pieces in chunkings(input, seed) {
        let events = parse(&pieces, cap);
        check_events(input, &events);
        match &first {
            None => first = Some(events),
            Some(f) => assert_eq!(f, &events, "chunking changed the events (limit {cap})"),
        }
    }
    if cap == MAX_HELD_BYTES {
        let got: Vec<_> = first
            .unwrap_or_default()
            .into_iter()
            .map(|e| Ref { event: e.event, data: e.data, id: e.id, start: e.start, end: e.end })
            .collect();
        assert_eq!(got, reference(input), "parser and reference disagree");
    }
});

fn parse(pieces: &[&[u8]], cap: usize) -> Vec<SseEvent> {
    let mut p = SseParser::with_limit(cap);
    let mut out = Vec::new();
    let mut pushed = 0u64;
    for piece in pieces {
        out.extend(p.push(piece));
        pushed += piece.len() as u64;
        assert_eq!(p.offset(), pushed, "offset counts the bytes pushed");
        assert!(p.boundary() <= p.offset(), "boundary past the offset");
        assert!(p.buffered_len() <= cap, "holds {} > limit {cap}", p.buffered_len());
    }
    out.extend(p.finish());
    assert_eq!(p.boundary(), p.offset(), "after finish every byte is in a closed block");
    assert!(p.finish().is_empty(), "finish twice dispatches nothing");
    out
}

fn check_events(input: &[u8], events: &[SseEvent]) {
    let mut prev_end = 0u64;
    for e in events {
        assert!(prev_end <= e.start && e.start < e.end, "event offsets out of order: {e:?}");
        assert!(e.end <= input.len() as u64, "event ends past the input: {e:?}");
        assert!(e.data.chars().count() as u64 <= e.end - e.start, "more data than bytes: {e:?}");
        assert!(!e.truncated || e.data.is_empty(), "truncated event with data: {e:?}");
        prev_end = e.end;
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Ref {
    event: Option<String>,
    data: String,
    id: Option<String>,
    start: u64,
    end: u64,
}

/// A whole-buffer parser of the same rules, as simple as possible.
fn reference(input: &[u8]) -> Vec<Ref> {
    #[derive(Default)]
    struct State {
        event: Option<String>,
        data: Vec<u8>,
        has_data: bool,
        id: Option<String>,
        block_start: u64,
    }
    impl State {
        fn dispatch(&mut self, end: u64, out: &mut Vec<Ref>) {
            out.push(Ref {
                event: self.event.take(),
                data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
                id: self.id.take(),
                start: self.block_start,
                end,
            });
            self.has_data = false;
        }
        fn line(&mut self, line: &[u8], end: u64, out: &mut Vec<Ref>) {
            if line.is_empty() {
                if self.has_data {
                    self.dispatch(end, out);
                } else {
                    self.event = None;
                    self.id = None;
                }
                self.block_start = end;
                return;
            }
            if line[0] == b':' {
                return;
            }
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => (&line[..c], line[c + 1..].strip_prefix(b" ").unwrap_or(&line[c + 1..])),
                None => (line, &b""[..]),
            };
            match name {
                b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
                b"data" => {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.has_data = true;
                    self.data.extend_from_slice(value);
                }
                b"id" if !value.contains(&0) => self.id = Some(String::from_utf8_lossy(value).into_owned()),
                _ => {}
            }
        }
    }
    let mut s = State::default();
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        match input[i..].iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(p) => {
                let term = i + p;
                let end = if input[term] == b'\r' && input.get(term + 1) == Some(&b'\n') { term + 2 } else { term + 1 };
                s.line(&input[i..term], end as u64, &mut out);
                i = end;
            }
            None => {
                s.line(&input[i..], input.len() as u64, &mut out);
                i = input.len();
            }
        }
    }
    if s.has_data {
        s.dispatch(input.len() as u64, &mut out);
    }
    out
}
