//! The Bedrock event-stream frame reader (`tollgate_protocol::EventStreamReader`).
//!
//! Input: `[chunk seed, mode, flip position (2 bytes)] ++ body`. With mode bit 0 set, the body
//! is an `.events.json` description (the fixtures' format) encoded into real frames with
//! their CRCs by `fixture::event_stream_frames`; otherwise the body is fed as raw bytes.
//! Checks:
//! - no panic, and the same frames (and broken / held state) whatever the chunking;
//! - never more out than in: the payloads together are no longer than the input, and the
//!   reader holds no more than the input;
//! - encoded frames come back, one per described frame, in order, payloads intact;
//! - a CRC failure is an error, never a frame: with one bit of the first frame flipped, no frame
//!   is returned, and the reader has either stopped (a checksum mismatch) or is still waiting
//!   for the bytes a corrupted length announced.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::{chunkings, control};
use tollgate_protocol::fixture::event_stream_frames;
use tollgate_protocol::{EventStreamFrame, EventStreamReader};

fuzz_target!(|data: &[u8]| {
    let ([seed, mode, flip_hi, flip_lo], body) = control::<4>(data);
    let (input, described) = if mode & 1 == 1 {
        match event_stream_frames(body) {
            Ok(frames) => {
                let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
                (frames.concat(), Some(lens))
            }
            Err(_) => return,
        }
    } else {
        (body.to_vec(), None)
    };

    let mut first: Option<(Vec<EventStreamFrame>, bool, usize)> = None;
    for pieces in chunkings(&input, seed) {
        let got = read(&pieces);
        let payloads: usize = got.0.iter().map(|f| f.payload.len()).sum();
        assert!(payloads <= input.len(), "more payload bytes than input bytes");
        assert!(got.2 <= input.len(), "holds more than it was given");
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(f, &got, "chunking changed the frames"),
        }
    }
    let Some((frames, broken, _)) = first else { return };

    let Some(lens) = described else { return };
    assert_eq!(frames.len(), lens.len(), "every encoded frame is read back");
    assert!(!broken, "valid frames stopped the reader");
    if let (Some(&len), Some(frame)) = (lens.first(), frames.first()) {
        assert!(frame.message_type.is_some(), "the :message-type header is read");
        let bit = (usize::from(flip_hi) << 8 | usize::from(flip_lo)) % (len * 8);
        let mut corrupt = input.clone();
        corrupt[bit / 8] ^= 1 << (bit % 8);
        for pieces in chunkings(&corrupt, seed) {
            let (got, broken, held) = read(&pieces);
            assert!(got.is_empty(), "a frame with a flipped bit (bit {bit}) was returned: {got:?}");
            assert!(broken || held > 0, "a corrupt frame neither stopped the reader nor is awaited");
        }
    }
});

fn read(pieces: &[&[u8]]) -> (Vec<EventStreamFrame>, bool, usize) {
    let mut r = EventStreamReader::new();
    let mut frames = Vec::new();
    for piece in pieces {
        frames.extend(r.push(piece));
    }
    (frames, r.is_broken(), r.buffered_len())
}
