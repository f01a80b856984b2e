//! The one loader of the repository's recorded fixtures (`tests/fixtures/`), shared by every
//! test that replays them: the protocol golden tests, the fake upstreams' fixture replies, the
//! proxy fixture tests and the cost conformance cases. A case is a `<name>.case.json` beside its
//! body files; adding a case is adding files.

use anyhow::Context;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use tollgate_protocol::fixture::Case;

/// `<workspace>/tests/fixtures`.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// One wire case: its name (the file stem before `.case.json`), where it is, what it says.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub path: PathBuf,
    pub case: Case,
}

impl Fixture {
    /// The directory of the case and its body files.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The bytes of one of the case's files (`request`, `response`, …), with `.events.json`
    /// descriptions encoded into AWS event-stream frames.
    pub fn file_bytes(&self, file: &str) -> anyhow::Result<Vec<u8>> {
        body_bytes(&self.dir().join(file))
    }
}

/// A body file's bytes: an `.events.json` description is encoded into event-stream frames
/// (concatenated), anything else is read as is.
pub fn body_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path.to_string_lossy().ends_with(".events.json") {
        let frames = tollgate_protocol::fixture::event_stream_frames(&raw)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(frames.concat());
    }
    Ok(raw)
}

/// The wire cases of one family directory (`openai`, `bedrock`, …), sorted by name.
pub fn cases(family_dir: &str) -> anyhow::Result<Vec<Fixture>> {
    let dir = root().join(family_dir);
    let mut out = Vec::new();
    for (path, text) in files(&dir, ".case.json")? {
        let case: Case = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().trim_end_matches(".case.json").to_string());
        out.push(Fixture { name: name.unwrap_or_default(), path, case });
    }
    Ok(out)
}

/// Every wire case of every family directory (all but `cost/`), sorted by directory and name.
pub fn all_cases() -> anyhow::Result<Vec<Fixture>> {
    let mut dirs: Vec<String> = std::fs::read_dir(root())
        .with_context(|| format!("reading {}", root().display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|d| d != "cost")
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for d in dirs {
        out.extend(cases(&d)?);
    }
    Ok(out)
}

/// Every `*.json` document of `dir` under the fixture root (e.g. `cost`), parsed as `T`, with
/// its file stem, sorted by name.
pub fn documents<T: DeserializeOwned>(dir: &str) -> anyhow::Result<Vec<(String, T)>> {
    files(&root().join(dir), ".json")?
        .into_iter()
        .map(|(path, text)| {
            let doc: T = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            Ok((name, doc))
        })
        .collect()
}

/// The files of `dir` whose name ends with `suffix`, with their text, sorted by path.
fn files(dir: &Path, suffix: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    paths.sort();
    anyhow::ensure!(!paths.is_empty(), "no *{suffix} files in {}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            Ok((p, text))
        })
        .collect()
}
