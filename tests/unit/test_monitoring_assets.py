"""The Grafana dashboard and the Prometheus alert rules in docs/ load, are well formed, and
name only metrics celeriac exports (checked against a real worker's scrape)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from celeriac import Celery
from celeriac.metrics import names, serve_worker_metrics
from celeriac.testing.worker import start_worker

DOCS = Path(__file__).resolve().parents[2] / "docs"
DASHBOARD = DOCS / "grafana" / "celeriac.json"
ALERTS = DOCS / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bceleriac_[a-z0-9_]+")
# PromQL functions and aggregations the files may use.
FUNCTIONS = {"sum", "max", "min", "avg", "rate", "increase", "delta", "histogram_quantile",
             "clamp_min", "absent", "by", "on", "unless", "or", "and"}  # fmt: skip
CALL = re.compile(r"\b([a-z_]+)\s*\(")


def expressions_are_sound(expr: str) -> None:
    """What can be checked without promtool: brackets balance, functions are known, and
    every metric is one celeriac exports."""
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for char in expr:
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0, f"unbalanced {char!r} in {expr}"
    assert all(count == 0 for count in depth.values()), f"unbalanced brackets in {expr}"
    unknown = {name for name in CALL.findall(expr) if name not in FUNCTIONS}
    assert not unknown, f"unknown functions {unknown} in {expr}"
    used = set(METRIC.findall(expr))
    assert used, f"no celeriac metric in {expr}"
    assert used <= names.EXPORTED, f"{used - names.EXPORTED} are not exported: {expr}"


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_dashboard_is_importable_as_it_is() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["id"] is None and board["uid"] and board["title"] == "celeriac"
    assert isinstance(board["schemaVersion"], int)
    [variable] = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "prometheus",
    )  # fmt: skip
    ids, cells = set(), set()
    titles = {panel["title"] for panel in board["panels"]}
    assert {"Queue length", "Failure rate", "Runtime percentiles", "Workers"} <= titles
    for panel in board["panels"]:
        assert panel["id"] not in ids, f"panel id {panel['id']} used twice"
        ids.add(panel["id"])
        assert panel["type"] in {"stat", "timeseries"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and min(grid.values()) >= 0
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids)
        for target in panel["targets"]:
            expressions_are_sound(target["expr"])


def test_the_alert_rules_load_and_name_exported_metrics() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "CeleriacNoWorkers", "CeleriacQueueWaitHigh", "CeleriacHighFailureRate",
    }  # fmt: skip
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Celeriac[A-Za-z]+", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        expressions_are_sound(rule["expr"])


def test_a_worker_scrape_shows_the_metrics_the_docs_use() -> None:
    app = Celery("assets", broker="memory://", backend="cache+memory://", set_as_current=False)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app) as worker:
        server = serve_worker_metrics(worker, 0, "127.0.0.1")
        try:
            add.delay(1, 2).get(timeout=10)
            url = f"http://127.0.0.1:{server.port}/metrics"
            deadline = time.monotonic() + 10
            while True:  # the result is stored before the consumer counts the task: poll
                with urllib.request.urlopen(url, timeout=10) as response:
                    text = response.read().decode()
                if "celeriac_tasks_total{" in text or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            server.close()
    app.close()
    scraped = {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("celeriac_")
    }
    assert scraped <= names.EXPORTED
    used = {name for expr in dashboard_expressions() for name in METRIC.findall(expr)}
    used |= {name for rule in alert_rules() for name in METRIC.findall(rule["expr"])}
    # Dead letters appear once a queue has some; this worker's queue has none.
    assert used - scraped <= {names.DEAD_LETTERS}


@pytest.mark.parametrize("bad", ["rate(celeriac_nope_total[5m])", "sum(celeriac_worker_up"])
def test_the_checks_catch_a_bad_expression(bad: str) -> None:
    with pytest.raises(AssertionError):
        expressions_are_sound(bad)
