#!/usr/bin/env bash
# A real worker on the embedded Redis, and tasks sent to it from another process.
# Usage: bash examples/quickstart/run.sh   (makes .venv with celeriac[embedded] if needed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CELERIAC_VENV:-$root/.venv}"
if ! "$venv/bin/python" -c "from celeriac.brokers.embedded import available as a; exit(not a())" 2>/dev/null; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet -e "$root[embedded]"
fi
cd "$here"
"$venv/bin/celeriac" -A tasks worker -l info -c 2 &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null || true; wait "$worker" || true' EXIT
"$venv/bin/python" send.py
