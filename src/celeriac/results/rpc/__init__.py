"""``rpc://`` results: each state sent back to the caller as a message on its reply topic.

An engine: imports ``results.base``, ``brokers.base`` (the channel seam) and leaves, never
another engine or the app. ``backend`` is the store; ``inbox`` keeps the states this
client received and follows its reply topic in a thread of its own.
"""

from celeriac.results.rpc.backend import RpcBackend

__all__ = ["RpcBackend"]
