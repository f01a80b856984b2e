#!/usr/bin/env bash
# Proxy overhead benchmark: the mock upstream reached directly, through nginx (the limit of an
# HTTP proxy) and through Tollgate with metering on, side by side in one run, on loopback.
#
#   bench/run.sh [--duration SECONDS] [--scenarios "P1 P3 ..."] [--peers] [--no-build] [--pgo]
#
# --pgo measures the profile-guided build of the gateway (bench/pgo.sh, into target/pgo/release;
# with --no-build, the one already there); the report's commit says "PGO build".
# The proxy under test runs alone on one core (taskset), the mock and the load client share the
# other, everything at nice -20; Tollgate gets one runtime worker thread and nginx one worker.
# Per row: req/s, latency percentiles, time to first chunk, the proxy's CPU time per request
# (from /proc) and its peak RSS (P6 also its RSS 5 s after the streams' connections closed:
# whether a burst's memory is given back), the load average before and after. Each Tollgate row runs on a
# fresh data dir; after it, the gateway is stopped (SIGTERM drains the usage queue) and the
# usage store must hold exactly one event per 2xx answer. Writes bench/results/<stamp>.{json,md}.
# P8 and P9 run P1 and P5 with both transcript toggles off and on; P10 runs P1 with tracing off
# and on (every span sampled and exported over OTLP/HTTP to the mock's /v1/traces); P11 runs
# P1 without and with one budget and one rate limit that every request matches (reserve +
# settle on each call; nothing refused): each feature's cost, judged against the rows without
# it in the same run, the two sides interleaved ABBA (see pair() below; P9 compares the mean of
# each side's p99 time to first chunk over its rounds).
#
# P12 is P1 in Anthropic's shape (POST /v1/messages, x-api-key, usage.input_tokens): Tollgate
# through an anthropic provider, nginx, and with --peers LiteLLM's Python path and its Rust path.
#
# TOLLGATE_BIN_DIR runs another build of the gateway (two builds compared: an allocator, a
# profile); the mock, load client and report always come from $CARGO_TARGET_DIR/release.
#
# BENCH_KEEP=1 keeps the work dir (configs, logs, data dirs); BENCH_PORT_BASE moves the ports.
# --peers adds, each installed on first use and skipped (with the reason) when it cannot run:
# LiteLLM (pip, pinned, in a venv under ~/.cache/tollgate-bench-peers) and its Rust path
# (LITELLM_RUST on an anthropic model, P12), Portkey's gateway (npm, same cache), and two Rust
# gateways: TensorZero (from its PyPI wheel) and litellm-rs (`cargo install` into
# $CARGO_TARGET_DIR/tools; the first build takes long). BENCH_SKIP_PEERS="litellm-rs ..." leaves
# peers out (names: litellm litellm-rust portkey tensorzero litellm-rs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/provision.sh
. "$ROOT/bench/provision.sh"

DURATION=20
SCENARIOS="P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12"
PEERS=0
BUILD=1
PGO=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --peers) PEERS=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --pgo) PGO=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { printf '== %s\n' "$*" >&2; }

# `nice` only orders processes within one scheduler autogroup (one per session); when
# autogroups are on, raise ours too so parallel builds elsewhere cannot take half the cores.
if [ -w /proc/self/autogroup ]; then echo -20 >/proc/self/autogroup 2>/dev/null || true; fi

if [ "$(nproc)" -ge 2 ]; then PROXY_CPU=0; LOAD_CPU=1; else PROXY_CPU=0; LOAD_CPU=0; fi
PORT_BASE=${BENCH_PORT_BASE:-19100}
MOCK_PORT=$((PORT_BASE + 1)); NGINX_PORT=$((PORT_BASE + 2)); TG_PORT=$((PORT_BASE + 3))
LITELLM_PORT=$((PORT_BASE + 4)); PORTKEY_PORT=$((PORT_BASE + 5)); LITELLM_RS_PORT=$((PORT_BASE + 6))
UPSTREAM_KEY=sk-bench-upstream-0123456789
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
# The gateway under test (TOLLGATE_BIN_DIR: another build of it); the mock, the load client
# and the report always come from $BIN.
TG_BIN=${TOLLGATE_BIN_DIR:-$BIN}
[ "$PGO" = 1 ] && TG_BIN=${TOLLGATE_BIN_DIR:-$ROOT/target/pgo/release}
ulimit -n 20000 2>/dev/null || true

if [ "$BUILD" = 1 ]; then
  log "building release binaries"
  cargo build --release -q -p tollgate-cli -p tollgate-bench
  if [ "$PGO" = 1 ]; then log "building the profile-guided gateway (bench/pgo.sh)"; bench/pgo.sh >&2; fi
fi
[ -x "$TG_BIN/tollgate" ] || { echo "no gateway binary in $TG_BIN (build it, or drop --no-build)" >&2; exit 1; }

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  log "installing nginx-light"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
ROWS=$WORK/rows.jsonl
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# Prefixes, not functions: `"${PIN_PROXY[@]}" cmd &` leaves $! = the command's own pid
# (nice and taskset exec it), which is what gets watched and stopped.
PIN_PROXY=(nice -n -20 taskset -c "$PROXY_CPU")
PIN_LOAD=(nice -n -20 taskset -c "$LOAD_CPU")

wait_port() {
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on port $1" >&2; return 1
}

stop_pid() { # pid: SIGTERM, wait for it to exit
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null || true
}

MOCK_PID=
start_mock() { # mock flags...
  "${PIN_LOAD[@]}" "$BIN/tollgate-bench" mock --listen "127.0.0.1:$MOCK_PORT" --key "$UPSTREAM_KEY" "$@" &
  MOCK_PID=$!; PIDS+=("$MOCK_PID")
  wait_port "$MOCK_PORT"
}
stop_mock() { stop_pid "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true; }

# --- targets: each start_* sets URL, TOKEN and WATCH (the pid doing the proxying) ---------

# API (openai | anthropic) is the shape of the scenario being run; each start_* sets its URL for it.
API=openai
# The proxy route of each shape on Tollgate and nginx: the provider and its upstream path.
gateway_route() { if [ "$API" = anthropic ]; then echo mock-anthropic/v1/messages; else echo mock/chat/completions; fi; }

start_direct() {
  if [ "$API" = anthropic ]; then URL="http://127.0.0.1:$MOCK_PORT/v1/messages"
  else URL="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"; fi
  TOKEN=$UPSTREAM_KEY; WATCH=$MOCK_PID
}
stop_direct() { :; }

NGINX_TOKEN=tg_nginxBenchToken0123456789abcdefghijklmnopq
start_nginx() {
  local d=$WORK/nginx; rm -rf "$d"; mkdir -p "$d/tmp"
  cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  map_hash_bucket_size 128;
  map \$http_authorization \$gateway_token_ok { "Bearer $NGINX_TOKEN" 1; default 0; }
  map \$http_x_api_key \$gateway_key_ok { "$NGINX_TOKEN" 1; default 0; }
  upstream mock {
    server 127.0.0.1:$MOCK_PORT;
    keepalive 1024;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location /llm/v1/providers/mock/ {
      if (\$gateway_token_ok = 0) { return 401; }
      proxy_pass http://mock/v1/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $UPSTREAM_KEY";
      proxy_buffering off;
      proxy_read_timeout 600s;
    }
    location /llm/v1/providers/mock-anthropic/ {
      if (\$gateway_key_ok = 0) { return 401; }
      proxy_pass http://mock/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-api-key "$UPSTREAM_KEY";
      proxy_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
EOF
  "${PIN_PROXY[@]}" "$NGINX" -p "$d" -c "$d/nginx.conf" &
  NGINX_PID=$!; PIDS+=("$NGINX_PID")
  wait_port "$NGINX_PORT"
  WATCH=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" | awk '{print $1}')
  URL="http://127.0.0.1:$NGINX_PORT/llm/v1/providers/$(gateway_route)"; TOKEN=$NGINX_TOKEN
}
stop_nginx() { stop_pid "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true; }

TG_DATA=
start_tollgate() { # usage recording: true|false, then extra serve flags; TG_TRANSCRIPTS=true records both directions, TG_LIMITED=true adds one budget and one rate limit
  TG_DATA=$WORK/tollgate-$RANDOM; mkdir -p "$TG_DATA"
  local recording=$1; shift
  "${PIN_PROXY[@]}" "$TG_BIN/tollgate" serve --listen "127.0.0.1:$TG_PORT" --data-dir "$TG_DATA" \
    --worker-threads 1 --usage-recording="$recording" --log warn "$@" >"$TG_DATA/serve.log" 2>&1 &
  TG_PID=$!; PIDS+=("$TG_PID")
  wait_port "$TG_PORT"
  local anthropic=false; [ "$API" = anthropic ] && anthropic=true
  provision_tollgate "$TG_BIN" "$TG_PORT" "$TG_DATA" "$MOCK_PORT" "$UPSTREAM_KEY" "${TG_TRANSCRIPTS:-false}" \
    "${TG_LIMITED:-false}" "$anthropic"
  URL="http://127.0.0.1:$TG_PORT/llm/v1/providers/$(gateway_route)"; WATCH=$TG_PID
}
stop_tollgate() {
  if [ -n "${TG_TRACED:-}" ]; then # what the traced row exported (the spans of the last flush follow at SIGTERM)
    curl -s "http://127.0.0.1:$TG_PORT/metrics" | grep -E '^tollgate_otel_(spans_exported|spans_dropped|export_failures)_total' >&2 || true
  fi
  stop_pid "$TG_PID"; wait "$TG_PID" 2>/dev/null || true
}

# --- optional peers --------------------------------------------------------------------------
# Each peer is installed on first use into a cache kept across runs (pip venvs and npm under
# ~/.cache/tollgate-bench-peers, `cargo install` into $CARGO_TARGET_DIR/tools), at a pinned
# version, never by .ci/run. One that cannot be installed or started is skipped with the reason,
# printed and listed under the results table. Peers without a client-auth setup that works
# without their database (TensorZero, litellm-rs) run without a client key.

LITELLM_VERSION=1.106.12   # >= 1.94 for `rust: true`; 1.108+ moved the proxy to `litellm-proxy`, not on PyPI
TENSORZERO_VERSION=2026.6.0
LITELLM_RS_VERSION=0.9.0
LITELLM_OK=0; LITELLM_RUST_OK=0; PORTKEY_OK=0; TENSORZERO_OK=0; LITELLM_RS_OK=0
SKIPPED=()
skip() { log "$1 skipped: $2"; SKIPPED+=("$1: $2"); }
# BENCH_SKIP_PEERS="litellm-rs tensorzero ..." leaves those out (e.g. to avoid a first build).
wanted() {
  case " ${BENCH_SKIP_PEERS:-} " in *" $1 "*) skip "$1" "left out by BENCH_SKIP_PEERS"; return 1 ;; esac
}

# venv package version spec: a venv holding exactly that version of the package, made if needed.
pip_venv() {
  local venv=$PEER_DIR/$1 pkg=$2 version=$3 spec=$4
  "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$pkg') != '$version')" 2>/dev/null && return 0
  log "installing $spec (pip, into $venv)"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q "$spec" >"$PEER_DIR/$1-install.log" 2>&1
}

if [ "$PEERS" = 1 ]; then
  PEER_DIR=${BENCH_PEER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-bench-peers}; mkdir -p "$PEER_DIR"
  TOOLS=${BENCH_PEER_TOOLS:-$TARGET_DIR/tools}; mkdir -p "$TOOLS"
  if ! wanted litellm; then :
  elif pip_venv litellm litellm "$LITELLM_VERSION" "litellm[proxy]==$LITELLM_VERSION"; then
    LITELLM_OK=1
    # The Rust core ships inside the wheel (litellm/rust_bridge/_native); with it on, LiteLLM
    # sends the anthropic provider's /v1/messages calls through it (see start_litellm).
    if ! wanted litellm-rust; then :
    elif "$PEER_DIR/litellm/bin/python" -c 'import litellm.rust_bridge._native' 2>/dev/null; then LITELLM_RUST_OK=1
    else skip "LiteLLM Rust path" "litellm $LITELLM_VERSION has no loadable rust_bridge._native on this platform"; fi
  else skip LiteLLM "pip install litellm[proxy]==$LITELLM_VERSION failed (see $PEER_DIR/litellm-install.log)"; fi
  # The package's executable is `gateway` (build/start-server.js); `--port=N`, `--headless`.
  if ! wanted portkey; then :
  elif [ -x "$PEER_DIR/portkey/node_modules/.bin/gateway" ] || {
      mkdir -p "$PEER_DIR/portkey" && npm install --prefix "$PEER_DIR/portkey" --silent @portkey-ai/gateway; }; then PORTKEY_OK=1
  else skip Portkey "npm install @portkey-ai/gateway failed"; fi
  # TensorZero's gateway is Rust; the PyPI wheel embeds it and starts it as a local HTTP server.
  if ! wanted tensorzero; then :
  elif pip_venv tensorzero tensorzero "$TENSORZERO_VERSION" "tensorzero==$TENSORZERO_VERSION"; then TENSORZERO_OK=1
  else skip TensorZero "pip install tensorzero==$TENSORZERO_VERSION failed (see $PEER_DIR/tensorzero-install.log)"; fi
  # litellm-rs: a Rust gateway from crates.io. Its release profile (fat LTO, one codegen unit)
  # is relaxed to -O3 without LTO, 16 units, so the first build takes minutes, not an hour.
  if ! wanted litellm-rs; then :
  elif [ -x "$TOOLS/bin/gateway" ] && "$TOOLS/bin/gateway" --version 2>/dev/null | grep -q "$LITELLM_RS_VERSION"; then LITELLM_RS_OK=1
  else
    log "building litellm-rs $LITELLM_RS_VERSION (cargo install into $TOOLS; long on first use)"
    if CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 nice -n 10 \
        cargo install litellm-rs --version "$LITELLM_RS_VERSION" --locked --bin gateway --no-default-features \
        --features sqlite,tracing --root "$TOOLS" --target-dir "$TOOLS/build" >"$TOOLS/litellm-rs-install.log" 2>&1; then
      LITELLM_RS_OK=1
    else skip litellm-rs "cargo install litellm-rs $LITELLM_RS_VERSION failed (see $TOOLS/litellm-rs-install.log)"; fi
  fi
  skip "LangDB ai-gateway" "as published (0.3.2) its OpenAI provider ignores a custom endpoint and its proxy mode exits at start, so it cannot reach the mock without a local patch"
fi

LITELLM_TOKEN=sk-litellm-bench-master
start_litellm() { # rust: true|false, LiteLLM's Rust path for the Anthropic model
  local rust=${1:-false}
  cat >"$WORK/litellm.yaml" <<EOF
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:$MOCK_PORT/v1", api_key: "$UPSTREAM_KEY"}
  - model_name: claude-sonnet-4-5
    litellm_params: {model: anthropic/claude-sonnet-4-5, api_base: "http://127.0.0.1:$MOCK_PORT", api_key: "$UPSTREAM_KEY", rust: $rust}
general_settings: {master_key: $LITELLM_TOKEN}
EOF
  # In this release the switch the /v1/messages dispatch reads is the process-wide LITELLM_RUST
  # (Rust for the anthropic provider when true); the model's `rust: true` states the same intent.
  # LITELLM_LOCAL_MODEL_COST_MAP: the bundled price map, no fetch at start.
  LITELLM_RUST=$rust LITELLM_LOCAL_MODEL_COST_MAP=True "${PIN_PROXY[@]}" "$PEER_DIR/litellm/bin/litellm" \
    --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1 >"$WORK/litellm.log" 2>&1 &
  LITELLM_PID=$!; PIDS+=("$LITELLM_PID")
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$LITELLM_PORT") 2>/dev/null && break; sleep 0.1; done
  TOKEN=$LITELLM_TOKEN; WATCH=$LITELLM_PID
  if [ "$API" = anthropic ]; then URL="http://127.0.0.1:$LITELLM_PORT/v1/messages"
  else URL="http://127.0.0.1:$LITELLM_PORT/v1/chat/completions"; fi
  if [ "$rust" = true ]; then # say so when the Rust path did not take the request (it falls back to Python)
    local head
    head=$(curl -s -o /dev/null -D - "$URL" -H "x-api-key: $TOKEN" -H 'anthropic-version: 2023-06-01' \
      -H 'content-type: application/json' \
      --data '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}' || true)
    grep -qi '^x-litellm-rust: *true' <<<"$head" ||
      log "warning: LiteLLM answered without x-litellm-rust: true; this row may measure its Python fallback"
  fi
}
stop_litellm() { stop_pid "$LITELLM_PID"; wait "$LITELLM_PID" 2>/dev/null || true; }

start_portkey() {
  PORT=$PORTKEY_PORT "${PIN_PROXY[@]}" "$PEER_DIR/portkey/node_modules/.bin/gateway" \
    --port="$PORTKEY_PORT" --headless >"$WORK/portkey.log" 2>&1 &
  PORTKEY_PID=$!; PIDS+=("$PORTKEY_PID")
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORTKEY_PORT") 2>/dev/null && break; sleep 0.1; done
  URL="http://127.0.0.1:$PORTKEY_PORT/v1/chat/completions"; TOKEN=$UPSTREAM_KEY; WATCH=$PORTKEY_PID
  EXTRA=(--header "x-portkey-provider: openai" --header "x-portkey-custom-host: http://127.0.0.1:$MOCK_PORT/v1")
}
stop_portkey() { stop_pid "$PORTKEY_PID"; wait "$PORTKEY_PID" 2>/dev/null || true; }

start_tensorzero() {
  cat >"$WORK/tensorzero.toml" <<EOF
[models.mock]
routing = ["mock"]

[models.mock.providers.mock]
type = "openai"
model_name = "gpt-4o-mini"
api_base = "http://127.0.0.1:$MOCK_PORT/v1/"
api_key_location = "env::MOCK_API_KEY"
EOF
  # The wheel's gateway listens on a port it picks and says where (base_url); the Python process
  # only holds it, the requests are served by its Rust runtime.
  MOCK_API_KEY=$UPSTREAM_KEY "${PIN_PROXY[@]}" "$PEER_DIR/tensorzero/bin/python" -u -c '
import signal, sys, tensorzero
gw = tensorzero._start_http_gateway(config_file=sys.argv[1], clickhouse_url=None, postgres_url=None,
                                    valkey_url=None, async_setup=False)
print("BASE_URL", gw.base_url, flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
gw.close()' "$WORK/tensorzero.toml" >"$WORK/tensorzero.log" 2>&1 &
  TENSORZERO_PID=$!; PIDS+=("$TENSORZERO_PID")
  local base=
  for _ in $(seq 1 300); do base=$(awk '/^BASE_URL / {print $2}' "$WORK/tensorzero.log"); [ -n "$base" ] && break; sleep 0.1; done
  [ -n "$base" ] || { echo "TensorZero did not start: $(tail -5 "$WORK/tensorzero.log")" >&2; return 1; }
  URL="${base%/}/chat/completions"; TOKEN=; WATCH=$TENSORZERO_PID # base: http://127.0.0.1:<port>/openai/v1
  EXTRA=(--model tensorzero::model_name::mock)
}
stop_tensorzero() { stop_pid "$TENSORZERO_PID"; wait "$TENSORZERO_PID" 2>/dev/null || true; }

start_litellm_rs() {
  cat >"$WORK/litellm-rs.yaml" <<EOF
schema_version: "1.0"
server: {host: "127.0.0.1", port: $LITELLM_RS_PORT, workers: 1}
providers:
  - name: mock
    provider_type: openai
    api_key: "$UPSTREAM_KEY"
    base_url: "http://127.0.0.1:$MOCK_PORT/v1"
    models: ["gpt-4o-mini"]
    # Its defaults (1,000 rpm, 100k tpm, 10 concurrent requests per provider) would throttle the load.
    rpm: 1000000000
    tpm: 4000000000
    max_concurrent_requests: 10000
    max_retries: 0
    enabled: true
    endpoint_access: private_network # its SSRF check refuses a loopback base_url otherwise
router:
  strategy: round_robin
  circuit_breaker: {failure_threshold: 5, recovery_timeout: 60, min_requests: 10, success_threshold: 3}
  load_balancer: {health_check_enabled: false}
storage:
  database: {url: "sqlite://$WORK/litellm-rs.sqlite", enabled: false}
  redis: {url: "redis://127.0.0.1:6379", enabled: false}
auth: {enable_jwt: false, enable_api_key: false, allow_anonymous: true}
monitoring:
  metrics: {enabled: false, port: 9090, path: /metrics, interval_seconds: 15}
  tracing: {enabled: false, endpoint: null, service_name: litellm-rs-bench, sampling_rate: 0.1, jaeger: null}
  health: {path: /health, detailed: false}
EOF
  "${PIN_PROXY[@]}" "$TOOLS/bin/gateway" --config "$WORK/litellm-rs.yaml" serve >"$WORK/litellm-rs.log" 2>&1 &
  LITELLM_RS_PID=$!; PIDS+=("$LITELLM_RS_PID")
  wait_port "$LITELLM_RS_PORT" || { echo "litellm-rs did not start: $(tail -5 "$WORK/litellm-rs.log")" >&2; return 1; }
  URL="http://127.0.0.1:$LITELLM_RS_PORT/v1/chat/completions"; TOKEN=; WATCH=$LITELLM_RS_PID
}
stop_litellm_rs() { stop_pid "$LITELLM_RS_PID"; wait "$LITELLM_RS_PID" 2>/dev/null || true; }

# --- one row ---------------------------------------------------------------------------------

row() { # scenario target -- load flags...
  local scenario=$1 target=$2; shift 3
  local kind=$target extra_start=()
  EXTRA=()
  case "$target" in
    tollgate) kind=tollgate; extra_start=(true) ;;
    tollgate-unmetered) kind=tollgate; extra_start=(false) ;;
    tollgate-transcripts) kind=tollgate; extra_start=(true) ;;
    tollgate-traced) kind=tollgate; extra_start=(true --otlp-endpoint "http://127.0.0.1:$MOCK_PORT") ;;
    tollgate-limited) kind=tollgate; extra_start=(true) ;;
    litellm) kind=litellm; extra_start=(false) ;;
    litellm-rust) kind=litellm; extra_start=(true) ;;
    litellm-rs) kind=litellm_rs ;;
  esac
  TG_TRACED=; [ "$target" = tollgate-traced ] && TG_TRACED=1
  TG_TRANSCRIPTS=false; [ "$target" = tollgate-transcripts ] && TG_TRANSCRIPTS=true
  TG_LIMITED=false; [ "$target" = tollgate-limited ] && TG_LIMITED=true
  log "$scenario $target"
  if ! "start_$kind" "${extra_start[@]}"; then
    skip "$target ($scenario)" "did not start (see the message above)"; "stop_$kind"; return 0
  fi
  local auth=(); [ -n "$TOKEN" ] && auth=(--token "$TOKEN")
  "${PIN_LOAD[@]}" "$BIN/tollgate-bench" load --scenario "$scenario" --target "$target" --out "$ROWS" \
    --api "$API" --url "$URL" "${auth[@]}" --watch-pid "$WATCH" "${EXTRA[@]}" "$@" >/dev/null
  "stop_$kind"
  if [ "$target" = tollgate ] || [ "$target" = tollgate-transcripts ] || [ "$target" = tollgate-traced ] || [ "$target" = tollgate-limited ]; then
    "$BIN/tollgate-bench" usage-count --scenario "$scenario" --target "$target" --out "$ROWS" \
      --database-url "sqlite://$TG_DATA/usage.sqlite" >/dev/null
  fi
  sleep 1
}

# A feature's cost row: the run without it (A) and with it (B) in ABBA order (BENCH_ROUNDS=2,
# the default), each for the full duration, so a drift in the machine's speed over the run
# (other guests, thermal, turbo) weighs on both sides alike instead of on whichever ran second;
# the report compares the mean req/s of each side. BENCH_ROUNDS=1 runs A then B once.
pair() { # scenario A B -- load flags...
  local scenario=$1 a=$2 b=$3; shift 3
  local order="$a $b" i
  for ((i = 1; i < ${BENCH_ROUNDS:-2}; i++)); do
    if ((i % 2 == 1)); then order="$order $b $a"; else order="$order $a $b"; fi
  done
  for t in $order; do row "$scenario" "$t" "$@"; done
}

targets() {
  local t="direct nginx tollgate"
  [ "$LITELLM_OK" = 1 ] && t="$t litellm"
  [ "$PORTKEY_OK" = 1 ] && t="$t portkey"
  [ "$TENSORZERO_OK" = 1 ] && t="$t tensorzero"
  [ "$LITELLM_RS_OK" = 1 ] && t="$t litellm-rs"
  echo "$t"
}

anthropic_targets() { # P12: Anthropic's shape; LiteLLM's Python path, then its Rust path
  local t="direct nginx tollgate"
  [ "$LITELLM_OK" = 1 ] && t="$t litellm"
  [ "$LITELLM_RUST_OK" = 1 ] && t="$t litellm-rust"
  echo "$t"
}

D=$DURATION
for s in $SCENARIOS; do
  case "$s" in
    P1) start_mock
        for t in $(targets); do row P1 "$t" -- --connections 50 --duration "$D"; done
        stop_mock ;;
    P2) start_mock --chunks 20
        for t in $(targets); do row P2 "$t" -- --connections 50 --duration "$D" --stream; done
        stop_mock ;;
    P3) start_mock
        for t in direct nginx tollgate; do row P3 "$t" -- --connections 1 --duration "$(( D / 2 > 5 ? D / 2 : 5 ))"; done
        stop_mock ;;
    P4) start_mock
        for t in $(targets); do row P4 "$t" -- --connections 64 --rate 5000 --duration "$D"; done
        stop_mock ;;
    P5) start_mock --chunks 20 --first-chunk-ms 20 --chunk-interval-ms 10
        for t in direct nginx tollgate; do row P5 "$t" -- --connections 50 --duration "$D" --stream; done
        stop_mock ;;
    P6) start_mock --chunks 50 --first-chunk-ms 100 --chunk-interval-ms 100
        for t in direct nginx tollgate; do row P6 "$t" -- --connections 1000 --warmup 1 --duration 10 --stream --settle 5; done
        stop_mock ;;
    P7) start_mock
        pair P7 tollgate-unmetered tollgate -- --connections 50 --duration "$D"
        stop_mock ;;
    P8) start_mock
        pair P8 tollgate tollgate-transcripts -- --connections 50 --duration "$D"
        stop_mock ;;
    P9) start_mock --chunks 20 --first-chunk-ms 20 --chunk-interval-ms 10
        pair P9 tollgate tollgate-transcripts -- --connections 50 --duration "$D" --stream
        stop_mock ;;
    P10) start_mock # P1 with tracing on: every span sampled and exported to the mock's /v1/traces
        pair P10 tollgate tollgate-traced -- --connections 50 --duration "$D"
        stop_mock ;;
    P11) start_mock # P1 with one budget and one rate limit every request matches
        pair P11 tollgate tollgate-limited -- --connections 50 --duration "$D"
        stop_mock ;;
    P12) start_mock; API=anthropic # P1 as Anthropic's /v1/messages
        for t in $(anthropic_targets); do row P12 "$t" -- --connections 50 --duration "$D"; done
        API=openai; stop_mock ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
COMMIT=$(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- crates bench Cargo.toml Cargo.lock || echo "-dirty")
[ "$PGO" = 1 ] && COMMIT="$COMMIT, PGO build"
MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); proxy on CPU $PROXY_CPU, mock + client on CPU $LOAD_CPU"
mkdir -p bench/results
cp "$ROWS" "bench/results/$STAMP.rows.jsonl"
SKIP_ARGS=(); for x in "${SKIPPED[@]:-}"; do [ -n "$x" ] && SKIP_ARGS+=(--skipped "$x"); done
"$BIN/tollgate-bench" report --rows "$ROWS" --json "bench/results/$STAMP.json" --markdown "bench/results/$STAMP.md" \
  --machine "$MACHINE" --commit "$COMMIT" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SKIP_ARGS[@]}"
log "results: bench/results/$STAMP.md"
cat "bench/results/$STAMP.md"
