"""Test helpers shipped with celeriac: ``drain``, the pytest plugin, broker contracts."""

from celeriac.testing.drain import drain, drain_async

__all__ = ["drain", "drain_async"]
