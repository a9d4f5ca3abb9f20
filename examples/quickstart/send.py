"""Sends tasks to whatever worker consumes this project's queue, and prints results."""

from tasks import add, slow_hello

results = [add.delay(n, n) for n in range(5)]
print("add:", [r.get(timeout=30) for r in results])
print(slow_hello.delay("world").get(timeout=30))
later = add.apply_async((20, 22), countdown=1)  # waits in Redis, not in the worker
print("add after 1 s:", later.get(timeout=30))
