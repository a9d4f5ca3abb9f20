"""``RESULTS.md`` from the results dictionary (the same data as ``results.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DASH = "\u2013"  # en dash

# (metric, column title, format, higher is better)
COLUMNS: list[tuple[str, str, str, bool]] = [
    ("enqueue_per_call", "enqueue/s per call", "{:,.0f}", True),
    ("enqueue_bulk", "bulk enqueue/s", "{:,.0f}", True),
    ("drain_incr", "drain/s (INCR)", "{:,.0f}", True),
    ("drain_noop", "no-op drain/s", "{:,.0f}", True),
    ("drain_sleep", "10 ms drain/s", "{:,.0f}", True),
    ("lat_idle_p50_ms", "idle p50 ms", "{:.2f}", False),
    ("lat_idle_p99_ms", "idle p99 ms", "{:.2f}", False),
    ("lat_sporadic_p50_ms", "sporadic p50 ms", "{:.2f}", False),
    ("rss_mb", "worker RSS MB", "{:.1f}", False),
    ("redis_bytes_per_task", "Redis bytes/queued task", "{:,.0f}", False),
    ("cpu_s_per_1k", "worker CPU s /1k tasks", "{:.3f}", False),
    ("broker_commands_per_task", "broker cmds/task", "{:.2f}", False),
]

# The idle hand-off floors (``bench.floor``): (broker, how it is measured).
FLOORS = [("redis", "Redis (`BLPOP` between two processes)"),
          ("amqp", "RabbitMQ (aiormq publish to a consumer)")]  # fmt: skip

# The like-for-like comparisons: (title, what is compared, celeriac's row, the peers' rows).
# Only the same kind of task on the same broker share a table: plain functions on threads,
# plain functions in processes, async functions on an event loop.
LIKE_FOR_LIKE: list[tuple[str, str, str, list[str]]] = [
    ("Sync tasks on Redis, threads", "plain functions, 8 threads in one process",
     "celeriac-threads", ["celery-threads", "dramatiq", "huey"]),
    ("Sync tasks on Redis, processes", "plain functions, 2 child processes (RQ: a fork per task)",
     "celeriac-prefork", ["celery-prefork", "rq"]),
    ("Async tasks on Redis", "`async def` tasks on an event loop (Taskiq: 2 processes; "
     "its per-process rate is half its row)",
     "celeriac-asyncio", ["taskiq", "arq"]),
    ("Sync tasks on RabbitMQ, threads", "plain functions, 8 threads in one process",
     "celeriac-amqp-threads", ["dramatiq-amqp", "celery-amqp-prefork"]),
    ("Sync tasks on RabbitMQ, threads, FIFO queues", "plain functions, 8 threads in one "
     "process; celeriac's queues declared without priority levels (`task_queue_max_priority"
     " = None`), first in, first out as the peers' are",
     "celeriac-amqp-threads-fifo", ["dramatiq-amqp", "celery-amqp-prefork"]),
    ("Sync tasks on RabbitMQ, processes", "plain functions, 2 child processes",
     "celeriac-amqp-prefork", ["celery-amqp-prefork", "dramatiq-amqp"]),
]  # fmt: skip
LIKE_COLUMNS = ["drain_incr", "drain_noop", "drain_sleep", "enqueue_per_call",
                "lat_idle_p50_ms", "lat_idle_p99_ms", "cpu_s_per_1k",
                "broker_commands_per_task", "rss_mb"]  # fmt: skip

METHOD = """\
## Notes

- Every venv has hiredis, so redis-py parses replies in C for every tool alike.
- RabbitMQ: celeriac publishes with publisher confirms, pipelined (a per-call publish
  returns at once, the confirm is awaited in the background, a failure is raised later);
  its enqueue timings end only once every confirm is in (`flush()`). Celery (py-amqp,
  `confirm_publish` off) and Dramatiq (pika, `confirm_delivery` off) do not confirm by
  default, so their per-call figures on RabbitMQ are fire-and-forget.
- Tool defaults are kept (prefetch, acks, result storage): Celery acks early with a
  prefetch multiplier of 4, celeriac acks late with a multiplier of 1, arq keeps results
  for an hour and polls every 0.5 s, RQ forks a process per job.

## How each figure is measured

Every tool runs the same steps, one configuration after another, in each repetition
(the order rotated between repetitions); each step gets a fresh queue, a fresh producer
process and a flushed Redis DB, and starts the tool's worker with its own CLI (the
commands are listed above). Every task body is the shared instrument in
`bench/peers/_common.py`.

- **enqueue/s per call**: N `incr` tasks sent one call each (`delay`, `send`, `enqueue`,
  `kiq`, ...) with no worker running; N / elapsed.
- **Redis bytes/queued task**: after that enqueue, the sum of `MEMORY USAGE` of every key
  in the benchmark DB, divided by N (`results.json` also has the server-wide
  `used_memory` delta, which other clients of the same Redis disturb).
- **drain/s (INCR)**: the worker is started on those N queued tasks; each does one
  Redis `INCR`; the task that makes the counter 1 and the one that makes it N push their
  clock times, and the rate is (N-1) / (last - first), so the worker's start-up is not
  counted. The harness blocks on the last task's push: it never polls a tool.
  Marked `*` when the drain timeout cut it short (the rate is then of what ran).
- **worker CPU s /1k tasks**: user + system CPU seconds of the worker's process tree at
  the end of the INCR drain (its start-up included), per 1,000 tasks that ran.
- **broker cmds/task**: Redis only; the server's `INFO commandstats` total across the
  INCR drain, less the instrument's commands (one `INCR` a task, two pushes of times) and
  the harness's own (its `BLPOP`s, `LINDEX`, `INFO`), per task: what the worker sent the
  broker, start-up and warm shutdown amortised. `bench/commands_per_task.py` counts the
  same on a private server, by command.
- **worker RSS MB**: resident memory of the worker process and all its children, summed,
  0.5 s after that drain (`results.json` also has PSS, which counts shared pages once).
- **bulk enqueue/s**: N no-op tasks through the tool's bulk API (the column "bulk API"
  says which; `—` when the tool has none).
- **no-op drain/s**: a `mark('start')` task, those N no-ops, a `mark('end')` task; the
  rate is N / (end - start). Tools slower than the drain timeout get fewer tasks.
- **10 ms drain/s**: tasks that wait 10 ms (`time.sleep`, or `await asyncio.sleep` in
  asyncio tools) before the INCR; measured like the INCR drain.
- **idle p50/p99 ms**: with the worker running and idle, one task at a time (after the
  previous one ran and a 5 ms pause) carries `time.time()` at the send; the task pushes
  (its start - that time). **sporadic p50 ms**: the same after random 0.2-1.2 s gaps.
- **idle hand-off floor** (`python -m bench.floor`): the idle latency with no task queue
  at all, measured the same way (5 ms pause, `time.time()` in the message): on Redis one
  process `RPUSH`es to another waiting in `BLPOP`; on RabbitMQ an aiormq publish
  (persistent, no confirm) to an aiormq consumer. What any tool's idle latency on this
  machine is weighed against: the sender's own call and the wake-ups are in it.
- **raw redis-py**: the harness's own `INCR` round trips (redis-py with hiredis), one
  call each and pipelined 1,000 at a time: the ceiling for a one-command-per-call enqueue.
- **queue depth**: with D tasks already queued (sent in bulk), 2,000 more sent one call
  each (enqueue/s), then the worker drains min(D, N) of them (drain/s, as above).
"""


def cell(metric: dict[str, Any] | None, fmt: str, runs: int) -> str:
    if not metric:
        return "—"
    text = fmt.format(metric["median"])
    if metric["runs"] > 1 and metric["min"] != metric["max"]:
        text += f" ({fmt.format(metric['min'])}{DASH}{fmt.format(metric['max'])})"
    if metric["runs"] < runs:
        text += f" [{metric['runs']}/{runs} runs]"
    return text


def ratio(mine: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str:
    if not mine or not theirs or not theirs["median"]:
        return "—"
    return f"{mine['median'] / theirs['median']:.2f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(results: dict[str, Any]) -> str:
    opts, machine, configs = results["options"], results["machine"], results["configs"]
    summary, reps = results["summary"], opts["reps"]
    celeriac = results["celeriac"]
    out = [
        "# Benchmark results: celeriac and its peers",
        "",
        "Generated by `bench/run.py`; do not edit by hand. Command:",
        "",
        f"    {results['command']}",
        "",
        f"Started {results['started']}, took {results['duration_s'] / 60:.1f} min. "
        f"N = {opts['n']:,} tasks per drain, {reps} repetition(s), medians with "
        f"(min{DASH}max) over the repetitions. Load average (1, 5, 15 min) at the start "
        f"{fmt_load(machine['load_average_at_start'])}, at the end "
        f"{fmt_load(machine['load_average_at_end'])}: on a shared machine other work "
        "competes for the same cores, so compare ratios (same run, interleaved) rather "
        "than absolute figures.",
        "",
        "## Machine and versions",
        "",
    ]
    out += table(
        ["", ""],
        [
            ["CPU", f"{machine['cpu_model']}, {machine['cpus']} cores, "
                    f"{machine['memory_gb']} GB"],
            ["OS", machine["platform"]],
            ["Python", machine["python"]],
            ["Redis", f"{machine['redis']} (`{opts['redis_url']}`)"],
            ["RabbitMQ", f"{machine['rabbitmq']} ({celeriac['rabbitmq_vhost']})"],
            ["celeriac", f"{celeriac['source']}, commit {celeriac['commit'][:12]}"
                         + (" + uncommitted changes in src/" if celeriac.get("src_dirty")
                            else "")],
            ["celeriac `amqp://` broker", celeriac["amqp"]],
        ],
    )  # fmt: skip
    out += ["", "## Configurations", ""]
    rows = []
    for key, config in configs.items():
        versions = ", ".join(f"{k} {v}" for k, v in config.get("versions", {}).items())
        worker = " ".join(config.get("worker", []))
        worker = worker.replace(str(config.get("worker", [""])[0]).rsplit("/", 1)[0] + "/", "")
        rows.append([f"`{key}`", config["label"], config["broker"],
                     config.get("describe", ""), f"`{worker}`", versions])  # fmt: skip
    out += table(["key", "configuration", "broker", "settings", "worker command", "versions"],
                 rows)  # fmt: skip
    out += like_for_like(configs, summary, reps)
    out += targets(configs, summary, opts)
    out += ["", "## Figures", ""]
    header = ["configuration", *[title for _, title, _, _ in COLUMNS], "bulk API"]
    rows = []
    for key, config in configs.items():
        metrics = summary.get(key, {})
        row = [config["label"]]
        for name, _, fmt, _ in COLUMNS:
            text = cell(metrics.get(name), fmt, reps)
            if name in ("drain_incr", "drain_sleep") and metrics.get(f"{name}_partial"):
                text += " *"
            row.append(text)
        row.append(metrics.get("bulk_method", "—"))
        rows.append(row)
    raw = summary.get("raw-redis", {})
    if raw:
        rows.append(["raw redis-py INCR round trip (the per-call ceiling)",
                     cell(raw.get("raw_incr_per_call"), "{:,.0f}", reps),
                     cell(raw.get("raw_incr_pipelined"), "{:,.0f}", reps) + " pipelined",
                     *["" for _ in COLUMNS[2:]], ""])  # fmt: skip
    for broker, how in FLOORS:
        floor = summary.get(f"floor-{broker}", {})
        if floor:
            rows.append([f"idle hand-off floor, no task queue: {how}",
                         *[cell(floor.get(name), fmt, reps) if name.startswith("lat_idle")
                           else "" for name, _, fmt, _ in COLUMNS], ""])  # fmt: skip
    out += table(header, rows)
    out += ["", "`*`: cut short by the drain timeout; the rate is of the tasks that ran.", ""]
    out += ratios(configs, summary)
    out += depth(configs, summary, opts)
    errors = [(key, e) for key, m in summary.items() for e in m.get("errors", [])]
    if errors:
        out += ["## Errors", ""]
        out += [f"- `{key}`: {e.splitlines()[0][:300]}" for key, e in errors]
        out += [""]
    retried = [(key, e) for key, m in summary.items() for e in m.get("retried", [])]
    if retried:
        out += ["## Steps that failed once and were run again", ""]
        out += [f"- `{key}`: {e.splitlines()[0][:300]}" for key, e in retried]
        out += [""]
    commands = Path(__file__).with_name("commands_per_task.md")
    if commands.exists():  # counted by commands_per_task.py, not by this run
        out += [commands.read_text().rstrip(), ""]
    out += [METHOD]
    return "\n".join(out)


def like_for_like(configs: dict[str, Any], summary: dict[str, Any], reps: int) -> list[str]:
    """One table per kind of task and broker: celeriac's row, then each peer's with its
    ratio celeriac / peer under it."""
    columns = {name: (title, fmt, higher) for name, title, fmt, higher in COLUMNS}
    out = [
        "## Like for like",
        "",
        "Each table compares one kind of task on one broker: plain functions on threads with "
        "plain functions on threads, async functions with async functions. Under each "
        "peer, celeriac's figure divided by the peer's (rates: above 1 is celeriac ahead; "
        "latency, CPU, commands and memory, marked ↓: below 1 is celeriac ahead).",
        "",
    ]
    for title, what, mine, peers in LIKE_FOR_LIKE:
        present = [key for key in peers if key in configs]
        if mine not in configs or not present:
            continue
        header = ["configuration"] + [
            columns[name][0] + ("" if columns[name][2] else " ↓") for name in LIKE_COLUMNS
        ]
        rows = [_like_row(configs, summary, mine, reps, columns)]
        for key in present:
            rows.append(_like_row(configs, summary, key, reps, columns))
            rows.append([f"celeriac ÷ {configs[key]['label']}"] + [
                ratio(summary.get(mine, {}).get(name), summary.get(key, {}).get(name))
                for name in LIKE_COLUMNS
            ])  # fmt: skip
        out += [f"### {title}", "", what + ".", ""]
        out += table(header, rows)
        out += [""]
    return out


def _like_row(configs: dict[str, Any], summary: dict[str, Any], key: str, reps: int,
              columns: dict[str, tuple[str, str, bool]]) -> list[str]:  # fmt: skip
    metrics = summary.get(key, {})
    row = [f"**{configs[key]['label']}**" if configs[key]["peer"] == "celeriac"
           else configs[key]["label"]]  # fmt: skip
    for name in LIKE_COLUMNS:
        metric = metrics.get(name)
        row.append("—" if not metric else columns[name][1].format(metric["median"]))
    return row


def fmt_load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def ratios(configs: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    mine = [k for k, c in configs.items() if c["peer"] == "celeriac"]
    theirs = [k for k, c in configs.items() if c["peer"] != "celeriac"]
    if not mine or not theirs:
        return []
    out = [
        "## Ratios celeriac / peer",
        "",
        "Median over median. Above 1 means celeriac is ahead for rates; for latency, RSS "
        "and bytes per task (marked ↓) below 1 means celeriac is ahead.",
        "",
    ]
    titles = [title + ("" if higher else " ↓") for _, title, _, higher in COLUMNS]
    for key in mine:
        out += [f"### {configs[key]['label']}", ""]
        rows = []
        for peer in theirs:
            row = [configs[peer]["label"]]
            for name, _, _, _ in COLUMNS:
                row.append(ratio(summary.get(key, {}).get(name), summary.get(peer, {}).get(name)))
            rows.append(row)
        raw = summary.get("raw-redis", {}).get("raw_incr_per_call")
        if raw:
            row = ["raw redis-py round trip"]
            row += [ratio(summary.get(key, {}).get("enqueue_per_call"), raw)]
            rows.append(row + ["" for _ in COLUMNS[1:]])
        out += table(["vs", *titles], rows)
        out += [""]
    return out


def depth(configs: dict[str, Any], summary: dict[str, Any], opts: dict[str, Any]) -> list[str]:
    depths = opts["depths"]
    rows = []
    for key, metrics in summary.items():
        if not any(f"depth_{d}_drain_incr" in metrics for d in depths):
            continue
        for kind, title in (("enqueue_per_call", "enqueue/s per call"),
                            ("drain_incr", "drain/s (INCR)")):  # fmt: skip
            row = [configs[key]["label"], title]
            base = metrics.get(f"depth_{depths[0]}_{kind}")
            for d in depths:
                metric = metrics.get(f"depth_{d}_{kind}")
                text = cell(metric, "{:,.0f}", opts["reps"])
                if metric and base and d != depths[0]:
                    text += f" ({metric['median'] / base['median'] - 1:+.0%})"
                row.append(text)
            rows.append(row)
    if not rows:
        return []
    out = ["## Rates against queue depth", ""]
    out += table(["configuration", "figure", *[f"{d:,} queued" for d in depths]], rows)
    return [*out, "", "In brackets: the change from the shallowest depth.", ""]


def _median(summary: dict[str, Any], key: str, metric: str) -> float | None:
    found = summary.get(key, {}).get(metric)
    return None if not found else float(found["median"])


def targets(configs: dict[str, Any], summary: dict[str, Any], opts: dict[str, Any]) -> list[str]:
    """The benchmark's targets against this run's medians, one row per target. A ratio
    compares one celeriac configuration with peers running the same kind of task on the
    same broker; never async tasks against sync ones."""
    rows: list[list[str]] = []

    def label(key: str) -> str:
        return str(configs.get(key, {}).get("label", key))

    def versus(name: str, mine: str, peers: list[str], goal: float,
               metric: str = "drain_incr", peer_share: float = 1.0) -> None:  # fmt: skip
        """celeriac's ``mine`` / the best of ``peers`` (each divided by ``peer_share``)."""
        value = _median(summary, mine, metric)
        theirs = [(v / peer_share, k) for k in peers for v in [_median(summary, k, metric)] if v]
        if value is None or not theirs:
            rows.append([name, "—", "not measured"])
            return
        best, peer = max(theirs)
        shown = f"{value / best:.2f}x ({label(mine)} vs {label(peer)})"
        met = value / best >= goal
        rows.append([name, shown, "met" if met else f"not met (goal {goal:g}x)"])

    def absolute(name: str, key: str, metric: str, goal: float, higher: bool, unit: str,
                 floor: str | None = None) -> None:  # fmt: skip
        value = _median(summary, key, metric)
        if value is None:
            rows.append([name, "—", "not measured"])
            return
        digits = {"/s": 0, " B": 0, " MB": 1, "": 2}.get(unit, 2)
        met = value >= goal if higher else value <= goal
        least = _median(summary, f"floor-{floor}", metric) if floor else None
        beside = f"; the machine's floor {least:,.{digits}f}{unit}" if least is not None else ""
        rows.append([name, f"{value:,.{digits}f}{unit} ({label(key)}{beside})",
                     "met" if met else f"not met (goal {goal:,g}{unit})"])  # fmt: skip

    # Sync tasks on Redis.
    versus("sync, Redis: threads drain vs Dramatiq 8 threads, >= 3x", "celeriac-threads",
           ["dramatiq"], 3.0)  # fmt: skip
    versus("sync, Redis: threads drain vs Huey 8 threads, >= 3x", "celeriac-threads",
           ["huey"], 3.0)  # fmt: skip
    versus("sync, Redis: threads drain vs Celery threads 8, >= 6x", "celeriac-threads",
           ["celery-threads"], 6.0)  # fmt: skip
    versus("sync, Redis: prefork drain vs Celery prefork 2, >= 3x", "celeriac-prefork",
           ["celery-prefork"], 3.0)  # fmt: skip
    absolute("sync, Redis: no-op drain on threads >= 10,000/s", "celeriac-threads",
             "drain_noop", 10000, True, "/s")  # fmt: skip
    for key in ("celeriac-threads", "celeriac-prefork", "celeriac-asyncio"):
        absolute(f"worker-side broker commands per task <= 2 ({label(key)})", key,
                 "broker_commands_per_task", 2.0, False, "")  # fmt: skip
    # RabbitMQ, sync tasks: celeriac's threads and prefork pools against Celery's best
    # pool there (prefork) and Dramatiq.
    versus(
        "RabbitMQ: per-call enqueue (confirms on) vs Celery's, >= 1x",
        "celeriac-amqp-threads",
        ["celery-amqp-prefork"],
        1.0,
        "enqueue_per_call",
    )
    amqp_rows = ["celeriac-amqp-threads", "celeriac-amqp-threads-fifo", "celeriac-amqp-prefork"]
    for key in amqp_rows:
        if key.endswith("-fifo") and key not in configs:
            continue  # (a run from before that row existed)
        versus(f"RabbitMQ: {label(key)} drain vs Celery's best pool, >= 2x", key,
               ["celery-amqp-prefork"], 2.0)  # fmt: skip
        versus(f"RabbitMQ: {label(key)} drain vs Dramatiq, >= 2x", key, ["dramatiq-amqp"], 2.0)
    # Async tasks: per worker process (Taskiq runs two).
    versus("async: asyncio drain vs Taskiq, per worker process, >= 3x", "celeriac-asyncio",
           ["taskiq"], 3.0, peer_share=2.0)  # fmt: skip
    # Latency, idle worker.
    for key in ("celeriac-threads", "celeriac-asyncio"):
        absolute(f"Redis: idle latency p50 <= 0.5 ms ({label(key)})", key, "lat_idle_p50_ms",
                 0.5, False, " ms", "redis")  # fmt: skip
        absolute(f"Redis: idle latency p99 <= 1 ms ({label(key)})", key, "lat_idle_p99_ms",
                 1.0, False, " ms", "redis")  # fmt: skip
    absolute("RabbitMQ: idle latency p50 <= 1 ms", "celeriac-amqp-threads", "lat_idle_p50_ms",
             1.0, False, " ms", "amqp")  # fmt: skip
    # Memory.
    absolute("Redis memory <= 250 bytes per queued task", "celeriac-threads",
             "redis_bytes_per_task", 250, False, " B")  # fmt: skip
    for key, goal in (("celeriac-threads", 40), ("celeriac-asyncio", 40),
                      ("celeriac-prefork", 100)):  # fmt: skip
        absolute(f"worker RSS <= {goal} MB ({label(key)})", key, "rss_mb", goal, False, " MB")
    depths = opts.get("depths") or []
    for key in ("celeriac-threads", "celeriac-amqp-threads"):
        for metric in ("enqueue_per_call", "drain_incr"):
            values = [_median(summary, key, f"depth_{d}_{metric}") for d in depths]
            if len(depths) > 1 and all(values):
                base = values[0] or 1.0
                worst = max(abs(v / base - 1) for v in values if v)
                rows.append([
                    f"{metric} flat (±15 %) from {depths[0]:,} to {depths[-1]:,} queued",
                    f"{worst:.0%} largest change ({label(key)})",
                    "met" if worst <= 0.15 else "not met",
                ])  # fmt: skip
    out = [
        "## Against the targets",
        "",
        "Computed from the medians of this run; each ratio is of the same kind of task on "
        "the same broker.",
        "",
    ]
    return [*out, *table(["target", "measured", ""], rows), ""]
