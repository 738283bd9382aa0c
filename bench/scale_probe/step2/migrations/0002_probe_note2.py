from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("scale_probe", "0001_initial")]
    operations = [
        migrations.AddField(
            model_name="probe", name="note2", field=models.CharField(max_length=50, null=True)
        )
    ]
