"""An order, placed by the view and confirmed by a task."""

from django.db import models


class Order(models.Model):
    total = models.PositiveIntegerField()
    status = models.CharField(max_length=20, default="placed")
    task_id = models.CharField(max_length=36, blank=True)
