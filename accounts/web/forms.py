from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from accounts.models import Role
from tenants.models import MAX_RATE_LIMIT, MAX_TOKEN_BUDGET, USD_AMOUNT, ApiKeyScope

MAX_ALLOWED_MODELS = 100
MAX_MODEL_NAME_LENGTH = 200
# The ranges of ApiKey's columns, as the REST API checks them.


class LoginForm(AuthenticationForm):
    """Django's login form, with the username field presented as an email."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.label = "Email"
        username.widget = forms.EmailInput(attrs={**username.widget.attrs, "autocomplete": "email"})


class UsdAmountField(forms.DecimalField):
    """A non-negative USD amount written plainly with at most 2 decimals ("25.00"),
    as the REST API takes it: "1e3" or "-0" are refused, not converted."""

    default_error_messages = {"invalid": "Enter an amount in USD like 25.00: digits, at most 2 decimals."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=12, decimal_places=2, min_value=Decimal(0), **kwargs)

    def clean(self, value: Any) -> Any:
        text = "" if value is None else str(value).strip()
        if text and not USD_AMOUNT.fullmatch(text):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().clean(value)


def count_input(placeholder: str) -> forms.TextInput:
    return forms.TextInput(attrs={"inputmode": "numeric", "placeholder": placeholder})


class ApiKeyLimitsForm(forms.Form):
    """A key's overrides of its plan's limits (ApiKey.LIMIT_FIELDS); empty: the plan's, or no cap."""

    requests_per_minute = forms.IntegerField(
        label="Requests per minute",
        required=False,
        min_value=1,
        max_value=MAX_RATE_LIMIT,
        widget=count_input("The plan's"),
    )
    tokens_per_minute = forms.IntegerField(
        label="Tokens per minute",
        required=False,
        min_value=1,
        max_value=MAX_RATE_LIMIT,
        widget=count_input("The plan's"),
    )
    monthly_token_budget = forms.IntegerField(
        label="Monthly token budget",
        required=False,
        min_value=0,
        max_value=MAX_TOKEN_BUDGET,
        widget=count_input("No cap"),
    )
    monthly_spend_budget_usd = UsdAmountField(
        label="Monthly spend budget (USD)",
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "No cap"}),
    )


class ApiKeyForm(ApiKeyLimitsForm):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "Production backend"})
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiKeyScope.choices,
        initial=[ApiKeyScope.INFERENCE],
        widget=forms.CheckboxSelectMultiple,
    )
    expires_at = forms.DateTimeField(
        label="Expires at (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty for a key that does not expire.",
    )
    allowed_models = forms.CharField(
        label="Allowed models",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "gpt-4o-mini, claude-3-5-haiku"}),
        help_text="Comma-separated. Leave empty to allow every model.",
    )

    def clean_expires_at(self) -> datetime | None:
        expires_at: datetime | None = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at

    def clean_allowed_models(self) -> list[str]:
        names = [name.strip() for name in self.cleaned_data["allowed_models"].split(",")]
        models = list(dict.fromkeys(name for name in names if name))
        if len(models) > MAX_ALLOWED_MODELS:
            raise forms.ValidationError(f"List at most {MAX_ALLOWED_MODELS} models.")
        if any(len(name) > MAX_MODEL_NAME_LENGTH for name in models):
            raise forms.ValidationError(f"A model name has at most {MAX_MODEL_NAME_LENGTH} characters.")
        return models


class InviteForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"placeholder": "teammate@example.com"}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
