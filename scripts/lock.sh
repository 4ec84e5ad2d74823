#!/bin/sh
# Regenerates requirements.txt, the lock file the function app is built from: every package the app needs,
# transitive ones included, pinned to one version with the hashes of its files, resolved for the platform
# Flex Consumption runs (Linux x86_64, Python 3.11) from the runtime dependencies of pyproject.toml without
# the command line's own (typer, rich). tests/test_packaging.py checks the two agree. Needs uv
# (pip install uv) and PyPI. Run it after changing pyproject.toml's dependencies, or to take updates.
set -eu
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || { echo "lock.sh: needs uv: pip install uv" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
python3 - > "$work/runtime.in" <<'PY'
import re, tomllib
CLI_ONLY = {"typer", "rich"}
for spec in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if re.split(r"[<>=!~ ;\[]", spec, maxsplit=1)[0].lower() not in CLI_ONLY:
        print(spec)
PY
uv pip compile "$work/runtime.in" --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --generate-hashes --no-annotate \
    --custom-compile-command "bash scripts/lock.sh" --output-file requirements.txt
