"""Contract test suites that every engine's test module subclasses (saq style).

Imports only the suites themselves; each suite uses only its seam's public API.
"""

from celeriac.testing.contracts.backend import BackendFactory, ResultBackendContract
from celeriac.testing.contracts.broker import BrokerContract, BrokerFactory
from celeriac.testing.contracts.channel import ChannelContract
from celeriac.testing.contracts.lease import LeaseContract

__all__ = [
    "BackendFactory",
    "BrokerContract",
    "BrokerFactory",
    "ChannelContract",
    "LeaseContract",
    "ResultBackendContract",
]
