"""The outbox table, ``celeriac_outbox``: the columns of ``celeriac.outbox.outbox_table``."""

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # Django ships no types
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="OutboxMessage",
            fields=[
                ("id", models.CharField(max_length=155, primary_key=True, serialize=False)),
                ("queue", models.CharField(max_length=255)),
                ("priority", models.SmallIntegerField(default=0)),
                ("payload", models.BinaryField()),
                ("due_at", models.FloatField(null=True)),
                ("created_at", models.FloatField()),
                ("available_at", models.FloatField()),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "pending"), ("sent", "sent"), ("dead", "dead")],
                        default="pending",
                        max_length=8,
                    ),
                ),
                ("attempts", models.IntegerField(default=0)),
                ("last_error", models.TextField(null=True)),
                ("sent_at", models.FloatField(null=True)),
            ],
            options={
                "verbose_name": "outbox message",
                "db_table": "celeriac_outbox",
                "indexes": [
                    models.Index(
                        fields=["status", "available_at"], name="celeriac_outbox_status_avail"
                    )
                ],
            },
        ),
    ]
