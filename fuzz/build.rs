//! Embeds every golden fixture case (`tests/fixtures/<family>/*.case.json`) into the fuzz
//! targets, in a stable order (families as `WireFamilyId::ALL`, then file name): the first input
//! byte of the `tap` target picks one. `seed.py` numbers the seed corpus the same way.

use std::fmt::Write as _;
use std::path::Path;

const FAMILIES: [&str; 5] = ["openai", "anthropic", "google", "bedrock", "azure_openai"];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut out = String::from(
        "/// (family directory, case name, `.case.json` text)\npub const CASES: &[(&str, &str, &str)] = &[\n",
    );
    for family in FAMILIES {
        let dir = root.join(family);
        println!("cargo::rerun-if-changed={}", dir.display());
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".case.json"))
                .collect(),
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        names.sort();
        for name in names {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let stem = name.trim_end_matches(".case.json");
            let _ = writeln!(out, "    ({family:?}, {stem:?}, {text:?}),");
        }
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}"))).join("cases.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
