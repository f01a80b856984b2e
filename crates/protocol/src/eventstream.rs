//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), read on the
//! side: each frame is a 12-byte prelude (total length, headers length, prelude CRC32),
//! typed headers, the payload and a message CRC32. `aws-smithy-eventstream`'s
//! `MessageFrameDecoder` checks both CRCs; this reader feeds it chunk by chunk and keeps only
//! the bytes of the frame in progress (never the stream). A frame beyond [`MAX_FRAME_BYTES`]
//! (AWS's own limit on one event-stream message) or a corrupt frame stops the reading (the bytes
//! still flow to the client; usage after that point is lost).
//!
//! Public as [`EventStreamReader`] for the fuzz targets; the proxy
//! reaches it only through the Bedrock family's decoder.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Bytes, BytesMut};

/// The largest frame held: 16 MiB, the event-stream format's maximum message size, so no
/// genuine frame (and its usage) is given up. Only the frame in progress is held.
pub(crate) const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// One decoded frame: the headers a decoder cares about and the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// `:message-type`: `event`, `exception` or `error`.
    pub message_type: Option<String>,
    /// `:event-type` (events): `chunk`, `messageStart`, `metadata`, …
    pub event_type: Option<String>,
    /// `:exception-type` (exceptions): `throttlingException`, `modelStreamErrorException`, …
    pub exception_type: Option<String>,
    /// `:error-code` / `:error-message` (errors).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub payload: Bytes,
}

impl Frame {
    fn from_message(m: &Message) -> Frame {
        let mut f = Frame { payload: m.payload().clone(), ..Frame::default() };
        for h in m.headers() {
            let HeaderValue::String(v) = h.value() else { continue };
            let v = Some(v.as_str().to_string());
            match h.name().as_str() {
                ":message-type" => f.message_type = v,
                ":event-type" => f.event_type = v,
                ":exception-type" => f.exception_type = v,
                ":error-code" => f.error_code = v,
                ":error-message" => f.error_message = v,
                _ => {}
            }
        }
        f
    }
}

/// Incremental frame reader.
#[derive(Debug, Default)]
pub struct EventStreamReader {
    decoder: MessageFrameDecoder,
    buf: BytesMut,
    broken: bool,
}

impl EventStreamReader {
    pub fn new() -> EventStreamReader {
        EventStreamReader::default()
    }

    /// Appends `chunk` and returns every frame it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.broken {
            return out;
        }
        self.buf.extend_from_slice(chunk);
        loop {
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => out.push(Frame::from_message(&m)),
                Ok(DecodedFrame::Incomplete) => break,
                Err(_) => {
                    self.stop();
                    break;
                }
            }
        }
        if self.buf.len() > MAX_FRAME_BYTES {
            self.stop();
        }
        out
    }

    fn stop(&mut self) {
        self.broken = true;
        self.buf = BytesMut::new();
    }

    /// Whether a frame was corrupt or too large (reading stopped).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Bytes held for the frame in progress.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;

    fn frame(event: &str, payload: &str) -> Vec<u8> {
        let m = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
            .add_header(Header::new(":event-type", HeaderValue::String(event.to_string().into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    #[test]
    fn frames_at_every_split() {
        let mut all = frame("messageStart", r#"{"role":"assistant"}"#);
        all.extend(frame("metadata", r#"{"usage":{"inputTokens":3}}"#));
        for split in 0..=all.len() {
            let mut r = EventStreamReader::new();
            let mut got = r.push(&all[..split]);
            got.extend(r.push(&all[split..]));
            let events: Vec<_> = got.iter().map(|f| f.event_type.clone().unwrap_or_default()).collect();
            assert_eq!(events, ["messageStart", "metadata"], "split {split}");
            assert_eq!(got[1].payload, &br#"{"usage":{"inputTokens":3}}"#[..]);
            assert_eq!(got[0].message_type.as_deref(), Some("event"));
            assert_eq!(r.buffered_len(), 0);
        }
        let mut r = EventStreamReader::new();
        for b in &all {
            r.push(std::slice::from_ref(b));
        }
        assert!(!r.is_broken());
    }

    #[test]
    fn a_corrupt_frame_stops_reading() {
        let mut bad = frame("metadata", "{}");
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let mut r = EventStreamReader::new();
        assert!(r.push(&bad).is_empty());
        assert!(r.is_broken());
        assert!(r.push(&frame("metadata", "{}")).is_empty());
    }
}
