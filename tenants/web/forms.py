from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import password_validators_help_text_html, validate_password
from django.core.exceptions import ValidationError

from accounts.models import User
from tenants.services import ProvisioningError, validate_slug


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
