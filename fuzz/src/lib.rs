//! Shared helpers of the fuzz targets in `fuzz_targets/`: deterministic random chunking of an
//! input (so a crash reproduces from its file alone) and the golden fixture cases, embedded at
//! build time by `build.rs`.
//!
//! Every target reads a few control bytes first and the body after them; `seed.py` writes the
//! seed corpus in that layout.

use std::sync::OnceLock;

use tollgate_protocol::{Case, WireFamilyId};

include!(concat!(env!("OUT_DIR"), "/cases.rs"));

/// Splits `data` into the control bytes (`N`, zero-padded when the input is shorter) and the
/// rest.
pub fn control<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut ctrl = [0u8; N];
    let n = data.len().min(N);
    ctrl[..n].copy_from_slice(&data[..n]);
    (ctrl, &data[n..])
}

/// A deterministic chunking of `data` drawn from `seed`: piece sizes from 1 up to a maximum
/// the seed also picks (1, 2, 3, 7, 16, 64, 256 or 4096 bytes).
pub fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    const MAX: [usize; 8] = [1, 2, 3, 7, 16, 64, 256, 4096];
    let max = MAX[usize::from(seed & 7)];
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(seed) << 32 | data.len() as u64);
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let n = (1 + (r % max as u64) as usize).min(data.len() - at);
        out.push(&data[at..at + n]);
        at += n;
    }
    out
}

/// The chunkings every streaming target compares: the whole input at once, byte by byte, and
/// one drawn from `seed`.
pub fn chunkings(data: &[u8], seed: u8) -> [Vec<&[u8]>; 3] {
    [vec![data], data.chunks(1).collect(), chunks(data, seed)]
}

/// One embedded fixture case, parsed.
#[derive(Debug)]
pub struct Fixture {
    pub family: WireFamilyId,
    pub name: &'static str,
    pub case: Case,
}

/// The embedded case `index` modulo their number (parsed once).
pub fn fixture(index: u8) -> &'static Fixture {
    static ALL: OnceLock<Vec<Fixture>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        CASES
            .iter()
            .map(|(dir, name, text)| {
                let family = match WireFamilyId::ALL.iter().find(|f| f.as_str() == *dir) {
                    Some(f) => *f,
                    None => panic!("unknown fixture family {dir}"),
                };
                match serde_json::from_str(text) {
                    Ok(case) => Fixture { family, name, case },
                    Err(e) => panic!("{dir}/{name}: {e}"),
                }
            })
            .collect()
    });
    &all[usize::from(index) % all.len()]
}

const UNREPRESENTABLE: [&str; 4] = [
    "number out of range",
    "lone leading surrogate in hex escape",
    "unexpected end of hex escape",
    "invalid unicode code point",
];

/// A body as `serde_json` reads it into a `Value`, told apart from JSON a `Value` cannot hold.
#[derive(Debug)]
pub enum Lenient {
    Value(serde_json::Value),
    /// JSON that `Value` refuses but the inspector (like serde when it skips a member) lets
    /// pass in members other than `model`: a number beyond `f64` (`1e400`, JSON sets no limit)
    /// or an unpaired surrogate escape (`"\uDDDD"`). Nothing to compare with.
    Unrepresentable,
    Invalid,
}

/// The body as `serde_json` reads it, leniently: serde skips other members without checking
/// their UTF-8, and so does the inspector, so invalid bytes (never structural) are replaced.
pub fn lenient(body: &[u8]) -> Lenient {
    match serde_json::from_str(&String::from_utf8_lossy(body)) {
        Ok(v) => Lenient::Value(v),
        Err(e) if UNREPRESENTABLE.iter().any(|m| e.to_string().starts_with(m)) => Lenient::Unrepresentable,
        Err(_) => Lenient::Invalid,
    }
}
