"""A kombu peer for the kombu-layout tests, run with a Python that has kombu (Celery's):
one step per run, its result as JSON on stdout. It never imports celeriac.

    kombu_peer.py URL PREFIX put QUEUE BODY_B64 [PRIORITY]   publish raw bytes
    kombu_peer.py URL PREFIX put-json QUEUE JSON             publish a JSON body
    kombu_peer.py URL PREFIX get QUEUE                       consume one and ack it
    kombu_peer.py URL PREFIX take-and-die QUEUE              consume one, exit without ack
    kombu_peer.py URL PREFIX restore VISIBILITY              kombu's restore_visible
"""

from __future__ import annotations

import base64
import json
import os
import sys

from kombu import Connection


def main(url: str, prefix: str, step: str, *args: str) -> dict[str, object]:
    options: dict[str, object] = {"global_keyprefix": prefix}
    if step == "restore":
        options["visibility_timeout"] = float(args[0])
    with Connection(url, transport_options=options) as connection:
        if step == "restore":
            qos = connection.default_channel.qos
            qos.restore_visible(start=0, num=100, interval=1)
            return {"restored": True}
        queue = connection.SimpleQueue(args[0])
        if step == "put":
            priority = int(args[2]) if len(args) > 2 else None
            queue.put(base64.b64decode(args[1]), serializer=None, priority=priority)
            return {"put": True}
        if step == "put-json":
            queue.put(json.loads(args[1]), serializer="json", headers={"id": "kombu-1"})
            return {"put": True}
        message = queue.get(timeout=5)
        seen = {
            "body": base64.b64encode(message.body).decode(),
            "payload": message.decode() if message.content_type == "application/json" else None,
            "content_type": message.content_type,
            "delivery_tag": message.delivery_tag,
            "delivery_info": message.delivery_info,
            "headers": message.headers,
            "properties": message.properties,
        }
        if step == "take-and-die":  # a worker killed mid-task: no ack, no restore at close
            print(json.dumps(seen), flush=True)
            os._exit(0)
        message.ack()
        return seen


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])), flush=True)
