import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0010_plan_batch_discount_percent"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageRequestId",
            fields=[
                ("request_id", models.CharField(max_length=128, primary_key=True, serialize=False)),
                ("recorded_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
        ),
    ]
