//! Reading JSON without building a `serde_json::Value`: what the proxy needs from bodies it
//! otherwise passes through untouched. Pure: no IO.
//!
//! - [`ObjectCapture`]: fed a JSON object in chunks, captures the raw bytes of chosen top-level
//!   members (`usage`, `usageMetadata`) and holds nothing else, so a 100 MB embeddings body
//!   costs a state machine, not a buffer.
//! - [`ArraySplitter`]: fed a top-level JSON array in chunks (Gemini's streamed array), yields
//!   each element as soon as it closes, holding only the element in progress.
//! - [`object_members`] / [`array_elements`]: byte ranges of the members / elements of a complete
//!   object or array, for byte-exact edits of request and models-list bodies.
//! - `peek_body`: the request's `model` and `stream` through a borrowing serde visitor that
//!   skips every other member.
//!
//! Held items are capped ([`crate::MAX_HELD_BYTES`] by default): a longer captured value or
//! element is dropped (reported as missing), and the scanner keeps tracking structure.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::MAX_HELD_BYTES;

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// String state shared by the streaming scanners.
#[derive(Debug, Default, Clone, Copy)]
struct Lexer {
    in_string: bool,
    escape: bool,
}

impl Lexer {
    /// Tracks `b` if it is inside (or closes) a string; returns false when `b` is structural
    /// (outside any string), including a `"` that opens one.
    fn in_string(&mut self, b: u8) -> bool {
        if self.in_string {
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return true;
        }
        if b == b'"' {
            self.in_string = true;
            return true;
        }
        false
    }
}

/// The bytes outside a string that change [`ObjectCapture`]'s state: a quote opens a string,
/// brackets nest, a comma or a closing bracket at depth 0 ends the member.
static STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'[' as usize] = true;
    t[b'}' as usize] = true;
    t[b']' as usize] = true;
    t[b',' as usize] = true;
    t
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjState {
    Start,
    BeforeKey,
    Key,
    BeforeColon,
    BeforeValue,
    Value,
    Done,
    NotAnObject,
}

/// Streaming capture of chosen top-level members of one JSON object.
#[derive(Debug)]
pub struct ObjectCapture {
    names: &'static [&'static str],
    cap: usize,
    state: ObjState,
    lex: Lexer,
    depth: usize,
    key: Vec<u8>,
    key_escape: bool,
    target: Option<&'static str>,
    value: Vec<u8>,
    value_overflow: bool,
}

impl ObjectCapture {
    /// Captures the top-level members named in `names`, each up to [`MAX_HELD_BYTES`].
    pub fn new(names: &'static [&'static str]) -> ObjectCapture {
        ObjectCapture::with_limit(names, MAX_HELD_BYTES)
    }

    /// Captures the top-level members named in `names`, each up to `cap` bytes.
    pub fn with_limit(names: &'static [&'static str], cap: usize) -> ObjectCapture {
        ObjectCapture {
            names,
            cap,
            state: ObjState::Start,
            lex: Lexer::default(),
            depth: 0,
            key: Vec::new(),
            key_escape: false,
            target: None,
            value: Vec::new(),
            value_overflow: false,
        }
    }

    /// Scans `chunk`; returns each wanted member completed in it as `(name, raw value bytes)`.
    /// A name may come back more than once if the object repeats it (the last one wins in JSON
    /// parsers; callers do the same).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            match self.state {
                ObjState::Done | ObjState::NotAnObject => break,
                ObjState::Start => {
                    if b == b'{' {
                        self.state = ObjState::BeforeKey;
                    } else if !is_ws(b) {
                        self.state = ObjState::NotAnObject;
                    }
                }
                ObjState::BeforeKey => match b {
                    b'"' => {
                        self.key.clear();
                        self.key_escape = false;
                        self.state = ObjState::Key;
                    }
                    b'}' => self.state = ObjState::Done,
                    _ => {}
                },
                ObjState::Key => {
                    if self.key_escape {
                        self.key_escape = false;
                        self.keep_key(&chunk[i..=i]);
                        i += 1;
                        continue;
                    }
                    // The name's plain bytes up to its closing quote or a backslash, at once.
                    let rest = &chunk[i..];
                    let run = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                    self.keep_key(&rest[..run]);
                    i += run;
                    match rest.get(run) {
                        Some(b'"') => {
                            self.state = ObjState::BeforeColon;
                            i += 1;
                        }
                        Some(_) => {
                            self.key_escape = true;
                            self.keep_key(b"\\");
                            i += 1;
                        }
                        None => {}
                    }
                    continue;
                }
                ObjState::BeforeColon => {
                    if b == b':' {
                        self.target = self.names.iter().copied().find(|n| n.as_bytes() == self.key.as_slice());
                        self.value.clear();
                        self.value_overflow = false;
                        self.depth = 0;
                        self.lex = Lexer::default();
                        self.state = ObjState::BeforeValue;
                    } else if !is_ws(b) {
                        self.state = ObjState::NotAnObject;
                    }
                }
                ObjState::BeforeValue => {
                    if !is_ws(b) {
                        // The value's first byte is read as part of it.
                        self.state = ObjState::Value;
                        continue;
                    }
                }
                ObjState::Value => {
                    i += self.value_run(&chunk[i..], &mut out);
                    continue;
                }
            }
            i += 1;
        }
        out
    }

    /// Appends name bytes; names longer than any wanted name cannot match, so at most 65 are
    /// kept.
    fn keep_key(&mut self, bytes: &[u8]) {
        let room = 65usize.saturating_sub(self.key.len());
        self.key.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Bytes held for the member being captured.
    pub fn buffered_len(&self) -> usize {
        self.value.len() + self.key.len()
    }

    /// Reads `bytes` as the member value in progress, up to and including the `,` or `}` that
    /// ends it (completing the value), or all of them; returns how many it read. The proxy
    /// runs this over every non-streamed JSON answer, so bytes that cannot change the state
    /// are skipped in runs: inside a string with `memchr` up to the next quote or backslash
    /// (an inline scan of the first 32 bytes measured slower on the P1 answer), outside one
    /// up to the next structural byte ([`STRUCTURAL`]).
    fn value_run(&mut self, bytes: &[u8], out: &mut Vec<(&'static str, Vec<u8>)>) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            if self.lex.in_string {
                if self.lex.escape {
                    self.lex.escape = false;
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    None => i = bytes.len(),
                    Some(k) => {
                        i += k;
                        if bytes[i] == b'"' {
                            self.lex.in_string = false;
                        } else {
                            self.lex.escape = true;
                        }
                        i += 1;
                    }
                }
                continue;
            }
            while i < bytes.len() && !STRUCTURAL[usize::from(bytes[i])] {
                i += 1;
            }
            let Some(&b) = bytes.get(i) else { break };
            match b {
                b'"' => self.lex.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' | b',' if self.depth == 0 => {
                    let end = if b == b',' { ObjState::BeforeKey } else { ObjState::Done };
                    self.keep(&bytes[..i]);
                    self.complete(out);
                    self.state = end;
                    return i + 1;
                }
                b'}' | b']' => self.depth -= 1,
                _ => {}
            }
            i += 1;
        }
        self.keep(bytes);
        bytes.len()
    }

    /// Appends `bytes` to the captured value, or drops the value once it would pass the cap.
    fn keep(&mut self, bytes: &[u8]) {
        if self.target.is_some() && !self.value_overflow {
            if self.value.len() + bytes.len() > self.cap {
                self.value_overflow = true;
                self.value = Vec::new();
            } else {
                self.value.extend_from_slice(bytes);
            }
        }
    }

    fn complete(&mut self, out: &mut Vec<(&'static str, Vec<u8>)>) {
        if let Some(name) = self.target.take()
            && !self.value_overflow
        {
            while self.value.last().is_some_and(|&b| is_ws(b)) {
                self.value.pop();
            }
            out.push((name, std::mem::take(&mut self.value)));
        }
        self.value.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrState {
    Start,
    Between,
    Element,
    Done,
    Invalid,
}

/// Streaming splitter of a top-level JSON array into its elements. A top-level object instead
/// of an array is treated as a one-element array (an upstream error body, say).
#[derive(Debug)]
pub struct ArraySplitter {
    cap: usize,
    state: ArrState,
    single: bool,
    lex: Lexer,
    depth: usize,
    element: Vec<u8>,
    overflow: bool,
}

impl Default for ArraySplitter {
    fn default() -> Self {
        ArraySplitter::new()
    }
}

impl ArraySplitter {
    /// A splitter holding at most [`MAX_HELD_BYTES`] per element.
    pub fn new() -> ArraySplitter {
        ArraySplitter::with_limit(MAX_HELD_BYTES)
    }

    /// A splitter holding at most `cap` bytes per element.
    pub fn with_limit(cap: usize) -> ArraySplitter {
        ArraySplitter {
            cap,
            state: ArrState::Start,
            single: false,
            lex: Lexer::default(),
            depth: 0,
            element: Vec::new(),
            overflow: false,
        }
    }

    /// Scans `chunk`; returns the elements it completed, in order (over-long elements are
    /// skipped).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in chunk {
            match self.state {
                ArrState::Done | ArrState::Invalid => break,
                ArrState::Start => {
                    if b == b'[' {
                        self.state = ArrState::Between;
                    } else if b == b'{' {
                        self.single = true;
                        self.start_element(b, &mut out);
                    } else if !is_ws(b) {
                        self.state = ArrState::Invalid;
                    }
                }
                ArrState::Between => match b {
                    b']' => self.state = ArrState::Done,
                    b',' => {}
                    _ if is_ws(b) => {}
                    _ => self.start_element(b, &mut out),
                },
                ArrState::Element => self.element_byte(b, &mut out),
            }
        }
        out
    }

    /// Bytes held for the element in progress.
    pub fn buffered_len(&self) -> usize {
        self.element.len()
    }

    fn start_element(&mut self, b: u8, out: &mut Vec<Vec<u8>>) {
        self.state = ArrState::Element;
        self.element.clear();
        self.overflow = false;
        self.depth = 0;
        self.lex = Lexer::default();
        self.element_byte(b, out);
    }

    fn element_byte(&mut self, b: u8, out: &mut Vec<Vec<u8>>) {
        let mut closes = false;
        if !self.lex.in_string(b) {
            match b {
                b'{' | b'[' => self.depth += 1,
                b']' if self.depth == 0 => {
                    // A scalar element ended by the array's close.
                    self.complete(out);
                    self.state = ArrState::Done;
                    return;
                }
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    closes = self.depth == 0;
                }
                b',' if self.depth == 0 => {
                    self.complete(out);
                    self.state = ArrState::Between;
                    return;
                }
                _ => {}
            }
        }
        if !self.overflow {
            if self.element.len() >= self.cap {
                self.overflow = true;
                self.element = Vec::new();
            } else {
                self.element.push(b);
            }
        }
        if closes {
            self.complete(out);
            self.state = if self.single { ArrState::Done } else { ArrState::Between };
        }
    }

    fn complete(&mut self, out: &mut Vec<Vec<u8>>) {
        while self.element.last().is_some_and(|&b| is_ws(b)) {
            self.element.pop();
        }
        if !self.overflow && !self.element.is_empty() {
            out.push(std::mem::take(&mut self.element));
        }
        self.element.clear();
    }
}

/// One member of a complete JSON object: byte ranges of its key (inside the quotes) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// A complete JSON object located in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpan {
    /// Index of the `{`.
    pub open: usize,
    /// Index of the matching `}`.
    pub close: usize,
    pub members: Vec<Member>,
}

/// A complete JSON array located in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArraySpan {
    /// Index of the `[`.
    pub open: usize,
    /// Index of the matching `]`.
    pub close: usize,
    pub elements: Vec<Range<usize>>,
}

fn skip_ws(buf: &[u8], mut i: usize) -> usize {
    while i < buf.len() && is_ws(buf[i]) {
        i += 1;
    }
    i
}

/// `i` at an opening quote; returns the index just past the closing quote.
fn skip_string(buf: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let p = buf.get(j..)?.iter().position(|&b| b == b'"' || b == b'\\')?;
        j += p;
        if buf[j] == b'\\' {
            j += 2;
        } else {
            return Some(j + 1);
        }
    }
}

/// The end (exclusive) of the JSON value starting at `i` (no leading whitespace).
fn skip_value(buf: &[u8], i: usize) -> Option<usize> {
    match *buf.get(i)? {
        b'"' => skip_string(buf, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < buf.len() {
                match buf[j] {
                    b'"' => {
                        j = skip_string(buf, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        b',' | b'}' | b']' | b':' => None,
        _ => {
            let mut j = i;
            while j < buf.len() && !matches!(buf[j], b',' | b'}' | b']') && !is_ws(buf[j]) {
                j += 1;
            }
            Some(j)
        }
    }
}

/// The members of the object starting at `at` (after optional whitespace), or `None` if there
/// is no well-formed object there.
pub fn object_members(buf: &[u8], at: usize) -> Option<ObjectSpan> {
    let open = skip_ws(buf, at);
    if buf.get(open) != Some(&b'{') {
        return None;
    }
    let mut members = Vec::new();
    let mut i = skip_ws(buf, open + 1);
    if buf.get(i) == Some(&b'}') {
        return Some(ObjectSpan { open, close: i, members });
    }
    loop {
        if buf.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(buf, i)?;
        let key = i + 1..key_end - 1;
        i = skip_ws(buf, key_end);
        if buf.get(i) != Some(&b':') {
            return None;
        }
        let v = skip_ws(buf, i + 1);
        let v_end = skip_value(buf, v)?;
        members.push(Member { key, value: v..v_end });
        i = skip_ws(buf, v_end);
        match buf.get(i)? {
            b',' => i = skip_ws(buf, i + 1),
            b'}' => return Some(ObjectSpan { open, close: i, members }),
            _ => return None,
        }
    }
}

/// The elements of the array starting at `at` (after optional whitespace), or `None` if there
/// is no well-formed array there.
pub fn array_elements(buf: &[u8], at: usize) -> Option<ArraySpan> {
    let open = skip_ws(buf, at);
    if buf.get(open) != Some(&b'[') {
        return None;
    }
    let mut elements = Vec::new();
    let mut i = skip_ws(buf, open + 1);
    if buf.get(i) == Some(&b']') {
        return Some(ArraySpan { open, close: i, elements });
    }
    loop {
        let end = skip_value(buf, i)?;
        elements.push(i..end);
        i = skip_ws(buf, end);
        match buf.get(i)? {
            b',' => i = skip_ws(buf, i + 1),
            b']' => return Some(ArraySpan { open, close: i, elements }),
            _ => return None,
        }
    }
}

/// The last member of `span` whose raw key is `name`.
pub fn find_member<'a>(buf: &[u8], span: &'a ObjectSpan, name: &str) -> Option<&'a Member> {
    span.members.iter().rev().find(|m| &buf[m.key.clone()] == name.as_bytes())
}

/// What `peek_body` learned about a request body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct BodyPeek {
    pub model: Option<String>,
    pub stream: bool,
    pub error: Option<String>,
    /// The largest positive output-token cap the body names (see [`crate::output_limit`]);
    /// `None` when it names none, or the body is not a valid JSON object.
    pub output_limit: Option<i64>,
}

/// Reads the top-level `model` and `stream` of a JSON request body without building a
/// `Value`. A body whose first non-whitespace byte is not `{` is not JSON: nothing is read and
/// no error is set. Otherwise an invalid body, a non-string `model` or a repeated `model` set
/// `error`, since the model cannot then be read unambiguously. The same pass reads the
/// request's output-token caps (`output_limit`), so budgets need no second scan of the body.
pub(crate) fn peek_body(body: &[u8]) -> BodyPeek {
    if body.get(skip_ws(body, 0)) != Some(&b'{') {
        return BodyPeek::default();
    }
    match serde_json::from_slice::<Peeked>(body) {
        Ok(p) => {
            let error = if p.model_count > 1 {
                Some("`model` must appear only once in the request body".to_string())
            } else if p.model_count == 1 && p.model.is_none() {
                Some("`model` must be a string".to_string())
            } else {
                None
            };
            let model = if error.is_some() { None } else { p.model };
            let output_limit = p.caps.iter().flatten().copied().filter(|v| *v > 0).max();
            BodyPeek { model, stream: p.stream, error, output_limit }
        }
        Err(e) => BodyPeek {
            model: None,
            stream: false,
            error: Some(format!("the request body is not valid JSON, so `model` cannot be read: {e}")),
            output_limit: None,
        },
    }
}

struct Peeked {
    model: Option<String>,
    model_count: u32,
    stream: bool,
    /// Each output-token cap as its last occurrence gave it ([`Cap`] order).
    caps: [Option<i64>; Cap::COUNT],
}

/// Where a family puts a request's output-token cap: top-level `max_tokens`,
/// `max_completion_tokens`, `max_output_tokens`, `maxTokens`, and inside the top-level
/// objects `generationConfig.maxOutputTokens` (Gemini), `generation_config.max_output_tokens`
/// and `inferenceConfig.maxTokens` (Bedrock Converse).
#[derive(Clone, Copy)]
enum Cap {
    MaxTokens,
    MaxCompletionTokens,
    MaxOutputTokens,
    MaxTokensCamel,
    GenerationConfig,
    GenerationConfigSnake,
    InferenceConfig,
}

impl Cap {
    const COUNT: usize = 7;

    fn top(key: &str) -> Option<Cap> {
        Some(match key {
            "max_tokens" => Cap::MaxTokens,
            "max_completion_tokens" => Cap::MaxCompletionTokens,
            "max_output_tokens" => Cap::MaxOutputTokens,
            "maxTokens" => Cap::MaxTokensCamel,
            "generationConfig" => Cap::GenerationConfig,
            "generation_config" => Cap::GenerationConfigSnake,
            "inferenceConfig" => Cap::InferenceConfig,
            _ => return None,
        })
    }

    /// The member inside the object a nested cap names (`None`: the cap is top-level).
    fn inner(self) -> Option<&'static str> {
        match self {
            Cap::MaxTokens | Cap::MaxCompletionTokens | Cap::MaxOutputTokens | Cap::MaxTokensCamel => None,
            Cap::GenerationConfig => Some("maxOutputTokens"),
            Cap::GenerationConfigSnake => Some("max_output_tokens"),
            Cap::InferenceConfig => Some("maxTokens"),
        }
    }
}

enum PeekKey {
    Model,
    Stream,
    Cap(Cap),
    Other,
}

impl<'de> Deserialize<'de> for PeekKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PeekKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PeekKey, E> {
                Ok(match v {
                    "model" => PeekKey::Model,
                    "stream" => PeekKey::Stream,
                    _ => Cap::top(v).map_or(PeekKey::Other, PeekKey::Cap),
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Peeked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Peeked;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Peeked, A::Error> {
                let mut p = Peeked { model: None, model_count: 0, stream: false, caps: [None; Cap::COUNT] };
                while let Some(key) = map.next_key::<PeekKey>()? {
                    match key {
                        PeekKey::Model => {
                            p.model_count += 1;
                            p.model = map.next_value::<Loose>()?.string;
                        }
                        PeekKey::Stream => p.stream = map.next_value::<Loose>()?.boolean == Some(true),
                        PeekKey::Cap(cap) => {
                            p.caps[cap as usize] = match cap.inner() {
                                None => map.next_value::<Integer>()?.0,
                                Some(inner) => map.next_value_seed(CapMember(inner))?,
                            };
                        }
                        PeekKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

/// Visitor methods for the JSON kinds a visitor does not keep: each consumes the value (arrays
/// and objects element by element) and answers `$answer`.
macro_rules! answer_other_kinds {
    ($answer:expr; $($kind:ident),+) => { $(answer_other_kinds!(@ $kind, $answer);)+ };
    (@ i64, $a:expr) => { fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($a) } };
    (@ u64, $a:expr) => { fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($a) } };
    (@ f64, $a:expr) => { fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($a) } };
    (@ str, $a:expr) => { fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($a) } };
    (@ bool, $a:expr) => { fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($a) } };
    (@ unit, $a:expr) => { fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok($a) } };
    (@ none, $a:expr) => { fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> { Ok($a) } };
    (@ seq, $a:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($a)
        }
    };
    (@ map, $a:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($a)
        }
    };
}

/// Any JSON value, keeping only an integer that fits `i64` (as `serde_json::from_slice::<i64>`
/// reads one: `5.0`, `1e3` and `"5"` are not integers).
struct Integer(Option<i64>);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntegerVisitor)
    }
}

struct IntegerVisitor;

impl<'de> Visitor<'de> for IntegerVisitor {
    type Value = Integer;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer, E> {
        Ok(Integer(Some(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer, E> {
        Ok(Integer(i64::try_from(v).ok()))
    }
    answer_other_kinds!(Integer(None); f64, str, bool, unit, none, seq, map);
}

/// Any JSON value; of an object, the integer its member named `.0` has (last occurrence).
struct CapMember(&'static str);

impl<'de> de::DeserializeSeed<'de> for CapMember {
    type Value = Option<i64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
        struct V(&'static str);
        impl<'de> Visitor<'de> for V {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<i64>, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<MemberName>()? {
                    if key.0 == self.0 {
                        found = map.next_value::<Integer>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(found)
            }
            answer_other_kinds!(None; i64, u64, f64, str, bool, unit, none, seq);
        }
        d.deserialize_any(V(self.0))
    }
}

/// A member name, borrowed when the input allows (escaped names are decoded into a copy).
struct MemberName<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, keeping only a string or a boolean.
#[derive(Default)]
struct Loose {
    string: Option<String>,
    boolean: Option<bool>,
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
                Ok(Loose { string: Some(v.to_owned()), boolean: None })
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose, E> {
                Ok(Loose { string: None, boolean: Some(v) })
            }
            answer_other_kinds!(Loose::default(); i64, u64, f64, unit, none, seq, map);
        }
        d.deserialize_any(V)
    }
}

/// Deserializes a token count leniently: integers as-is, floats truncated, negatives clamped
/// to 0, anything else (null, strings, objects) as absent.
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a token count")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<i64>, E> {
            Ok(Some(v.max(0)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<i64>, E> {
            Ok(Some(i64::try_from(v).unwrap_or(i64::MAX)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<i64>, E> {
            // `as` saturates and maps NaN to 0.
            Ok(Some((v as i64).max(0)))
        }
        answer_other_kinds!(None; str, bool, unit, none, seq, map);
    }
    d.deserialize_any(V)
}

/// `a - b`, never below 0.
pub(crate) fn minus(a: i64, b: i64) -> i64 {
    a.saturating_sub(b).max(0)
}

/// An upstream error object as the families send it inside streams: `{"message", "type",
/// "code", "status"}` in some combination, or a bare string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorField {
    Text(String),
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
        #[serde(default)]
        status: Option<String>,
    },
    Other(IgnoredAnyValue),
}

/// A JSON value of any shape, ignored (keeps `ErrorField` total).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IgnoredAnyValue;

impl<'de> Deserialize<'de> for IgnoredAnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| IgnoredAnyValue)
    }
}

/// Longest error message kept from an upstream stream.
const MAX_ERROR_CHARS: usize = 500;

impl ErrorField {
    /// A short message: the upstream's message text, else its type / status / code.
    pub(crate) fn message(&self) -> Option<String> {
        let text = match self {
            ErrorField::Text(s) => Some(s.clone()),
            ErrorField::Object { message, kind, code, status } => {
                message.clone().filter(|m| !m.is_empty()).or_else(|| kind.clone()).or_else(|| status.clone()).or_else(
                    || code.as_ref().filter(|c| !c.is_null()).map(|c| c.to_string().trim_matches('"').to_string()),
                )
            }
            ErrorField::Other(_) => None,
        }?;
        Some(short(&text))
    }
}

/// `text` cut to a bounded length on a character boundary.
pub(crate) fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn capture_all(names: &'static [&'static str], body: &[u8], step: usize) -> Vec<(&'static str, String)> {
        let mut c = ObjectCapture::new(names);
        let mut out = Vec::new();
        for chunk in body.chunks(step.max(1)) {
            for (n, v) in c.push(chunk) {
                out.push((n, String::from_utf8(v).unwrap()));
            }
        }
        out
    }

    #[test]
    fn capture_top_level_members_in_any_chunking() {
        let body =
            br#" { "id": "x\"usage\"", "nested": {"usage": {"a": 1}}, "usage" : {"prompt_tokens": 5, "s": "}]\\"}
            , "list": [1, {"usage": 2}], "last": null }"#;
        for step in 1..body.len() {
            let got = capture_all(&["usage", "last"], body, step);
            assert_eq!(
                got,
                vec![("usage", r#"{"prompt_tokens": 5, "s": "}]\\"}"#.to_string()), ("last", "null".to_string())],
                "step {step}"
            );
        }
    }

    /// Members with long strings, with
    /// escapes, brackets and commas inside strings, an escaped quote in a wanted name's
    /// neighbour, and a 70-byte name (kept to 65 bytes, so it matches nothing): the captured
    /// values parse to what serde_json reads from the whole object, in every chunking.
    #[test]
    fn capture_agrees_with_a_parser_across_long_strings_and_escapes() {
        let long = "a \\\" quoted, [bracketed] {braced} string that is well over thirty-two bytes long";
        let name70 = "n".repeat(70);
        let body = format!(
            r#"{{"a\"b": "{long}", "choices": [{{"message": {{"content": "{long}"}}, "x": ["]", "}}"]}}], "{name70}": 1, "usage": {{"t": "{long}", "n": [1, 2, {{"k": "\\"}}]}}, "model":"{long}"}}"#
        );
        let whole: serde_json::Value = serde_json::from_str(&body).unwrap();
        for step in [1, 2, 3, 5, 7, 31, 32, 33, 64, body.len()] {
            let got = capture_all(&["choices", "usage", "model"], body.as_bytes(), step);
            let names: Vec<&str> = got.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, ["choices", "usage", "model"], "step {step}");
            for (name, raw) in got {
                let v: serde_json::Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name} {raw}: {e}"));
                assert_eq!(v, whole[name], "{name}, step {step}");
            }
        }
    }

    #[test]
    fn capture_scalar_and_final_member() {
        let got = capture_all(&["usage"], br#"{"usage":null}"#, 3);
        assert_eq!(got, vec![("usage", "null".to_string())]);
        let got = capture_all(&["usage"], br#"[{"usage":1}]"#, 3);
        assert!(got.is_empty());
    }

    #[test]
    fn capture_is_bounded() {
        let mut c = ObjectCapture::with_limit(&["usage", "b"], 16);
        let mut body = br#"{"usage": ""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 10_000));
        body.extend_from_slice(br#"", "b": 1}"#);
        let mut got = Vec::new();
        for chunk in body.chunks(100) {
            got.extend(c.push(chunk));
            assert!(c.buffered_len() <= 16 + 65);
        }
        assert_eq!(got, vec![("b", b"1".to_vec())]);
    }

    #[test]
    fn array_split_in_any_chunking() {
        let body = b"[{\n  \"a\": \"]}\",\n  \"b\": [1, 2]\n}\n,\r\n{\"c\": {\"d\": \"\\\"\"}}\n, 3 ,\"s\"]";
        for step in 1..body.len() {
            let mut s = ArraySplitter::new();
            let mut got = Vec::new();
            for chunk in body.chunks(step) {
                got.extend(s.push(chunk).into_iter().map(|e| String::from_utf8(e).unwrap()));
            }
            assert_eq!(
                got,
                vec!["{\n  \"a\": \"]}\",\n  \"b\": [1, 2]\n}", "{\"c\": {\"d\": \"\\\"\"}}", "3", "\"s\""],
                "step {step}"
            );
        }
        let mut s = ArraySplitter::new();
        assert_eq!(s.push(b" {\"error\": {}} "), vec![b"{\"error\": {}}".to_vec()]);
    }

    #[test]
    fn array_split_is_bounded() {
        let mut s = ArraySplitter::with_limit(32);
        let mut body = b"[{\"big\": \"".to_vec();
        body.extend(std::iter::repeat_n(b'y', 5000));
        body.extend_from_slice(b"\"}, {\"small\": 1}]");
        let mut got = Vec::new();
        for chunk in body.chunks(64) {
            got.extend(s.push(chunk));
            assert!(s.buffered_len() <= 32);
        }
        assert_eq!(got, vec![b"{\"small\": 1}".to_vec()]);
    }

    #[test]
    fn members_and_elements() {
        let buf = br#" {"a" : [1, {"x": "]"}] , "b":"s\"" ,"c":true} "#;
        let o = object_members(buf, 0).unwrap();
        let keys: Vec<_> = o.members.iter().map(|m| std::str::from_utf8(&buf[m.key.clone()]).unwrap()).collect();
        let vals: Vec<_> = o.members.iter().map(|m| std::str::from_utf8(&buf[m.value.clone()]).unwrap()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(vals, [r#"[1, {"x": "]"}]"#, r#""s\"""#, "true"]);
        assert_eq!(buf[o.close], b'}');
        let a = array_elements(buf, o.members[0].value.start).unwrap();
        let els: Vec<_> = a.elements.iter().map(|r| std::str::from_utf8(&buf[r.clone()]).unwrap()).collect();
        assert_eq!(els, ["1", r#"{"x": "]"}"#]);
        assert_eq!(object_members(b"{}", 0).unwrap().members.len(), 0);
        assert_eq!(object_members(b" { } ", 0).unwrap().close, 3);
        assert!(object_members(br#"{"a" 1}"#, 0).is_none());
        assert!(object_members(br#"{"a": 1"#, 0).is_none());
        assert!(array_elements(b"[]", 0).unwrap().elements.is_empty());
    }

    #[test]
    fn peek_reads_model_and_stream() {
        let p = peek_body(br#"{"messages": [{"model": "inner"}], "model": "gpt-4o", "stream": true, "max_tokens": 9}"#);
        assert_eq!(p, BodyPeek { model: Some("gpt-4o".into()), stream: true, error: None, output_limit: Some(9) });
        let p = peek_body(br#"{"model": "a\u00e9", "stream": "yes"}"#);
        assert_eq!(p, BodyPeek { model: Some("aé".into()), stream: false, error: None, output_limit: None });
        assert_eq!(peek_body(b"{}"), BodyPeek::default());
        assert_eq!(peek_body(b"model=gpt-4o"), BodyPeek::default());
        assert_eq!(peek_body(b""), BodyPeek::default());
        let p = peek_body(br#"{"model": "a", "model": "b"}"#);
        assert!(p.error.as_deref().unwrap().contains("`model` must appear only once"));
        assert_eq!(p.model, None);
        let p = peek_body(br#"{"model": 4}"#);
        assert!(p.error.as_deref().unwrap().contains("`model` must be a string"));
        let p = peek_body(br#"{"model": null}"#);
        assert!(p.error.is_some());
        let p = peek_body(br#"{"model": "a",}"#);
        assert!(p.error.as_deref().unwrap().contains("not valid JSON"));
    }

    #[test]
    fn lenient_counts() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "count")]
            a: Option<i64>,
        }
        let get = |s: &str| serde_json::from_str::<T>(s).map(|t| t.a).ok().flatten();
        assert_eq!(get(r#"{"a": 5}"#), Some(5));
        assert_eq!(get(r#"{"a": -5}"#), Some(0));
        assert_eq!(get(r#"{"a": 5.9}"#), Some(5));
        assert_eq!(get(r#"{"a": null}"#), None);
        assert_eq!(get(r#"{"a": "5"}"#), None);
        assert_eq!(get(r#"{"a": [1]}"#), None);
        assert_eq!(get(r#"{}"#), None);
        assert_eq!(minus(3, 5), 0);
    }

    #[test]
    fn error_messages() {
        let e: ErrorField = serde_json::from_str(r#"{"type": "overloaded_error", "message": "Overloaded"}"#).unwrap();
        assert_eq!(e.message().as_deref(), Some("Overloaded"));
        let e: ErrorField = serde_json::from_str(r#"{"code": 503, "status": "UNAVAILABLE"}"#).unwrap();
        assert_eq!(e.message().as_deref(), Some("UNAVAILABLE"));
        let e: ErrorField = serde_json::from_str(r#""boom""#).unwrap();
        assert_eq!(e.message().as_deref(), Some("boom"));
        let e: ErrorField = serde_json::from_str("42").unwrap();
        assert_eq!(e.message(), None);
        let long = "é".repeat(2000);
        assert_eq!(short(&long).chars().count(), MAX_ERROR_CHARS + 1);
    }
}
