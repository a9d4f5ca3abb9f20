#!/usr/bin/env bash
# The example shop: a Django view places an order and sends a task on commit; a real
# worker (with beat, -B) confirms it, and beat's periodic task ships it.
# Usage: bash examples/django/run.sh   (makes .venv with celeriac[embedded,django] if needed)
# The database is SQLite in a temporary directory; the broker the embedded Redis, which
# this script stops at the end unless it was running before.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CELERIAC_VENV:-$root/.venv}"
if ! "$venv/bin/python" -c "import django; from celeriac.brokers.embedded import available as a; exit(not a())" 2>/dev/null; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet -e "$root[embedded,django]"
fi
cd "$here"
celeriac="$venv/bin/celeriac"
data="$(mktemp -d)"
export SHOP_DATABASE="$data/db.sqlite3"
"$venv/bin/python" manage.py migrate --verbosity 0
ran_before=0
if "$celeriac" embedded status >/dev/null; then ran_before=1; fi
"$celeriac" -A shopsite worker -B -l info -c 2 &
worker=$!
finish() {
  kill -TERM "$worker" 2>/dev/null || true
  wait "$worker" || true
  rm -rf "$data"
  if [ "$ran_before" = 1 ]; then
    echo "The embedded Redis was running before and keeps running: '$celeriac embedded stop' stops it."
  else
    "$celeriac" embedded stop
  fi
}
trap finish EXIT
"$venv/bin/python" place_order.py
