"""The orders table."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("total", models.PositiveIntegerField()),
                ("status", models.CharField(default="placed", max_length=20)),
                ("task_id", models.CharField(blank=True, max_length=36)),
            ],
        ),
    ]
