"""The brokers a mixed fleet runs on, each in a space of the test's own on the shared server:
where each worker connects, how many messages the broker still holds, the dead letters,
and (Redis) the evidence of what a killed Celery worker took with it.

On Redis each Celery worker connects through a proxy of its own that records the traffic
both ways, because kombu's Redis transport takes a message with ``BRPOP`` and only then
writes it to its ``unacked`` hash: a Celery worker killed in between takes the message
with it, which no other consumer can ever see again. The recording shows such a message
in the ``BRPOP`` replies Redis sent that worker, and nowhere in what it wrote back.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Protocol
from urllib.parse import urlsplit

import redis

from celeriac import Celery
from tests.conftest import delete_vhost, rabbitmqctl
from tests.integration.proxy import Proxy

QUEUE = "celery"  # Celery's default queue, which both kinds of worker consume


class FleetBroker(Protocol):
    name: str
    url: str  # what producers and celeriac workers use
    prefix: str  # every key's prefix (kombu's global_keyprefix on Redis), records' too

    list_keys: set[bytes]  # kombu's lists of the queue (Redis), to read BRPOP replies

    def celery_url(self) -> tuple[str, Recording | None]: ...
    def held(self) -> int: ...  # messages still queued, delayed or unacknowledged
    def held_where(self) -> str: ...  # the same, told apart, for a run that gave up
    def dead_letters(self) -> int: ...
    def close(self) -> None: ...


class Recording(Proxy):
    """A proxy to Redis that keeps every byte it forwards, per connection and direction."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.sent: defaultdict[int, bytearray] = defaultdict(bytearray)  # to Redis
        self.received: defaultdict[int, bytearray] = defaultdict(bytearray)  # from Redis
        self.restore()  # listening

    def _seen(self, data: bytes, to_server: bool, link: int) -> None:
        (self.sent if to_server else self.received)[link] += data

    def popped(self, list_keys: set[bytes]) -> set[str]:
        """The task ids of the messages Redis handed out in BRPOP replies on these lists."""
        ids = set()
        for stream in self.received.values():
            for key, value in _brpop_replies(bytes(stream)):
                if key in list_keys:
                    with_id = json.loads(value).get("headers", {}).get("id")
                    if with_id:
                        ids.add(str(with_id))
        return ids

    def wrote(self, task_id: str) -> bool:
        """Whether the worker ever sent Redis the message back (its ``unacked`` entry)."""
        needle = task_id.encode()
        return any(needle in stream for stream in self.sent.values())

    def delivery_tags(self, list_keys: set[bytes]) -> dict[str, str]:
        """Task id -> kombu delivery tag, for the messages in the BRPOP replies."""
        tags = {}
        for stream in self.received.values():
            for key, value in _brpop_replies(bytes(stream)):
                message = json.loads(value) if key in list_keys else {}
                task_id = message.get("headers", {}).get("id")
                tag = message.get("properties", {}).get("delivery_tag")
                if task_id and tag:
                    tags[str(task_id)] = str(tag)
        return tags

    def mentions(self, needles: list[str]) -> list[str]:
        """The commands the worker sent that name any of ``needles`` (a task id, its
        delivery tag), in the order sent on each connection: the command and its key."""
        wanted = [needle.encode() for needle in needles if needle]
        found = []
        for link, stream in sorted(self.sent.items()):
            for args in _commands(bytes(stream)):
                if any(needle in arg for arg in args for needle in wanted):
                    key = args[1].decode(errors="replace")[-40:] if len(args) > 1 else ""
                    found.append(f"{args[0].decode(errors='replace').upper()} {key} (link {link})")
        return found


_ARRAY_OF_TWO = re.compile(rb"\*2\r\n\$(\d+)\r\n")
_BULK = re.compile(rb"\$(\d+)\r\n")


def _commands(stream: bytes) -> Iterator[list[bytes]]:
    """The commands in what a client sent: RESP arrays of bulk strings, up to the first
    one cut short (the worker was killed mid-write)."""
    pos = 0
    while stream.startswith(b"*", pos):
        end = stream.find(b"\r\n", pos)
        if end < 0:
            return
        count, pos = int(stream[pos + 1 : end]), end + 2
        args = []
        for _ in range(count):
            end = stream.find(b"\r\n", pos)
            if not stream.startswith(b"$", pos) or end < 0:
                return
            size, start = int(stream[pos + 1 : end]), end + 2
            if start + size > len(stream):
                return
            args.append(stream[start : start + size])
            pos = start + size + 2
        yield args


def _brpop_replies(stream: bytes) -> list[tuple[bytes, bytes]]:
    """(list key, item) of every two-element RESP array of bulk strings in ``stream``."""
    found = []
    for match in _ARRAY_OF_TWO.finditer(stream):
        start = match.end()
        key = stream[start : start + int(match[1])]
        second = _BULK.match(stream, start + len(key) + 2)
        if second is not None:
            found.append((key, stream[second.end() : second.end() + int(second[1])]))
    return found


class RedisFleet:
    """kombu's layout on the shared Redis under a key prefix of the test's own: celeriac on
    ``kombu+redis://``, Celery on ``redis://`` through a recording proxy per worker."""

    name = "redis"

    def __init__(self, redis_url: str, lease: float) -> None:
        self.url = redis_url
        self.prefix = f"celeriac-fleet-{uuid.uuid4().hex[:8]}:"
        self.client = redis.Redis.from_url(redis_url)
        self.recordings: list[Recording] = []
        self.app = Celery(
            "fleet-check", broker="kombu+" + redis_url, wire_format="celery",
            broker_transport_options={"global_keyprefix": self.prefix,
                                      "visibility_timeout": lease},
        )  # fmt: skip
        self.list_keys = {key.encode() for key in self.app.broker.layout.lists(QUEUE)}

    def celery_url(self) -> tuple[str, Recording]:
        parts = urlsplit(self.url)
        recording = Recording(parts.hostname or "127.0.0.1", parts.port or 6379)
        self.recordings.append(recording)
        return parts._replace(netloc=f"127.0.0.1:{recording.port}").geturl(), recording

    def held(self) -> int:
        broker = self.app.broker
        unacked = int(self.client.hlen(broker.layout.unacked))
        return broker.queue_length(QUEUE) + broker.delayed_count(QUEUE) + unacked

    def held_where(self) -> str:
        broker, layout = self.app.broker, self.app.broker.layout
        return (
            f"queued {broker.queue_length(QUEUE)}, delayed {broker.delayed_count(QUEUE)}, "
            f"unacked {self.client.hlen(layout.unacked)}, unacked_mutex expires in "
            f"{self.client.pttl(layout.unacked_mutex)} ms (-2: not held)"
        )

    def dead_letters(self) -> int:
        return len(self.app.broker.dead_letters(QUEUE, limit=10_000))

    def close(self) -> None:
        self.app.close()
        for recording in self.recordings:
            recording.close()
        keys = list(self.client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            self.client.delete(*keys)
        self.client.close()


class RabbitFleet:
    """A vhost of the test's own on the shared RabbitMQ, with Celery's names."""

    name = "rabbitmq"

    def __init__(self, amqp_host: str, records_url: str) -> None:
        self.vhost = f"celeriac-fleet-{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.url = f"amqp://guest:guest@{amqp_host}/{self.vhost}"
        self.prefix = f"{self.vhost}:"
        self.records = redis.Redis.from_url(records_url)
        self.app = Celery("fleet-check", broker=self.url, wire_format="celery")
        self.list_keys: set[bytes] = set()

    def celery_url(self) -> tuple[str, None]:
        return self.url, None  # RabbitMQ requeues what a closed connection held

    def held(self) -> int:
        listed = rabbitmqctl("list_queues", "-p", self.vhost, "-q", "--no-table-headers",
                             "name", "messages")  # fmt: skip
        counts = dict(line.split("\t") for line in listed.strip().splitlines() if "\t" in line)
        return int(counts.get(QUEUE, 0))

    def held_where(self) -> str:
        return f"queued or unacknowledged {self.held()}"

    def dead_letters(self) -> int:
        return len(self.app.broker.dead_letters(QUEUE, limit=10_000))

    def close(self) -> None:
        self.app.close()
        delete_vhost(self.vhost)
        keys = list(self.records.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            self.records.delete(*keys)
        self.records.close()
