//! Reading a request body under a size cap, for both planes (the proxy's
//! `--max-request-body-bytes`, the admin API's `--max-admin-body-bytes`).
//!
//! Invariant: an oversized body is still read and discarded (up to [`MAX_DRAIN_BYTES`]) before
//! the caller answers 413. A server that answers and closes with the body unread makes the
//! kernel reset the connection, and a client still writing (or not yet reading) sees the reset
//! instead of the answer.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use futures_util::StreamExt;

/// How much of an oversized request body is read and discarded before answering 413.
pub const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Declared or found larger than the cap.
    #[error("request body: larger than the limit of {cap} bytes")]
    TooLarge { cap: usize },
    /// The client's stream failed (hung up, bad chunked framing).
    #[error("request body: could not be read")]
    Unreadable,
}

/// Reads `body` whole if it stays within `cap` bytes.
pub async fn read_capped(headers: &HeaderMap, body: Body, cap: usize) -> Result<Bytes, BodyError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut over = declared.is_some_and(|n| n > cap as u64);
    // A client that waits for `100 Continue` has sent no body yet: refuse without reading it
    // (reading would make hyper send the 100 and the client the whole body).
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if over && expects_continue {
        return Err(BodyError::TooLarge { cap });
    }
    let mut buf = bytes::BytesMut::with_capacity(if over { 0 } else { declared.unwrap_or(0).min(cap as u64) as usize });
    let mut drained: usize = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(BodyError::Unreadable);
        };
        if over {
            drained += chunk.len();
            if drained > MAX_DRAIN_BYTES {
                break;
            }
        } else if buf.len() + chunk.len() > cap {
            over = true;
            buf = bytes::BytesMut::new();
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    if over {
        return Err(BodyError::TooLarge { cap });
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: &[&'static [u8]]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn within_the_cap_is_read_whole_and_over_it_is_refused() {
        let none = HeaderMap::new();
        assert_eq!(read_capped(&none, chunked(&[b"ab", b"cd"]), 4).await, Ok(Bytes::from_static(b"abcd")));
        assert_eq!(read_capped(&none, chunked(&[b"ab", b"cde"]), 4).await, Err(BodyError::TooLarge { cap: 4 }));
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, axum::http::HeaderValue::from_static("5"));
        assert_eq!(read_capped(&declared, chunked(&[b"abcde"]), 4).await, Err(BodyError::TooLarge { cap: 4 }));
        let failing = Body::from_stream(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"a")),
            Err(std::io::Error::other("hung up")),
        ]));
        assert_eq!(read_capped(&none, failing, 4).await, Err(BodyError::Unreadable));
    }

    #[tokio::test]
    async fn a_client_waiting_for_continue_is_refused_unread() {
        // Polling this body would answer Unreadable: TooLarge means it was never read.
        let unread =
            || Body::from_stream(futures_util::stream::iter(vec![Err::<Bytes, _>(std::io::Error::other("read"))]));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, axum::http::HeaderValue::from_static("5"));
        h.insert(header::EXPECT, axum::http::HeaderValue::from_static("100-continue"));
        assert_eq!(read_capped(&h, unread(), 4).await, Err(BodyError::TooLarge { cap: 4 }));
        h.insert(header::CONTENT_LENGTH, axum::http::HeaderValue::from_static("3"));
        assert_eq!(read_capped(&h, unread(), 4).await, Err(BodyError::Unreadable), "within the cap: read");
    }
}
