"""The quick start's tasks. No broker_url: celeriac starts (or finds) this project's
embedded Redis, so a worker and the sender below share it with nothing installed."""

import time

from celeriac import Celery

app = Celery("quickstart")  # no broker configured: the project's embedded Redis
app.conf.result_backend = app.broker.url  # keep results in that same Redis


@app.task
def add(x, y):
    return x + y


@app.task(bind=True)
def slow_hello(self, name):
    time.sleep(0.2)  # stands for real work
    return f"hello {name}, from {self.request.hostname}"
