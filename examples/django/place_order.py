"""Places an order through the view (Django's test client stands for a browser), waits
for the worker to confirm it, then for beat's periodic task to ship it."""

import os
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")
django.setup()

from django.test import Client  # noqa: E402
from orders.models import Order  # noqa: E402
from orders.tasks import confirm_order  # noqa: E402

placed = Client().post("/orders/", {"total": 42}).json()
print("placed:", placed)
print("worker:", confirm_order.AsyncResult(placed["task_id"]).get(timeout=30))
order = Order.objects.get(pk=placed["order"])
print("task id stored with the order:", order.task_id == placed["task_id"])
deadline = time.monotonic() + 30
while order.status != "shipped" and time.monotonic() < deadline:
    time.sleep(0.2)  # beat ships confirmed orders every second
    order.refresh_from_db()
print(f"order {order.pk}: {order.status}")
