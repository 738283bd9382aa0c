"""The Analytics page's query string: `range` (a preset) or `from` and `to` (UTC
days, both included), and for the CSV export a `group_by`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django import forms

from analytics.ranges import DateRange, Preset

DEFAULT_PRESET = Preset.WEEK
GROUP_BY_CHOICES = [
    ("", "Nothing"),
    ("model", "Model"),
    ("key", "API key"),
    ("tier", "Tier"),
    ("status", "Status"),
]


class RangeForm(forms.Form):
    range = forms.ChoiceField(
        choices=[(preset.value, preset.label) for preset in Preset], required=False, label="Range"
    )

    def __init__(self, *args: Any, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `from` is a Python keyword: these two are added by name.
        self.fields["from"] = forms.DateField(
            required=False, label="From", widget=forms.DateInput({"type": "date"})
        )
        self.fields["to"] = forms.DateField(
            required=False, label="To", widget=forms.DateInput({"type": "date"})
        )
        self.today = today

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("from"), cleaned.get("to")
        if first is None and last is None:
            return cleaned
        if cleaned.get("range"):
            raise forms.ValidationError("Choose a preset or a from and to date, not both.")
        if first is None or last is None:
            raise forms.ValidationError("A custom range needs both a from and a to date.")
        if last > self.today:
            self.add_error("to", "The range cannot end after today (UTC).")
            return cleaned
        try:
            cleaned["days"] = DateRange.days(first, last)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error
        return cleaned

    def problems(self) -> list[str]:
        """Every error, prefixed by the label of the field it is about."""
        return [
            f"{self.fields[name].label}: {message}" if name in self.fields else str(message)
            for name, messages in self.errors.items()
            for message in messages
        ]

    def date_range(self, now: datetime) -> DateRange:
        """The range asked for; call after `is_valid()`."""
        if "days" in self.cleaned_data:
            days: DateRange = self.cleaned_data["days"]
            return days
        return DateRange.last(Preset(self.cleaned_data.get("range") or DEFAULT_PRESET), now)


class ExportForm(RangeForm):
    group_by = forms.ChoiceField(choices=GROUP_BY_CHOICES, required=False, label="Group by")
