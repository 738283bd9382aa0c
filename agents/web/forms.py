from __future__ import annotations

import json
from typing import Any

from django import forms

from tenants.models import ApiKey


class SpecForm(forms.Form):
    spec = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code-editor"}),
        help_text="The WorkflowSpec in YAML or JSON.",
        max_length=256 * 1024,
    )


class StartRunForm(forms.Form):
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
        initial="{}",
        help_text="JSON, checked against the agent's input_schema.",
    )
    environment = forms.CharField(required=False, max_length=50, help_text="An overlay to apply (optional).")
    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(),
        help_text="Usage and limits are counted against this key.",
        label="API key",
    )

    def __init__(self, *args: Any, keys: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["api_key"].queryset = keys  # type: ignore[attr-defined]

    def clean_input(self) -> Any:
        try:
            return json.loads(self.cleaned_data["input"])
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}") from None
