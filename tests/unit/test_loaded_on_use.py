"""What celeriac loads only when it is used (to keep a worker's memory down) still works
the first time it is needed: the memory engines, decimals in messages, time limits in the
threads pool."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from celeriac import Celery
from celeriac.results.memory import MemoryBackend


def run_fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing loaded yet); its output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("scheme", MemoryBackend.schemes)
def test_every_memory_result_scheme_stores_and_reads_a_result(scheme: str) -> None:
    app = Celery("loaded", broker="memory://", backend=f"{scheme}://")
    try:
        assert isinstance(app.backend, MemoryBackend)
        app.backend.store_result("id-1", 42, "SUCCESS")
        assert app.AsyncResult("id-1").get(timeout=5) == 42
    finally:
        app.close()


def test_a_decimal_in_a_message_reads_back_before_anything_loaded_the_decimal_module() -> None:
    out = run_fresh(
        """
        import sys
        from celeriac.messages import serializers
        from celeriac.messages.saferepr import saferepr

        json = serializers.get_serializer("json")
        saferepr([1, "a", 2.5])  # asks whether each item is a Decimal
        print("decimal" in sys.modules)
        value = json.loads(b'{"__type__": "decimal", "__value__": "1.10"}')
        print(type(value).__name__, value, json.dumps(value).decode(), saferepr([value]))
        """
    )
    assert out.splitlines() == [
        "False",
        'Decimal 1.10 {"__type__":"decimal","__value__":"1.10"} [Decimal(\'1.10\')]',
    ]


def test_a_memory_broker_is_loaded_by_the_first_app_that_names_it() -> None:
    out = run_fresh(
        """
        import sys
        from celeriac import Celery

        print("celeriac.brokers.memory" in sys.modules)
        app = Celery("fresh", broker="memory://")
        print(type(app.broker).__name__)
        """
    )
    assert out.splitlines() == ["False", "MemoryBroker"]


def test_the_threads_pool_raises_a_soft_time_limit_in_a_process_that_had_no_ctypes() -> None:
    out = run_fresh(
        """
        import sys, time
        from celeriac import Celery
        from celeriac.exceptions import SoftTimeLimitExceeded
        from celeriac.testing import start_worker

        app = Celery("fresh", broker="memory://", backend="cache+memory://")

        @app.task(soft_time_limit=0.2)
        def spin():
            try:
                while True:
                    time.sleep(0.01)
            except SoftTimeLimitExceeded:
                return "stopped"

        with start_worker(app, pool="threads", concurrency=1):
            print("ctypes" in sys.modules)  # the pool runs, and nothing needed it yet
            print(spin.delay().get(timeout=20))
        """
    )
    assert out.splitlines() == ["False", "stopped"]
