"""The orders app's tasks, found by app.autodiscover_tasks(). They import the models at
the top: the worker sets Django up before it imports this module."""

from celeriac import shared_task
from orders.models import Order


@shared_task
def confirm_order(order_id):
    # Sent on commit by the view, so the order is always there to read.
    order = Order.objects.get(pk=order_id)
    order.status = "confirmed"
    order.save(update_fields=["status"])
    return f"order {order.pk} confirmed ({order.total})"


@shared_task
def ship_confirmed():
    # Run by beat every second (CELERY_BEAT_SCHEDULE in the settings).
    return Order.objects.filter(status="confirmed").update(status="shipped")
