from __future__ import annotations

from decimal import Decimal

from django import forms


class RoutingSettingsForm(forms.Form):
    quality_target = forms.DecimalField(
        min_value=Decimal("0.80"),
        max_value=Decimal("1.00"),
        decimal_places=2,
        help_text="Share of the top tier's quality to keep (0.80 to 1.00).",
    )
    exploration_rate = forms.DecimalField(
        min_value=Decimal("0"),
        max_value=Decimal("0.10"),
        decimal_places=2,
        help_text="Share of close calls sent one tier cheaper, to keep learning (0 to 0.10).",
    )
