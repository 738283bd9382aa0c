from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from agents.web.input_form import add_input_fields, input_from
from tenants.models import ApiKey


class SpecForm(forms.Form):
    spec = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code-editor"}),
        help_text="The WorkflowSpec in YAML or JSON.",
        max_length=256 * 1024,
    )


class StartRunForm(forms.Form):
    """Start a run: the input's fields (agents/web/input_form.py), an overlay, and
    the key its usage counts against (chosen for you when there is one)."""

    environment = forms.CharField(required=False, max_length=50, help_text="An overlay to apply (optional).")
    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(),
        help_text="Usage and limits are counted against this key.",
        label="API key",
        empty_label="Choose a key",
    )

    def __init__(self, *args: Any, keys: QuerySet[ApiKey], input_schema: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["api_key"].queryset = keys  # type: ignore[attr-defined]
        only = list(keys[:2])
        if len(only) == 1:
            self.fields["api_key"].initial = only[0].pk
        self.has_input_fields = add_input_fields(self, input_schema)
        self.order_fields([name for name in self.fields if name not in ("environment", "api_key")])

    def run_input(self) -> Any:
        """The input to start the run with; call after is_valid()."""
        return input_from(self.cleaned_data) if self.has_input_fields else self.cleaned_data["input"]

    def input_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in ("environment", "api_key")]
