"""POST /orders/ with total=<n>: place an order and confirm it once it is committed."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from orders.models import Order
from orders.tasks import confirm_order


@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    order = Order.objects.create(total=int(request.POST["total"]))
    # The view runs in a transaction (ATOMIC_REQUESTS): the task is sent once it commits,
    # never for an order that was rolled back. Its id is known now, so it can be stored.
    result = confirm_order.delay_on_commit(order.pk)
    order.task_id = result.id
    order.save(update_fields=["task_id"])
    return JsonResponse({"order": order.pk, "task_id": result.id}, status=201)
