from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet

from ingestion.search import SearchMode
from routing.models import ProviderModel
from tenants.models import ApiKey

KEY_HELP = "Embeddings are counted against this key (its limits and budget)."


class KeyedForm(forms.Form):
    """A form whose work is attributed to one of the tenant's inference keys, chosen
    for the user when there is only one (a dropped file is submitted at once)."""

    api_key = forms.ModelChoiceField(queryset=ApiKey.objects.none(), label="API key", help_text=KEY_HELP)

    def __init__(self, *args: Any, keys: QuerySet[ApiKey] | list[ApiKey], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["api_key"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = ApiKey.objects.filter(pk__in=[key.pk for key in keys])
        if len(keys) == 1:
            field.initial = keys[0].pk


class CollectionForm(KeyedForm):
    name = forms.CharField(max_length=200)
    embedding_model = forms.ChoiceField(help_text="Fixed for the collection's life.")

    def __init__(self, *args: Any, models: QuerySet[ProviderModel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(model.model_id, model.model_id) for model in models]
        self.fields["embedding_model"].choices = choices  # type: ignore[attr-defined]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented recipe): cleans to a list."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(widget=MultipleFileInput(), **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        files = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class UploadForm(KeyedForm):
    documents = MultipleFileField(
        help_text="Text, Markdown, HTML, PDF or DOCX; drop them here or choose them."
    )


class UrlForm(KeyedForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")


class TextForm(KeyedForm):
    title = forms.CharField(max_length=500, required=False)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}))


class SearchForm(KeyedForm):
    q = forms.CharField(max_length=4000, label="Query")
    mode = forms.ChoiceField(
        choices=[(mode.value, mode.value) for mode in SearchMode], initial=SearchMode.HYBRID
    )
