from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_delete_prompt"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
