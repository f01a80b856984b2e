#!/usr/bin/env bash
# Builds the `tollgate` binary with profile-guided optimisation (rustc's `-Cprofile-generate`
# and `-Cprofile-use`, LLVM's PGO): an instrumented build serves the bench's training load,
# then the release build is made again with the profile it wrote, so LLVM lays the hot paths
# out together and inlines by measured counts. The proxy's time per request is mostly spent
# waiting on instruction fetches of a large code path (hyper, tokio, the handler; callgrind's
# cache simulation counts ~2,400 first-level instruction-cache misses per P1 request), and
# this build spends ~15 % less CPU per proxied request than the plain release build
# (bench/HISTORY.md, "Sixteenth pass"). The code is the same; only its layout and inlining differ.
#
#   bench/pgo.sh [--out DIR]
#
# Leaves DIR/release/tollgate (and tollgate-bench beside it, so bench/run.sh and
# bench/profile.sh take DIR/release as TOLLGATE_BIN_DIR); DIR defaults to target/pgo. Takes
# two release builds of the gateway (about 8 minutes each on 2 cores) and ~40 s of training.
# Needs rustup's `llvm-tools` component (added when missing) for `llvm-profdata`.
#
# The training load (bench/profile.sh, the mock upstream): OpenAI chat completions metered,
# unmetered, under a budget and a rate limit, with transcripts, traced; streamed; Anthropic
# messages whole and streamed. A path the training never ran is optimised as cold, not left
# out: it works the same, only without the layout gain.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/target/pgo
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"

sysroot=$(rustc --print sysroot)
profdata=$(find "$sysroot" -name llvm-profdata -type f 2>/dev/null | head -1)
if [ -z "$profdata" ]; then
  echo "== adding rustup's llvm-tools component (llvm-profdata)"
  rustup component add llvm-tools >/dev/null
  profdata=$(find "$sysroot" -name llvm-profdata -type f | head -1)
fi
[ -n "$profdata" ] || { echo "llvm-profdata not found under $sysroot" >&2; exit 1; }

PROFILES=$OUT/profiles
rm -rf "$PROFILES" "$OUT/training"; mkdir -p "$PROFILES" "$OUT/training"
# Flags of the caller's environment are kept (both builds get the same ones).
flags=${RUSTFLAGS:-}

echo "== the bench's tools (mock upstream, load client): a plain release build"
cargo build --release -q -p tollgate-bench
BENCH_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tollgate-bench

echo "== instrumented build"
RUSTFLAGS="$flags -Cprofile-generate=$PROFILES" \
  cargo build --release -q --target-dir "$OUT/generate" -p tollgate-cli --bin tollgate
cp "$BENCH_BIN" "$OUT/generate/release/"

echo "== training"
train() { # name, then bench/profile.sh arguments
  local name=$1; shift
  TOLLGATE_BIN_DIR=$OUT/generate/release bench/profile.sh --tool threads --duration 4 \
    --out "$OUT/training/$name" "$@" >"$OUT/training/$name.log" 2>&1 ||
    { echo "training run $name failed: $OUT/training/$name.log" >&2; exit 1; }
  echo "   $name: $(grep -o '[0-9]* requests forwarded' "$OUT/training/$name.log")"
}
for mode in metered unmetered limited transcripts traced; do train "$mode" --mode "$mode"; done
train streamed --mode metered --stream
train anthropic --mode metered --api anthropic
train anthropic-streamed --mode metered --api anthropic --stream
"$profdata" merge -o "$OUT/tollgate.profdata" "$PROFILES"

echo "== optimised build"
RUSTFLAGS="$flags -Cprofile-use=$OUT/tollgate.profdata" \
  cargo build --release -q --target-dir "$OUT/use" -p tollgate-cli --bin tollgate
mkdir -p "$OUT/release"
cp "$OUT/use/release/tollgate" "$BENCH_BIN" "$OUT/release/"
echo "$OUT/release/tollgate"
