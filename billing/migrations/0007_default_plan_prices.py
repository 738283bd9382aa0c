from decimal import Decimal

from django.db import migrations

# slug: (monthly price USD, included tokens, included requests, cap mode, overage USD per 1M tokens)
PRICES = {
    "free": (Decimal("0.00"), 5_000_000, 10_000, "hard", Decimal("0")),
    "pro": (Decimal("49.00"), 50_000_000, 200_000, "soft", Decimal("2.0000")),
    "enterprise": (Decimal("499.00"), 600_000_000, 2_000_000, "soft", Decimal("1.5000")),
}
FIELDS = (
    "monthly_price_usd",
    "included_tokens",
    "included_requests",
    "cap_mode",
    "overage_usd_per_million_tokens",
)


def set_prices(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for slug, values in PRICES.items():
        Plan.objects.filter(slug=slug).update(**dict(zip(FIELDS, values, strict=True)))


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_billing_stripe")]
    operations = [migrations.RunPython(set_prices, migrations.RunPython.noop)]
