//! An incremental Server-Sent Events parser (the WHATWG `text/event-stream` rules) that
//! accepts bytes in any chunking and reports where each event ends in the byte stream, so
//! a filtering tap can tell which bytes belong to which event. Pure: no IO.
//!
//! Lines end in `\n`, `\r\n` or a lone `\r`; `event:`, `data:` (several joined with `\n`),
//! `id:` and `retry:` fields are read, `:` lines are comments, and an event is dispatched at a
//! blank line when it has data. A `\r` at the end of a chunk is resolved when the next byte
//! (or [`SseParser::finish`]) arrives, so event end offsets are always exact.
//!
//! Memory: only the current line and the current event's data are held, together capped at
//! the parser's limit ([`crate::MAX_HELD_BYTES`] by default). An event beyond it is reported
//! with `truncated: true` and empty data; its bytes are not kept.

use crate::MAX_HELD_BYTES;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (lossy UTF-8).
    pub data: String,
    /// The `id:` field of this event, if any.
    pub id: Option<String>,
    /// Stream offset of the event's first byte (just after the previous blank line).
    pub start: u64,
    /// Stream offset just past the blank line that ended the event (or the end of the stream).
    pub end: u64,
    /// The event was larger than the parser's limit; `data` is empty and must not be trusted.
    pub truncated: bool,
}

/// Incremental SSE parser. Feed bytes with [`push`](SseParser::push), then call
/// [`finish`](SseParser::finish) at end of stream.
#[derive(Debug)]
pub struct SseParser {
    cap: usize,
    /// Stream offset of the next byte to be pushed.
    offset: u64,
    /// The current line (without its terminator).
    line: Vec<u8>,
    line_overflow: bool,
    /// The previous chunk ended in `\r`: the line is over, but a following `\n` belongs to it.
    pending_cr: bool,
    /// Stream offset just after the last blank line: every byte before it is in a closed block.
    block_start: u64,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    id: Option<String>,
    truncated: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new()
    }
}

impl SseParser {
    /// A parser holding at most [`MAX_HELD_BYTES`] per event.
    pub fn new() -> SseParser {
        SseParser::with_limit(MAX_HELD_BYTES)
    }

    /// A parser holding at most `cap` bytes per event (line + data).
    pub fn with_limit(cap: usize) -> SseParser {
        SseParser {
            cap,
            offset: 0,
            line: Vec::new(),
            line_overflow: false,
            pending_cr: false,
            block_start: 0,
            event: None,
            data: Vec::new(),
            has_data: false,
            id: None,
            truncated: false,
        }
    }

    /// Parses `chunk` and returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let base = self.offset;
        let mut i = 0;
        while i < chunk.len() {
            if self.pending_cr {
                self.pending_cr = false;
                if chunk[i] == b'\n' {
                    i += 1;
                    self.end_line(base + i as u64, &mut out);
                    continue;
                }
                self.end_line(base + i as u64, &mut out);
            }
            let rest = &chunk[i..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.append(rest);
                    i = chunk.len();
                }
                Some(p) => {
                    self.append(&rest[..p]);
                    i += p + 1;
                    if rest[p] == b'\n' {
                        self.end_line(base + i as u64, &mut out);
                    } else {
                        self.pending_cr = true;
                    }
                }
            }
        }
        self.offset = base + chunk.len() as u64;
        out
    }

    /// End of stream: closes a pending line and dispatches a final event that lacks its
    /// trailing blank line.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if self.pending_cr {
            self.pending_cr = false;
            self.end_line(self.offset, &mut out);
        }
        if !self.line.is_empty() || self.line_overflow {
            self.end_line(self.offset, &mut out);
        }
        if self.has_data {
            self.dispatch(self.offset, &mut out);
        }
        self.block_start = self.offset;
        out
    }

    /// Stream offset up to which every byte belongs to a closed block (an event or a blank-line
    /// separated group of comments / fields). Bytes past it belong to an event still open.
    pub fn boundary(&self) -> u64 {
        self.block_start
    }

    /// Stream offset of the next byte (the number of bytes pushed so far).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held for the event in progress.
    pub fn buffered_len(&self) -> usize {
        self.line.len() + self.data.len()
    }

    fn append(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.line_overflow {
            return;
        }
        if self.line.len() + self.data.len() + bytes.len() > self.cap {
            self.line_overflow = true;
            self.line = Vec::new();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, end: u64, out: &mut Vec<SseEvent>) {
        if self.line_overflow {
            // An over-long line: most likely data. The event is kept as a marker only.
            self.line_overflow = false;
            self.truncated = true;
            self.has_data = true;
            self.data = Vec::new();
            return;
        }
        if self.line.is_empty() {
            if self.has_data {
                self.dispatch(end, out);
            } else {
                self.event = None;
                self.id = None;
                self.truncated = false;
            }
            self.block_start = end;
            return;
        }
        let line = std::mem::take(&mut self.line);
        self.field(&line);
        self.line = line;
        self.line.clear();
    }

    fn field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"data" => {
                let first = !self.has_data;
                self.has_data = true;
                if self.truncated {
                    return;
                }
                let extra = usize::from(!first) + value.len();
                if self.data.len() + extra > self.cap {
                    self.truncated = true;
                    self.data = Vec::new();
                    return;
                }
                if !first {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => self.id = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, end: u64, out: &mut Vec<SseEvent>) {
        let data = std::mem::take(&mut self.data);
        out.push(SseEvent {
            event: self.event.take(),
            data: match String::from_utf8(data) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            },
            id: self.id.take(),
            start: self.block_start,
            end,
            truncated: std::mem::take(&mut self.truncated),
        });
        self.has_data = false;
        self.block_start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` pushed in pieces cut at `cuts` (sorted offsets), then finishes.
    fn parse_cut(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let mut last = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            out.extend(p.push(&input[last..c]));
            last = c;
        }
        out.extend(p.finish());
        out
    }

    /// (event, data, id, start, end)
    type Summary<'a> = (Option<&'a str>, &'a str, Option<&'a str>, u64, u64);

    fn summary(events: &[SseEvent]) -> Vec<Summary<'_>> {
        events.iter().map(|e| (e.event.as_deref(), e.data.as_str(), e.id.as_deref(), e.start, e.end)).collect()
    }

    const MIXED: &[u8] = b": comment\n\nevent: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\ndata:a\rdata: b\r\rid: 7\ndata\ndata:  two spaces\n\nretry: 10\nunknown: x\n\n:only a comment\n\nevent: end\ndata: last";

    #[test]
    fn parses_every_line_ending_and_field() {
        let events = parse_cut(MIXED, &[]);
        let end_ping = b": comment\n\nevent: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n".len() as u64;
        let end_ab = end_ping + b"data:a\rdata: b\r\r".len() as u64;
        let end_id = end_ab + b"id: 7\ndata\ndata:  two spaces\n\n".len() as u64;
        assert_eq!(
            summary(&events),
            vec![
                (Some("ping"), "{\"type\": \"ping\"}", None, 11, end_ping),
                (None, "a\nb", None, end_ping, end_ab),
                (None, "\n two spaces", Some("7"), end_ab, end_id),
                (Some("end"), "last", None, MIXED.len() as u64 - 21, MIXED.len() as u64),
            ]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let whole = parse_cut(MIXED, &[]);
        for a in 0..=MIXED.len() {
            assert_eq!(parse_cut(MIXED, &[a]), whole, "split at {a}");
            for b in a..=MIXED.len() {
                assert_eq!(parse_cut(MIXED, &[a, b]), whole, "split at {a}, {b}");
            }
        }
        let bytes: Vec<usize> = (1..MIXED.len()).collect();
        assert_eq!(parse_cut(MIXED, &bytes), whole);
    }

    #[test]
    fn event_ranges_cover_their_bytes() {
        let input = b"data: one\n\n: keepalive\n\ndata: two\n\n";
        let events = parse_cut(input, &[]);
        assert_eq!(&input[events[0].start as usize..events[0].end as usize], b"data: one\n\n");
        assert_eq!(&input[events[1].start as usize..events[1].end as usize], b"data: two\n\n");
    }

    #[test]
    fn crlf_split_between_cr_and_lf_keeps_exact_offsets() {
        let input = b"data: x\r\n\r\ndata: y\r\n\r\n";
        for cut in 0..=input.len() {
            let events = parse_cut(input, &[cut]);
            assert_eq!(summary(&events), vec![(None, "x", None, 0, 11), (None, "y", None, 11, 22)], "cut {cut}");
        }
        // A lone CR as the final blank line is only resolved by the next byte or by finish().
        let mut p = SseParser::new();
        assert!(p.push(b"data: z\r\r").is_empty());
        assert_eq!(p.boundary(), 0);
        assert_eq!(summary(&p.finish()), vec![(None, "z", None, 0, 9)]);
    }

    #[test]
    fn blocks_without_data_do_not_dispatch() {
        let events = parse_cut(b"event: x\n\nid: 3\n\n: c\n\n", &[]);
        assert!(events.is_empty());
        let events = parse_cut(b"event: x\n\ndata: y\n\n", &[]);
        assert_eq!(summary(&events), vec![(None, "y", None, 10, 19)]);
    }

    #[test]
    fn huge_event_is_truncated_and_bounded() {
        let mut p = SseParser::with_limit(1024);
        let mut got = p.push(b"data: small\n\ndata: ");
        for _ in 0..1000 {
            got.extend(p.push(&[b'x'; 100]));
            assert!(p.buffered_len() <= 1024);
        }
        got.extend(p.push(b"\ndata: more\n\ndata: after\n\n"));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].data, "small");
        assert!(got[1].truncated && got[1].data.is_empty());
        assert_eq!(got[1].end - got[1].start, 6 + 100_000 + 1 + 12);
        assert_eq!((got[2].data.as_str(), got[2].truncated), ("after", false));
        // Many data lines that add up past the limit are truncated too.
        let mut p = SseParser::with_limit(64);
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(p.push(b"data: 0123456789\n"));
            assert!(p.buffered_len() <= 64);
        }
        got.extend(p.push(b"\n"));
        assert!(got[0].truncated);
    }
}
