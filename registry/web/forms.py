from __future__ import annotations

import json
from typing import Any

from django import forms

from registry.prompts import MAX_TEMPLATE_CHARACTERS


class PromptForm(forms.Form):
    name = forms.RegexField(
        regex=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        max_length=100,
        help_text="Letters, digits, _ . - ; versions share a name.",
    )
    template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code-editor"}),
        max_length=MAX_TEMPLATE_CHARACTERS,
        strip=False,
        help_text="A Jinja template; the names it reads are its variables.",
    )


class RenderForm(forms.Form):
    variables = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "code-editor"}),
        initial="{}",
        max_length=64 * 1024,
        help_text="A JSON object of the template's variables.",
    )

    def clean_variables(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cleaned_data["variables"])
        except ValueError as error:
            raise forms.ValidationError(f"Not JSON: {error}") from None
        except RecursionError:
            raise forms.ValidationError("Not JSON: nested too deeply.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('A JSON object, e.g. {"input": {"text": "hi"}}.')
        return value
