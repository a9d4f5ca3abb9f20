"""The producer side of one adapter, driven by the harness over stdin/stdout (JSON lines).

Run inside a peer's virtualenv as ``python -m bench.driver <peer>``; it imports
``bench.peers.<peer>`` (which reads its settings from ``BENCH_*`` variables) and answers
one JSON line per request:

- ``{"op": "info"}``: package versions, the settings in words, the worker command.
- ``{"op": "send", "kind": k, "n": n, "arg": a}``: n calls, one enqueue each; seconds.
  ``arg`` null means each task gets its index.
- ``{"op": "bulk", ...}``: the same through the tool's bulk API; seconds and the API used,
  or ``method: null`` when the tool has none (nothing is sent then).
- ``{"op": "latency", "n": n, "gap": [lo, hi] | null, "budget": s}``: send ``lat`` tasks
  one at a time, each after the previous one ran (and a random idle gap); the latencies.
- ``{"op": "close"}``.

This file must not import celeriac: it runs in the peers' environments too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import random
import sys
import time
import traceback
from typing import Any

import redis


def _args(request: dict[str, Any]) -> list[Any]:
    n, arg = int(request["n"]), request.get("arg")
    return list(range(n)) if arg is None else [arg] * n


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["python"] = sys.version.split()[0]
    return found


def _latency(client: Any, settings: Any, request: dict[str, Any]) -> dict[str, Any]:
    r = redis.Redis.from_url(settings.redis_url, socket_timeout=None)  # BLPOP waits longer
    key = f"{settings.prefix}:lat"
    r.delete(key)
    rng = random.Random(int(request.get("seed", 8)))
    gap = request.get("gap")
    budget = float(request.get("budget", 30.0))
    timeout = float(request.get("timeout", 10.0))
    values: list[float] = []
    lost = 0
    deadline = time.monotonic() + budget
    for _ in range(int(request["n"])):
        time.sleep(rng.uniform(*gap) if gap else 0.005)  # the arrival pattern under test
        sent_at = time.time()
        client.send("lat", [sent_at])
        popped = r.blpop([key], timeout=timeout)
        if popped is None:
            lost += 1
            break
        values.append(float(popped[1]))
        if time.monotonic() > deadline:
            break
    r.close()
    return {"values": values, "lost": lost}


def main() -> None:
    peer = sys.argv[1]
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the tool prints goes to stderr, not into the protocol
    module = importlib.import_module(f"bench.peers.{peer}")
    client = module.Client()
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "close":
                break
            if op == "info":
                answer: dict[str, Any] = {
                    "versions": _versions(module.PACKAGES),
                    "describe": module.describe(),
                    "worker": module.worker_command(os.path.dirname(sys.executable)),
                }
            elif op in ("send", "bulk"):
                args = _args(request)
                started = time.perf_counter()
                if op == "send":
                    client.send(request["kind"], args)
                    method = "one call each"
                else:
                    method = client.send_bulk(request["kind"], args)
                # A tool that confirms in the background is timed until every confirm is in.
                getattr(client, "flush", lambda: None)()
                answer = {"seconds": time.perf_counter() - started, "method": method}
            elif op == "latency":
                answer = _latency(client, module.SETTINGS, request)
            else:
                answer = {"error": f"unknown op {op!r}"}
        except Exception:
            answer = {"error": traceback.format_exc()}
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()
    client.close()


if __name__ == "__main__":
    main()
