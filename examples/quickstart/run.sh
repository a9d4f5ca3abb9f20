#!/usr/bin/env bash
# A real worker on the embedded Redis, and tasks sent to it from another process.
# Usage: bash examples/quickstart/run.sh   (makes .venv with celeriac[embedded] if needed)
# The embedded Redis outlives the worker; this script stops it at the end, unless it was
# running before (then `celeriac embedded stop` stops it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CELERIAC_VENV:-$root/.venv}"
if ! "$venv/bin/python" -c "from celeriac.brokers.embedded import available as a; exit(not a())" 2>/dev/null; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet -e "$root[embedded]"
fi
cd "$here"
celeriac="$venv/bin/celeriac"
ran_before=0
if "$celeriac" embedded status >/dev/null; then ran_before=1; fi
"$celeriac" -A tasks worker -l info -c 2 &
worker=$!
finish() {
  kill -TERM "$worker" 2>/dev/null || true
  wait "$worker" || true
  if [ "$ran_before" = 1 ]; then
    echo "The embedded Redis was running before and keeps running: '$celeriac embedded stop' stops it."
  else
    "$celeriac" embedded stop
  fi
}
trap finish EXIT
"$venv/bin/python" send.py
