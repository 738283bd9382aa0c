"""The Request logs page's filters (query string) and the owner's settings form."""

from __future__ import annotations

from typing import Any

from django import forms

from request_logs.selectors import LogFilters, Outcome

OUTCOME_CHOICES = [
    ("", "Any"),
    (Outcome.SERVED, "Served (2xx)"),
    (Outcome.REJECTED, "Rejected (4xx)"),
    (Outcome.FAILED, "Failed (5xx)"),
]


class LogFilterForm(forms.Form):
    key = forms.TypedChoiceField(required=False, label="API key", coerce=int, empty_value=None)
    model = forms.ChoiceField(required=False, label="Model")
    tier = forms.IntegerField(required=False, min_value=1, max_value=99, label="Tier")
    outcome = forms.ChoiceField(choices=OUTCOME_CHOICES, required=False, label="Status")
    first_day = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    last_day = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))
    request_id = forms.CharField(required=False, max_length=128, label="Request ID")

    def __init__(self, *args: Any, keys: list[tuple[int, str]], models: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [("", "Any"), *keys]  # type: ignore[attr-defined]
        self.fields["model"].choices = [("", "Any"), *((model, model) for model in models)]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("first_day"), cleaned.get("last_day")
        if first and last and last < first:
            raise forms.ValidationError("The range ends before it starts.")
        return cleaned

    def filters(self) -> LogFilters:
        """What was asked for; call after `is_valid()`."""
        data = self.cleaned_data
        return LogFilters(
            api_key_id=data["key"],
            model=data["model"],
            tier=data["tier"],
            outcome=Outcome(data["outcome"]) if data["outcome"] else None,
            first_day=data["first_day"],
            last_day=data["last_day"],
            request_id=data["request_id"].strip(),
        )


class LoggingSettingsForm(forms.Form):
    enabled = forms.BooleanField(
        required=False,
        label="Store prompts and answers",
        help_text="Each /v1 request's messages and answer, kept in your workspace's own schema.",
    )
    retention_days = forms.IntegerField(
        min_value=1,
        max_value=365,
        label="Keep them for (days)",
        help_text="1 to 365 days; older ones are deleted hourly.",
    )
