"""A provider's credential comes only from where settings allow: staff cannot
point a provider at SECRET_KEY, DATABASE_URL or an arbitrary file and have the
gateway send it upstream."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from pytest_django import Settings

from routing.catalog import read_credential
from routing.models import Provider

pytestmark = pytest.mark.django_db


def provider(**fields: str) -> Provider:
    return Provider(slug="creds", name="Creds", base_url="https://api.example.com/v1", **fields)


def test_a_variable_outside_the_allowed_prefixes_is_refused_and_never_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_KEY", "do-not-send")
    stolen = provider(credential_env="SECRET_KEY")

    with pytest.raises(ValidationError) as refused:
        stolen.full_clean()

    assert "credential_env" in refused.value.message_dict
    assert read_credential(stolen) is None


def test_an_allowed_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIAAS_PROVIDER_OPENAI", "sk-allowed")
    allowed = provider(credential_env="AIAAS_PROVIDER_OPENAI")

    allowed.full_clean()
    assert read_credential(allowed) == "sk-allowed"


def test_a_file_is_read_only_inside_an_allowed_folder(tmp_path: Path, settings: Settings) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "openai").write_text("sk-file\n")
    (tmp_path / "elsewhere").write_text("not-a-credential")
    settings.PROVIDER_CREDENTIAL_DIRS = [str(secrets)]

    inside = provider(credential_file=str(secrets / "openai"))
    escaping = provider(credential_file=str(secrets / ".." / "elsewhere"))

    inside.full_clean()
    assert read_credential(inside) == "sk-file"
    with pytest.raises(ValidationError):
        escaping.full_clean()
    assert read_credential(escaping) is None
