# Sourced by bench/run.sh and bench/profile.sh: provisions a freshly started Tollgate for the
# bench's rows, the same way for both (so a profile measures what a bench row measures).
#
#   provision_tollgate BIN PORT DATA_DIR MOCK_PORT UPSTREAM_KEY TRANSCRIPTS LIMITED ANTHROPIC
#
# Waits for the admin token in DATA_DIR, stores UPSTREAM_KEY as the secret MOCK_API_KEY, creates
# the provider `mock` (openai_compatible, base URL the mock's /v1; both transcript toggles set
# to TRANSCRIPTS), with ANTHROPIC=true also `mock-anthropic` (the mock as an Anthropic upstream),
# with LIMITED=true one budget and one rate limit every request matches (sized so none is
# refused: the cost of reserving and settling on every call, not of refusing), and sets TOKEN
# to a new invoker token.
provision_tollgate() {
  local bin=$1 port=$2 data=$3 mock_port=$4 key=$5 transcripts=$6 limited=$7 anthropic=$8
  local cli=("$bin/tollgate" --url "http://127.0.0.1:$port")
  for _ in $(seq 1 600); do [ -s "$data/admin.token" ] && break; sleep 0.05; done
  export TOLLGATE_DATA_DIR=$data
  printf '%s' "$key" | "${cli[@]}" secret set MOCK_API_KEY >/dev/null
  "${cli[@]}" provider create mock --type openai_compatible \
    --openai-compatible-config.base-url "http://127.0.0.1:$mock_port/v1" \
    --openai-compatible-config.api-key-ref MOCK_API_KEY \
    --transcripts.record-input-messages "$transcripts" \
    --transcripts.record-output-messages "$transcripts" >/dev/null
  if [ "$anthropic" = true ]; then
    "${cli[@]}" provider create mock-anthropic --type anthropic \
      --anthropic-config.base-url "http://127.0.0.1:$mock_port" \
      --anthropic-config.api-key-ref MOCK_API_KEY >/dev/null
  fi
  TOKEN=$("${cli[@]}" token create bench --role invoker -o json | grep -o '"token": *"tg_[A-Za-z0-9]*"' | grep -o 'tg_[A-Za-z0-9]*')
  if [ "$limited" = true ]; then
    "${cli[@]}" budget create bench-pool --pooling shared --limit 1000000 >/dev/null
    "${cli[@]}" rate-limit create bench-rate --provider mock --rpm 1000000000 --tpm 1000000000000 >/dev/null
  fi
  unset TOLLGATE_DATA_DIR
}
