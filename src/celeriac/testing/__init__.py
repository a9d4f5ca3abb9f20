"""Test helpers shipped with celeriac: ``drain``, ``start_worker``, the pytest plugin,
and the engine contracts."""

from celeriac.testing.drain import drain, drain_async
from celeriac.testing.worker import start_worker

__all__ = ["drain", "drain_async", "start_worker"]
