from django.db import migrations

PLANS = [("free", "Free", True), ("pro", "Pro", False), ("enterprise", "Enterprise", False)]


def create_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for slug, name, is_default in PLANS:
        Plan.objects.get_or_create(slug=slug, defaults={"name": name, "is_default": is_default})


def delete_plans(apps, schema_editor):
    apps.get_model("billing", "Plan").objects.filter(slug__in=[slug for slug, _, _ in PLANS]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(create_plans, delete_plans)]
