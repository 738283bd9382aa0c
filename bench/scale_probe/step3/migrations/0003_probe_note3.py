from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("scale_probe", "0002_probe_note2")]
    operations = [
        migrations.AddField(
            model_name="probe", name="note3", field=models.CharField(max_length=50, null=True)
        )
    ]
