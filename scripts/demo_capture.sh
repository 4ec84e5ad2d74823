#!/usr/bin/env bash
# Regenerates docs/demo.txt from a real run of `galsync demo`, as a person sees it on a 100-column terminal.
# Times, ids and durations change from run to run; the story does not. The file is replaced only when the
# demo succeeds (exit 0), so a failed run never overwrites a good capture.
#
# Usage: bash scripts/demo_capture.sh   (after `pip install -e '.[emulator]'` into .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

galsync=.venv/bin/galsync
[[ -x "$galsync" ]] || { echo "no $galsync: run python3 -m venv .venv && .venv/bin/pip install -e '.[emulator]'" >&2; exit 2; }

# The demo brings its own settings; a developer's GALSYNC_* variables must not leak into the capture.
unset_args=()
while IFS= read -r name; do unset_args+=(-u "$name"); done < <(env | grep -o '^GALSYNC_[A-Z_]*' || true)

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  echo '$ galsync demo'
  env "${unset_args[@]}" COLUMNS=100 NO_COLOR=1 "$galsync" demo 2>&1
} | sed 's/[[:space:]]*$//' > "$tmp"   # rich pads lines to the terminal width; the file need not
mv "$tmp" docs/demo.txt
trap - EXIT
echo "docs/demo.txt: $(wc -l < docs/demo.txt) lines"
