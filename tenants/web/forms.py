from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.password_validation import password_validators_help_text_html, validate_password
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import User
from routing.selectors import unknown_models_message
from tenants.models import MAX_RATE_LIMIT, MAX_TOKEN_BUDGET, USD_AMOUNT, ApiKeyPriority, ApiKeyScope
from tenants.services import ProvisioningError, validate_slug

MAX_ALLOWED_MODELS = 100
MAX_MODEL_NAME_LENGTH = 200


def as_sentence(message: str) -> str:
    """ProvisioningError messages are log-style; forms show sentences."""
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else f"{message}."


class SignupForm(forms.Form):
    name = forms.CharField(
        label="Company name",
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": "Acme Inc.", "autocomplete": "organization"}),
    )
    slug = forms.CharField(
        label="Subdomain",
        max_length=32,
        widget=forms.TextInput(
            attrs={"placeholder": "acme", "autocapitalize": "none", "spellcheck": "false"}
        ),
        help_text="1-32 lowercase letters, digits and hyphens, starting with a letter.",
    )
    owner_email = forms.EmailField(
        label="Work email",
        widget=forms.EmailInput(attrs={"placeholder": "you@acme.com", "autocomplete": "email"}),
    )
    password = forms.CharField(
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password_confirmation = forms.CharField(
        label="Confirm password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"].strip().lower()
        try:
            validate_slug(slug)
        except ProvisioningError as error:
            raise ValidationError(as_sentence(str(error))) from None
        return slug

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password, confirmation = cleaned.get("password"), cleaned.get("password_confirmation")
        if password and confirmation and password != confirmation:
            self.add_error("password_confirmation", "The two passwords do not match.")
        elif password:
            try:
                validate_password(password, User(email=cleaned.get("owner_email", "")))
            except ValidationError as error:
                self.add_error("password", error)
        return cleaned


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
    """A key's overrides of its plan's limits (ApiKey.LIMIT_FIELDS; empty: the plan's, or
    no cap), and its priority when the platform degrades (what the API's `priority` sets)."""

    priority = forms.ChoiceField(
        choices=ApiKeyPriority.choices,
        initial=ApiKeyPriority.NORMAL,
        required=False,
        help_text="Which keys a degraded platform turns away first: low, then normal; high never.",
    )

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

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if not cleaned.get("priority"):
            cleaned.pop("priority", None)  # not sent: unchanged (a new key's is normal)
        return cleaned


# What each scope lets a key do, in a sentence a person choosing scopes needs.
SCOPE_EXPLANATIONS = {
    ApiKeyScope.INFERENCE: "Call models through the OpenAI-compatible /v1 API: chat, embeddings, files, "
    "batches. What an application needs.",
    ApiKeyScope.READ: "Read usage, analytics, keys and resources through /api; cannot call models or "
    "change anything. For dashboards and monitoring.",
    ApiKeyScope.ADMIN: "Everything the other scopes allow, and create, change and revoke keys. Keep it "
    "for trusted back-office tools.",
}


@dataclass(frozen=True)
class ScopeExplanation:
    value: str
    label: str
    explanation: str


def scope_explanations() -> list[ScopeExplanation]:
    return [ScopeExplanation(scope.value, scope.label, SCOPE_EXPLANATIONS[scope]) for scope in ApiKeyScope]


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
        if refused := unknown_models_message(models):
            raise forms.ValidationError(refused)
        return models


class OutboundSettingsForm(forms.Form):
    """The tenant's outbound policy as people type it: one host per line, ports
    separated by commas. The service checks both (tenants.services)."""

    hosts = forms.CharField(
        required=False,
        label="Allowed hosts",
        widget=forms.Textarea({"rows": 5}),
        help_text="One per line: api.example.com, or .example.com for a domain and its subdomains. "
        "Empty: any public host.",
    )
    ports = forms.CharField(
        required=False,
        label="Allowed ports",
        help_text="Separated by commas, e.g. 443, 8443. Empty: 80 and 443.",
    )

    def clean_hosts(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["hosts"].splitlines() if line.strip()]

    def clean_ports(self) -> list[int]:
        values = [value.strip() for value in self.cleaned_data["ports"].split(",") if value.strip()]
        if not all(value.isdecimal() and 1 <= int(value) <= 65535 for value in values):
            raise ValidationError("Write ports as numbers from 1 to 65535, separated by commas.")
        return [int(value) for value in values]
