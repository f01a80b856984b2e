#!/usr/bin/env bash
# Installs the real clients that the Connect tab's snippets are run with (crates/cli/tests/it/
# connect_snippets.rs): a Python venv with the official SDKs and an npm prefix with the official
# JS SDKs, tsx (runs the TypeScript snippets), Codex and Claude Code, axe-core (the console browser
# test's accessibility check); h2 lets the OpenAI SDK's HTTP client
# speak HTTP/2 in the TLS test. Pinned versions; idempotent:
# a stamp file holding this script's hash skips the work when nothing changed.
#
#   tests/tools/install.sh            # into $TOLLGATE_SNIPPET_TOOLS, default <repo>/target/snippet-tools
#
# Needs python3 (with venv) and node >= 20 / npm; PyPI and the npm registry must be reachable.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${TOLLGATE_SNIPPET_TOOLS:-$repo/target/snippet-tools}"

PY_PACKAGES=(openai==3.63.0 anthropic==2.17.0 google-genai==3.6.1 boto3==1.44.18 h2==4.4.1)
NPM_PACKAGES=(openai@7.60.0 @anthropic-ai/sdk@1.17.0 @google/genai@3.3.0 tsx@4.23.15
              @aws-sdk/client-bedrock-runtime@3.1178.0 @openai/codex@0.171.0
              @anthropic-ai/claude-code@2.1.332 @google/gemini-cli@0.61.0
              axe-core@4.14.1)

stamp="$dest/.installed"
want="$(sha256sum "$0" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "snippet tools already installed in $dest"
  exit 0
fi

command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm (node >= 20) is required" >&2; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || { echo "node >= 20 is required (found $(node --version))" >&2; exit 1; }

mkdir -p "$dest"
rm -f "$stamp"
echo "python venv: $dest/venv"
[ -x "$dest/venv/bin/python" ] || python3 -m venv "$dest/venv"
"$dest/venv/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"

echo "npm packages: $dest/node"
mkdir -p "$dest/node"
[ -f "$dest/node/package.json" ] || printf '{"name":"snippet-tools","private":true,"type":"module"}\n' >"$dest/node/package.json"
npm install --prefix "$dest/node" --no-audit --no-fund --loglevel=error "${NPM_PACKAGES[@]}"

echo "$want" >"$stamp"
echo "snippet tools installed in $dest"
