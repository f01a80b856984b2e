#!/usr/bin/env bash
# Where a request's CPU goes: runs the gateway under `valgrind --tool=callgrind` (instruction
# counts: exact and indifferent to other load on the machine) or `perf record` (sampled time,
# kernel included) while the bench's load client sends P1 requests, and prints instructions
# (callgrind) per forwarded request over the measured window only (start-up, provisioning and
# the warm-up are not counted), or `threads`: CPU time per request of each of the gateway's threads
# (from /proc, at full speed: which thread a mode's extra time lands on).
#
#   bench/profile.sh [--tool callgrind|perf|threads] [--mode metered|unmetered|traced|limited|transcripts]
#                    [--duration SECONDS] [--connections N] [--out DIR] [--stream] [--api openai|anthropic]
#
# `--stream` asks for streamed answers (the mock's SSE), `--api anthropic` sends Anthropic
# `/v1/messages` calls through an anthropic provider (P1's shape is OpenAI chat completions);
# bench/pgo.sh runs the modes and shapes as its training load.
#
# Needs the release binaries (or TOLLGATE_BIN_DIR) (`cargo build --release -p tollgate-cli -p tollgate-bench`; build
# with CARGO_PROFILE_RELEASE_DEBUG=line-tables-only for readable profiles). The profile lands
# in DIR (default a new /tmp directory): `callgrind_annotate DIR/callgrind.out` or
# `perf report -i DIR/perf.data`.
# CALLGRIND_ARGS adds valgrind options (e.g. `--cache-sim=yes`: cache misses per function);
# TOLLGATE_BIN_DIR profiles another build (its directory must hold `tollgate-bench` too).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/provision.sh
. "$ROOT/bench/provision.sh"
TOOL=callgrind; MODE=metered; FLUSH_MS=${FLUSH_MS:-5000}; DURATION=10; CONNECTIONS=50; OUT=; STREAM=(); API=openai
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) TOOL=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --stream) STREAM=(--stream); shift ;;
    --api) API=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN=${TOLLGATE_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
OUT=${OUT:-$(mktemp -d /tmp/tollgate-profile.XXXXXX)}
mkdir -p "$OUT"
PORT_BASE=${BENCH_PORT_BASE:-19200}
MOCK_PORT=$((PORT_BASE + 1)); TG_PORT=$((PORT_BASE + 3))
UPSTREAM_KEY=sk-bench-upstream-0123456789
DATA=$OUT/data; rm -rf "$DATA"; mkdir -p "$DATA"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() {
  for _ in $(seq 1 1200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on port $1" >&2; return 1
}
thread_ticks() { # one line per thread of the gateway: tid, name, user and system clock ticks
  for t in /proc/"$TG_PID"/task/*; do
    awk -v tid="${t##*/}" '{ sub(/^.*\) /, ""); print tid, $12, $13 }' "$t/stat" 2>/dev/null | \
      { read -r id user sys; echo "$id $(tr ' ' '_' <"$t/comm") $user $sys"; } || true
  done
}
counter() { # metric name: its value now
  curl -s "http://127.0.0.1:$TG_PORT/metrics" | awk -v m="$1" '$1 == m {s += $2} END {print s + 0}'
}

"$BIN/tollgate-bench" mock --listen "127.0.0.1:$MOCK_PORT" --key "$UPSTREAM_KEY" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"

recording=true; extra=(); transcripts=false
case "$MODE" in
  metered) ;;
  unmetered) recording=false ;;
  traced) extra=(--otlp-endpoint "http://127.0.0.1:$MOCK_PORT") ;;
  limited) ;;
  transcripts) transcripts=true ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
serve=("$BIN/tollgate" serve --listen "127.0.0.1:$TG_PORT" --data-dir "$DATA" --worker-threads 1
  --usage-recording="$recording" --log warn "${extra[@]}"
  # Under callgrind the gateway serves ~50× fewer requests per second: a longer flush interval
  # keeps its usage batches near the bench's full ones (1,000 events), so per-event costs compare.
  --usage-flush-interval-ms "$FLUSH_MS")
case "$TOOL" in
  callgrind) valgrind --tool=callgrind ${CALLGRIND_ARGS:-} --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out" \
      "${serve[@]}" >"$OUT/serve.log" 2>&1 & ;;
  perf | threads) "${serve[@]}" >"$OUT/serve.log" 2>&1 & ;;
  *) echo "unknown tool $TOOL" >&2; exit 2 ;;
esac
TG_PID=$!; PIDS+=("$TG_PID")
wait_port "$TG_PORT"
limited=false; [ "$MODE" = limited ] && limited=true
case "$API" in
  openai) anthropic=false; route=mock/chat/completions ;;
  anthropic) anthropic=true; route=mock-anthropic/v1/messages ;;
  *) echo "unknown api $API" >&2; exit 2 ;;
esac
provision_tollgate "$BIN" "$TG_PORT" "$DATA" "$MOCK_PORT" "$UPSTREAM_KEY" "$transcripts" "$limited" "$anthropic"
URL="http://127.0.0.1:$TG_PORT/llm/v1/providers/$route"
load() { "$BIN/tollgate-bench" load --scenario profile --target "$MODE" --url "$URL" --token "$TOKEN" --api "$API" \
  "${STREAM[@]}" --connections "$CONNECTIONS" --warmup 0 --duration "$1" >>"$OUT/load.log" 2>&1; }

load 1 # warm-up: connections, pools, caches
sleep 0.5 # the warm-up's usage batch
before=$(counter tollgate_proxy_requests_forwarded_total); written_before=$(counter tollgate_usage_events_written_total)
case "$TOOL" in
  callgrind) callgrind_control -i on "$TG_PID" >/dev/null; load "$DURATION"; sleep 0.5
    callgrind_control -i off "$TG_PID" >/dev/null ;;
  perf) perf record -g -F 2999 -p "$TG_PID" -o "$OUT/perf.data" -- sleep "$(echo "$DURATION + 0.5" | bc)" \
      >/dev/null 2>&1 & PERF=$!; load "$DURATION"; wait "$PERF" ;;
  threads) thread_ticks >"$OUT/threads.before"; load "$DURATION"; sleep 0.5; thread_ticks >"$OUT/threads.after" ;;
esac
after=$(counter tollgate_proxy_requests_forwarded_total); written_after=$(counter tollgate_usage_events_written_total)
n=$((after - before)); w=$((written_after - written_before))
kill -TERM "$TG_PID"; wait "$TG_PID" 2>/dev/null || true
echo "mode $MODE: $n requests forwarded and $w usage events written in the window"
if [ "$TOOL" = callgrind ]; then
  total=$(callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "instructions: $total, per request: $((total / (n > 0 ? n : 1)))"
  echo "by function, inclusive: callgrind_annotate --inclusive=yes $OUT/callgrind.out"
fi
if [ "$TOOL" = threads ]; then
  hz=$(getconf CLK_TCK)
  echo "CPU per request by thread (µs), over $DURATION s:"
  awk -v n="$n" -v hz="$hz" 'BEGIN { printf "  %-24s %8s %8s %8s\n", "thread", "user", "system", "total" }
    NR == FNR { u[$1] = $3; s[$1] = $4; next }
    { du = $3 - u[$1]; ds = $4 - s[$1]; tu += du; ts += ds; k = 1e6 / hz / n
      if (du + ds > 0) printf "  %-24s %8.2f %8.2f %8.2f\n", $2 " (" $1 ")", du * k, ds * k, (du + ds) * k }
    END { k = 1e6 / hz / n; printf "  %-24s %8.2f %8.2f %8.2f\n", "all threads", tu * k, ts * k, (tu + ts) * k }' \
    "$OUT/threads.before" "$OUT/threads.after" | tee "$OUT/threads.txt"
fi
echo "profile: $OUT"
