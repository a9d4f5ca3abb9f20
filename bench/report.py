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
]

METHOD = """\
## Notes

- Every venv has hiredis, so redis-py parses replies in C for every tool alike.
- RabbitMQ: celeriac publishes with publisher confirms (a per-call publish returns once
  the broker has the message); Celery (py-amqp, `confirm_publish` off) and Dramatiq
  (pika, `confirm_delivery` off) do not confirm by default, so their per-call figures
  on RabbitMQ are fire-and-forget.
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
    out += table(header, rows)
    out += ["", "`*`: cut short by the drain timeout; the rate is of the tasks that ran.", ""]
    out += targets(configs, summary, opts)
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


def _best(
    configs: dict[str, Any], summary: dict[str, Any], metric: str, broker: str, higher: bool
) -> tuple[str, float] | None:
    """celeriac's best configuration on ``broker`` for ``metric``: (label, median)."""
    found = [
        (config["label"], value)
        for key, config in configs.items()
        if config["peer"] == "celeriac" and config["broker"] == broker
        for value in [_median(summary, key, metric)]
        if value is not None
    ]
    if not found:
        return None
    return (max if higher else min)(found, key=lambda item: item[1])


def targets(configs: dict[str, Any], summary: dict[str, Any], opts: dict[str, Any]) -> list[str]:
    """The benchmark's targets against this run's medians, one row per target."""
    rows: list[list[str]] = []

    def against(name: str, goal: float, mine: tuple[str, float] | None,
                theirs: list[str] | None = None, *, ratio_goal: bool = True,
                higher: bool = True, unit: str = "") -> None:  # fmt: skip
        if mine is None:
            rows.append([name, "—", "not measured"])
            return
        label, value = mine
        if theirs is not None:
            values = [v for v in (_median(summary, k, metric_of[name]) for k in theirs) if v]
            if not values:
                rows.append([name, "—", "peer not measured"])
                return
            value = value / max(values)
        met = value >= goal if higher else value <= goal
        digits = {"/s": 0, " B": 0, " MB": 1}.get(unit, 2)
        shown = f"{value:.2f}x" if ratio_goal else f"{value:,.{digits}f}{unit}"
        rows.append([name, f"{shown} ({label})", "met" if met else f"not met (goal {goal:,g})"])

    metric_of: dict[str, str] = {}

    def best(metric: str, broker: str = "redis", higher: bool = True) -> Any:
        return _best(configs, summary, metric, broker, higher)

    checks = [
        ("drain (INCR) vs Celery's best pool on Redis, >= 6x", "drain_incr",
         ["celery-threads", "celery-prefork"], 6.0, True),
        ("drain (INCR) vs Dramatiq on Redis, >= 3x", "drain_incr", ["dramatiq"], 3.0, True),
        ("per-call enqueue vs Huey, >= 1.3x", "enqueue_per_call", ["huey"], 1.3, True),
        ("bulk enqueue vs RQ enqueue_many, >= 4x", "enqueue_bulk", ["rq"], 4.0, True),
    ]  # fmt: skip
    for name, metric, peers, goal, higher in checks:
        metric_of[name] = metric
        against(name, goal, best(metric), peers, higher=higher)
    name = "prefork drain vs Celery prefork, >= 3x"
    metric_of[name] = "drain_incr"
    prefork = _median(summary, "celeriac-prefork", "drain_incr")
    against(name, 3.0, ("celeriac prefork", prefork) if prefork else None, ["celery-prefork"])
    raw = _median(summary, "raw-redis", "raw_incr_per_call")
    per_call = best("enqueue_per_call")
    if raw and per_call:
        against("per-call enqueue vs raw redis-py round trip, >= 0.8x", 0.8,
                (per_call[0], per_call[1] / raw))  # fmt: skip
    absolute = [
        ("drain (INCR) >= 6,000/s", "drain_incr", 6000, True, "/s"),
        ("pure no-op drain >= 15,000/s", "drain_noop", 15000, True, "/s"),
        ("idle latency p50 <= 0.5 ms", "lat_idle_p50_ms", 0.5, False, " ms"),
        ("idle latency p99 <= 1 ms", "lat_idle_p99_ms", 1.0, False, " ms"),
        ("sporadic-arrival p50 <= 1 ms", "lat_sporadic_p50_ms", 1.0, False, " ms"),
        ("Redis memory <= 250 bytes per queued task", "redis_bytes_per_task", 250, False, " B"),
    ]  # fmt: skip
    for name, metric, goal, higher, unit in absolute:
        against(name, goal, best(metric, higher=higher), ratio_goal=False, higher=higher,
                unit=unit)  # fmt: skip
    for key, goal in (
        ("celeriac-threads", 40),
        ("celeriac-asyncio", 40),
        ("celeriac-prefork", 100),
    ):
        rss = _median(summary, key, "rss_mb")
        label = configs.get(key, {}).get("label", key)
        against(f"worker RSS {label} <= {goal} MB", goal, (label, rss) if rss else None,
                ratio_goal=False, higher=False, unit=" MB")  # fmt: skip
    depths = opts.get("depths") or []
    for key in ("celeriac-threads", "celeriac-amqp-threads"):
        for metric in ("enqueue_per_call", "drain_incr"):
            values = [_median(summary, key, f"depth_{d}_{metric}") for d in depths]
            if len(depths) > 1 and all(values):
                base = values[0] or 1.0
                worst = max(abs(v / base - 1) for v in values if v)
                label = configs.get(key, {}).get("label", key)
                rows.append([
                    f"{metric} flat (±15 %) from {depths[0]:,} to {depths[-1]:,} queued",
                    f"{worst:.0%} largest change ({label})",
                    "met" if worst <= 0.15 else "not met",
                ])  # fmt: skip
    name = "RabbitMQ: drain vs Dramatiq on RabbitMQ, >= 2x"
    metric_of[name] = "drain_incr"
    against(name, 2.0, best("drain_incr", "amqp"), ["dramatiq-amqp"])
    out = [
        "## Against the benchmark's targets",
        "",
        "Computed from the medians above; celeriac's best configuration on the broker "
        "unless the row names one.",
        "",
    ]
    return [*out, *table(["target", "measured", ""], rows), ""]
