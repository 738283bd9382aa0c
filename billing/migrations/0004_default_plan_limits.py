from decimal import Decimal

from django.db import migrations

# slug: (key rpm, key tpm, tenant rpm, tenant tpm, monthly tokens, monthly USD)
LIMITS = {
    "free": (60, 100_000, 300, 500_000, 5_000_000, Decimal("10.00")),
    "pro": (600, 1_000_000, 3_000, 5_000_000, None, Decimal("1000.00")),
    "enterprise": (6_000, 10_000_000, 30_000, 50_000_000, None, None),
}
FIELDS = (
    "key_requests_per_minute",
    "key_tokens_per_minute",
    "tenant_requests_per_minute",
    "tenant_tokens_per_minute",
    "monthly_token_budget",
    "monthly_spend_budget_usd",
)


def set_limits(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for slug, values in LIMITS.items():
        Plan.objects.filter(slug=slug).update(**dict(zip(FIELDS, values, strict=True)))


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_limits")]
    operations = [migrations.RunPython(set_limits, migrations.RunPython.noop)]
