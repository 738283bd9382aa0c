from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db.models import QuerySet

from evals.models import DatasetVersion, Experiment, TargetKind
from tenants.models import ApiKey

KEY_HELP = "The experiment's calls (target and judges) are counted against this key."
JSON_AREA = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "code-editor"})


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise forms.ValidationError(f"Not valid JSON: {error}") from None


class KeyedForm(forms.Form):
    """A form whose work is billed to one of the tenant's inference keys, chosen
    for the user when there is only one."""

    api_key = forms.ModelChoiceField(queryset=ApiKey.objects.none(), label="API key", help_text=KEY_HELP)

    def __init__(self, *args: Any, keys: list[ApiKey], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["api_key"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = ApiKey.objects.filter(pk__in=[key.pk for key in keys])
        if len(keys) == 1:
            field.initial = keys[0].pk


class DatasetForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="Letters, digits, - and _.")
    description = forms.CharField(max_length=2000, required=False)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL (one case a line) or CSV with a header row.")
    format = forms.ChoiceField(choices=[("jsonl", "JSONL"), ("csv", "CSV")], initial="jsonl")
    mode = forms.ChoiceField(
        choices=[("append", "Add to the cases"), ("replace", "Replace the cases")],
        initial="append",
        help_text="A version an experiment used is never changed: the import makes the next version.",
    )


class TrafficForm(forms.Form):
    """Real traffic picked on the page, turned into cases of a dataset."""

    dataset = forms.SlugField(max_length=100, help_text="An existing dataset gets a new version.")
    request_ids = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    run_ids = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, request_ids: list[str], run_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["request_ids"].choices = [(value, value) for value in request_ids]  # type: ignore[attr-defined]
        self.fields["run_ids"].choices = [(str(value), str(value)) for value in run_ids]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("request_ids") and not cleaned.get("run_ids"):
            raise forms.ValidationError("Pick at least one request or run.")
        return cleaned


class ExperimentForm(KeyedForm):
    name = forms.CharField(max_length=200, required=False)
    version = forms.ModelChoiceField(queryset=DatasetVersion.objects.none(), label="Dataset version")
    target_kind = forms.ChoiceField(choices=TargetKind.choices, initial=TargetKind.MODEL, label="Target kind")
    target = forms.CharField(
        widget=JSON_AREA,
        initial='{"model": "auto"}',
        max_length=64 * 1024,
        help_text='JSON: {"model": "auto", "quality_target": 0.9}, '
        '{"prompt": "faq", "prompt_version": 3, "model": "..."} or {"agent": "support", "agent_version": 2}.',
    )
    scorers = forms.CharField(
        widget=JSON_AREA,
        initial="[]",
        required=False,
        max_length=64 * 1024,
        help_text="A JSON list of scorer specs run on every case, besides the dataset's assertions.",
    )
    concurrency = forms.IntegerField(min_value=1, max_value=32, initial=4)
    baseline = forms.ModelChoiceField(
        queryset=Experiment.objects.none(),
        required=False,
        help_text="An experiment on the same dataset whose outputs a pairwise_judge compares with.",
    )

    def __init__(
        self,
        *args: Any,
        versions: QuerySet[DatasetVersion],
        baselines: QuerySet[Experiment],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        for name, queryset in (("version", versions), ("baseline", baselines)):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = queryset

    def clean_target(self) -> Any:
        target = parse_json(self.cleaned_data["target"])
        if not isinstance(target, dict):
            raise forms.ValidationError("The target is a JSON object.")
        return target

    def clean_scorers(self) -> Any:
        scorers = parse_json(self.cleaned_data["scorers"] or "[]")
        if not isinstance(scorers, list):
            raise forms.ValidationError("The scorers are a JSON list.")
        return scorers


class CompareForm(forms.Form):
    baseline = forms.CharField(max_length=40)
    candidate = forms.CharField(max_length=40)


class LabelForm(forms.Form):
    label = forms.ChoiceField(choices=[("pass", "Pass"), ("fail", "Fail"), ("clear", "Clear")])
    # Where the label was given, to return there.
    page = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)
    show = forms.ChoiceField(
        choices=[("all", "all"), ("failed", "failed"), ("unlabelled", "unlabelled")], required=False
    )

    def human_label(self) -> bool | None:
        return {"pass": True, "fail": False}.get(self.cleaned_data["label"])


class RouterQualityForm(KeyedForm):
    sample = forms.IntegerField(
        min_value=5, max_value=200, initial=50, help_text="How many recent logged requests to replay."
    )
