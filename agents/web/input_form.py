"""The run form's input fields, drawn from the agent's `input_schema`.

An object schema whose properties are all simple (string, number, integer,
boolean, or an `enum` of strings) gets one field per property, named
`input__<property>`; anything else (nested objects, arrays, no schema, odd
property names) falls back to one JSON textarea. Either way the service checks
the input against the whole schema (agents.services.check_input).
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.utils.html import escape

FIELD_PREFIX = "input__"
SIMPLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
SIMPLE_TYPES = {"string", "number", "integer", "boolean"}
MAX_TEXT = 100_000


def simple_properties(schema: Any) -> dict[str, dict[str, Any]] | None:
    """The schema's properties if each can be a plain form field, else None."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties or schema.get("additionalProperties") is True:
        return None
    if all(SIMPLE_NAME.fullmatch(name) and is_simple(spec) for name, spec in properties.items()):
        return properties
    return None


def is_simple(spec: Any) -> bool:
    if not isinstance(spec, dict):
        return False
    if "enum" in spec:
        return all(isinstance(choice, str) for choice in spec["enum"]) and bool(spec["enum"])
    return spec.get("type") in SIMPLE_TYPES


def field_for(spec: dict[str, Any], required: bool) -> forms.Field:
    """One property's field; its description is the help text (escaped: field.html marks help safe)."""
    common: dict[str, Any] = {"required": required, "help_text": escape(str(spec.get("description", "")))}
    if isinstance(spec.get("title"), str):
        common["label"] = spec["title"]
    if "enum" in spec:
        choices = [(choice, choice) for choice in spec["enum"]]
        return forms.ChoiceField(choices=choices if required else [("", "—"), *choices], **common)
    kind = spec["type"]
    if kind == "boolean":
        return forms.BooleanField(**{**common, "required": False})
    bounds: dict[str, Any] = {"min_value": spec.get("minimum"), "max_value": spec.get("maximum")}
    if kind == "integer":
        return forms.IntegerField(**common, **bounds)
    if kind == "number":
        return forms.FloatField(**common, **bounds)
    return forms.CharField(
        max_length=min(int(spec.get("maxLength", MAX_TEXT)), MAX_TEXT),
        widget=forms.Textarea(attrs={"rows": 3}),
        strip=False,
        **common,
    )


def add_input_fields(form: forms.Form, schema: Any) -> bool:
    """Add the schema's fields to `form`; False (and a JSON `input` field) when it has none simple."""
    properties = simple_properties(schema)
    if properties is None:
        form.fields["input"] = JsonInputField()
        return False
    required = set(schema.get("required", []))
    for name, spec in properties.items():
        field = field_for(spec, name in required)
        field.label = field.label or name
        form.fields[FIELD_PREFIX + name] = field
    return True


def input_from(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The run's input from the cleaned fields: unset optional ones are left out."""
    return {
        name.removeprefix(FIELD_PREFIX): value
        for name, value in cleaned.items()
        if name.startswith(FIELD_PREFIX) and value not in (None, "")
    }


class JsonInputField(forms.CharField):
    """The whole input as JSON, for schemas a form cannot draw."""

    widget = forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "code-editor"})

    def __init__(self) -> None:
        super().__init__(
            initial="{}",
            label="Input (JSON)",
            help_text="JSON, checked against the agent's input_schema.",
            max_length=256 * 1024,
        )

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        try:
            return json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}") from None
        except RecursionError:
            raise forms.ValidationError("Not valid JSON: nested too deeply.") from None
