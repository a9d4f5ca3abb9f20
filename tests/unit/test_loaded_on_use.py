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


def test_what_an_app_loads_on_first_use_works_the_first_time() -> None:
    """Pickle, time zones, Celery's wire format, message signing, event receivers, the
    remote-control client and log files: none is loaded by ``import celeriac``, and each
    works in a process where nothing had loaded it."""
    out = run_fresh(
        """
        import logging, sys, tempfile, os
        import celeriac
        from celeriac import Celery

        lazy = ("pickle", "zoneinfo", "logging.handlers", "pprint",
                "celeriac.messages.celery", "celeriac.security.signing",
                "celeriac.events.receiver", "celeriac.app.control", "celeriac.control.client")
        print(sorted(name for name in lazy if name in sys.modules))

        from celeriac.messages import serializers
        pickled = serializers.get_serializer("pickle")
        print(pickled.loads(pickled.dumps({"a": (1, 2)})))

        app = Celery("fresh", broker="memory://", timezone="Europe/Paris")
        print(app.timezone, app.now().tzinfo)

        celery_app = Celery("wire", broker="memory://", wire_format="celery")
        print(type(celery_app.broker.wire_format).__name__)

        signing = Celery("signed", broker="memory://", security_keys=["k" * 32])
        print(type(signing.signer).__name__)

        from celeriac.events import EventReceiver
        print(EventReceiver.__name__, type(app.events.Receiver(app)).__name__)
        print(type(app.control).__name__, app.control_cls)

        from celeriac.app.logsetup import make_handler
        handler = make_handler(os.path.join(tempfile.mkdtemp(), "w.log"))
        print(type(handler).__name__)
        handler.close()
        print(app.bugreport().count("timezone: 'Europe/Paris'"))
        """
    )
    assert out.splitlines() == [
        "[]",
        "{'a': (1, 2)}",
        "Europe/Paris Europe/Paris",
        "CeleryWireFormat",
        "HmacSigner",
        "EventReceiver EventReceiver",
        "Control celeriac.app.control:Control",
        "WatchedFileHandler",
        "1",
    ]
