#!/usr/bin/env bash
# Installs schemathesis (pinned) into a venv under target/ (idempotent). The Rust test
# `openapi::schemathesis_finds_nothing` (crates/cli/tests/it/openapi.rs) starts a gateway and
# runs `st run` against its served OpenAPI document with every check; any finding fails it.
#
#   tests/tools/schemathesis.sh install
#   TOLLGATE_SCHEMATHESIS   the install folder (default <repo>/target/schemathesis)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${TOLLGATE_SCHEMATHESIS:-$repo/target/schemathesis}"
VERSION=4.32.5

install() {
  if [ -x "$dest/venv/bin/st" ] && [ "$(cat "$dest/.installed" 2>/dev/null)" = "$VERSION" ]; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
  mkdir -p "$dest"
  rm -f "$dest/.installed"
  [ -x "$dest/venv/bin/python" ] || python3 -m venv "$dest/venv"
  "$dest/venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION"
  echo "$VERSION" >"$dest/.installed"
  echo "schemathesis $VERSION installed in $dest"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
