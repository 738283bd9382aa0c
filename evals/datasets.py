"""Datasets: versions, cases, import and export, and cases made from real traffic.

Every edit goes to a dataset's latest version. A version an experiment has used
is locked (`DatasetVersion.locked_at`): editing it first copies its cases into
version N+1 and edits the copy (copy-on-write), so an experiment's cases never
change under it. An edit holds the dataset's row lock (edits of one dataset run
one at a time) and the latest version's (an experiment locking that version
waits for the edit to commit, or the edit sees the lock and copies).

Import and export read and write two formats with the same fields (`key`,
`input`, `expected`, `tags`, `assertions`): JSON Lines, one case per line, and
CSV with a header row (input and assertions as JSON, expected as JSON or plain
text, tags separated by `;`). Input is bounded (settings.EVALS_IMPORT_MAX_BYTES,
EVALS_MAX_CASES_PER_VERSION) and a bad line is refused with its number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, OuterRef, QuerySet, Subquery

from agents.models import Run, RunStatus
from aiaas import outbound
from evals.models import ACTIVE_EXPERIMENT_STATUSES, Case, CaseResult, Dataset, DatasetVersion, Experiment
from evals.scorers import ScorerSpecError, build
from request_logs.models import RequestLog
from request_logs.services import JSON_NUL_ESCAPE, TRUNCATION_MARKER
from tenants.selectors import current_outbound_policy

T = TypeVar("T")

KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
INPUT_KINDS = ("messages", "variables", "agent_input")
FIELDS = ("key", "input", "expected", "tags", "assertions")
MAX_TAGS = 20
MAX_TAG_LENGTH = 50
TAG_SEPARATOR = ";"
GOLDEN_PREFIX = "golden-"


class DatasetInputError(ValueError):
    """Input a dataset refuses: `param` names the field, `status` the HTTP answer it deserves."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


class FileFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class ImportMode(StrEnum):
    APPEND = "append"  # the file's cases are added; a key the version has is refused
    REPLACE = "replace"  # the version holds exactly the file's cases


@dataclass(frozen=True)
class CaseData:
    """A case as given, checked: what a version stores of it."""

    key: str
    input: dict[str, Any]
    expected: Any = None
    tags: list[str] = field(default_factory=list)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""


# Checking one case


def check_key(value: Any) -> str:
    if not isinstance(value, str) or not KEY_PATTERN.fullmatch(value):
        raise DatasetInputError(
            "must be 1-200 letters, digits, `.`, `_`, `:` or `-`, starting with a letter or digit",
            param="key",
        )
    return value


def check_input(value: Any) -> dict[str, Any]:
    """A case's input: `{"messages": [...]}`, `{"variables": {...}}` or `{"agent_input": ...}`;
    a string is one user message."""
    if isinstance(value, str) and value:
        return {"messages": [{"role": "user", "content": value}]}
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in INPUT_KINDS:
        raise DatasetInputError(
            "must be a string or an object with exactly one of messages, variables, agent_input",
            param="input",
        )
    if "messages" in value:
        check_messages(value["messages"])
    if "variables" in value and not isinstance(value["variables"], dict):
        raise DatasetInputError("variables must be an object", param="input")
    return value


def check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise DatasetInputError("messages must be a non-empty list", param="input")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise DatasetInputError("each message must be an object with a role", param="input")


def check_tags(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise DatasetInputError(f"must be a list of at most {MAX_TAGS} tags", param="tags")
    if not all(isinstance(tag, str) and 0 < len(tag) <= MAX_TAG_LENGTH for tag in value):
        raise DatasetInputError(f"each tag must be a string of 1-{MAX_TAG_LENGTH} characters", param="tags")
    return list(dict.fromkeys(value))


def check_assertions(value: Any, param: str = "assertions") -> list[dict[str, Any]]:
    """Scorer specs (evals/scorers): refused here, before any experiment runs them."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(spec, dict) for spec in value):
        raise DatasetInputError("must be a list of scorer specs (objects)", param=param)
    try:
        build(value)
    except ScorerSpecError as error:
        raise DatasetInputError(str(error), param=param, code="invalid_scorer") from None
    return value


def check_storable(param: str, value: Any) -> None:
    """Refuses what PostgreSQL's jsonb cannot hold: NUL characters, or nesting too deep to encode."""
    try:
        text = json.dumps(value)
    except (RecursionError, ValueError):
        raise DatasetInputError("nested too deeply", param=param) from None
    if "\\u0000" in text and JSON_NUL_ESCAPE.search(text):
        raise DatasetInputError("must not contain NUL characters", param=param)


def default_key(case_input: Mapping[str, Any]) -> str:
    """A key from the input itself, so importing one file twice gives the same keys."""
    digest = hashlib.sha256(json.dumps(case_input, sort_keys=True).encode()).hexdigest()
    return f"case-{digest[:16]}"


def case_from_fields(fields: Mapping[str, Any], source: str = "") -> CaseData:
    """A case from its documented fields (an API body, a file's line); refuses any other field."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise DatasetInputError(
            f"unknown field {unknown[0]}; a case has: {', '.join(FIELDS)}", param=unknown[0]
        )
    if "input" not in fields:
        raise DatasetInputError("input is required", param="input")
    for name, value in fields.items():
        check_storable(name, value)
    case_input = check_input(fields["input"])
    key = fields.get("key")
    return CaseData(
        key=check_key(key) if key not in (None, "") else default_key(case_input),
        input=case_input,
        expected=fields.get("expected"),
        tags=check_tags(fields.get("tags")),
        assertions=check_assertions(fields.get("assertions")),
        source=source,
    )


# Datasets and versions


def create_dataset(
    name: str, description: str = "", assertions: Any = None, cases: Sequence[CaseData] = ()
) -> Dataset:
    """A dataset whose version 1 holds `cases`. `golden-*` names are the shipped suites'
    (evals/golden.py makes those); DatasetInputError (409) when the name is taken."""
    if name.startswith(GOLDEN_PREFIX):
        raise DatasetInputError(
            f"`{GOLDEN_PREFIX}*` names are the shipped suites'.", param="name", code="reserved_name"
        )
    return store_dataset(name, description, check_assertions(assertions), cases)


def store_dataset(
    name: str, description: str, assertions: list[dict[str, Any]], cases: Sequence[CaseData]
) -> Dataset:
    check_unique_keys(cases)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(name=name, description=description)
            version = DatasetVersion.objects.create(dataset=dataset, version=1, assertions=assertions)
            store_cases(version, cases, 1)
    except IntegrityError:
        raise DatasetInputError(
            f"A dataset named `{name}` exists.", param="name", code="name_taken", status=409
        ) from None
    return dataset


def update_dataset(dataset: Dataset, changes: Mapping[str, Any], api_key_id: int | None = None) -> Dataset:
    """The description and the nightly run's settings (part of no version). Naming a
    nightly model makes `api_key_id` the key the nightly runs are billed to."""
    fields = dict(changes)
    if fields.get("alert_webhook_url"):
        check_webhook_url(fields["alert_webhook_url"])
    if "nightly_model" in fields:
        fields["nightly_api_key_id"] = api_key_id if fields["nightly_model"] else None
    for name, value in fields.items():
        setattr(dataset, name, value)
    dataset.save(update_fields=[*fields, "updated_at"])
    return dataset


def check_webhook_url(url: str) -> None:
    try:
        outbound.check_url(url, current_outbound_policy(settings.EVALS_ALERT_ALLOWED_HOSTS))
    except outbound.ForbiddenTargetError as error:
        raise DatasetInputError(str(error), param="alert_webhook_url") from None


def delete_dataset(dataset: Dataset) -> None:
    """The dataset with its versions, experiments and results; refused (409) while one of
    its experiments is queued or running."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        experiments = Experiment.objects.filter(version__dataset=dataset)
        if experiments.filter(status__in=ACTIVE_EXPERIMENT_STATUSES).exists():
            raise DatasetInputError(
                "An experiment on this dataset is running: cancel it first.", code="in_use", status=409
            )
        CaseResult.objects.filter(experiment__in=experiments).delete()
        experiments.delete()
        dataset.delete()


def latest_version(dataset: Dataset) -> DatasetVersion:
    version = DatasetVersion.objects.filter(dataset=dataset).order_by("-version").first()
    if version is None:
        raise DatasetInputError("The dataset has no version.", code="no_version", status=409)
    return version


def new_version(dataset: Dataset, assertions: Any = None) -> DatasetVersion:
    """Version N+1 with the latest version's cases, and `assertions` when given
    (the latest's otherwise)."""
    version_assertions = None if assertions is None else check_assertions(assertions)
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        version = copy_version(latest_version(dataset))
        if version_assertions is not None:
            version.assertions = version_assertions
            version.save(update_fields=["assertions"])
    return version


def copy_version(version: DatasetVersion) -> DatasetVersion:
    copy = DatasetVersion.objects.create(
        dataset=version.dataset, version=version.version + 1, assertions=version.assertions
    )
    Case.objects.bulk_create(
        Case(
            version=copy,
            key=case.key,
            position=case.position,
            input=case.input,
            expected=case.expected,
            assertions=case.assertions,
            tags=case.tags,
            source=case.source,
        )
        for case in version.cases.all()
    )
    return copy


def edit(dataset: Dataset, change: Callable[[DatasetVersion], T]) -> T:
    """`change` applied to the latest version, or to a copy of it when it is locked."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        version = DatasetVersion.objects.select_for_update().get(pk=latest_version(dataset).pk)
        if version.locked_at is not None:
            version = copy_version(version)
        result = change(version)
        dataset.save(update_fields=["updated_at"])
        return result


# Cases


def add_cases(dataset: Dataset, cases: Sequence[CaseData]) -> DatasetVersion:
    """The cases appended to the latest version (copied first if locked); a key it
    already has is refused (409)."""

    def append(version: DatasetVersion) -> DatasetVersion:
        taken = set(version.cases.filter(key__in=[case.key for case in cases]).values_list("key", flat=True))
        if taken:
            raise DatasetInputError(
                f"The dataset has a case with key `{sorted(taken)[0]}`.",
                param="key",
                code="key_taken",
                status=409,
            )
        store_cases(version, cases, next_position(version))
        return version

    check_unique_keys(cases)
    return edit(dataset, append)


def replace_cases(dataset: Dataset, cases: Sequence[CaseData]) -> DatasetVersion:
    """The latest version (copied first if locked) holding exactly `cases`."""

    def replace(version: DatasetVersion) -> DatasetVersion:
        version.cases.all().delete()
        store_cases(version, cases, 1)
        return version

    check_unique_keys(cases)
    return edit(dataset, replace)


def update_case(dataset: Dataset, key: str, changes: Mapping[str, Any]) -> Case:
    """The case with `key` in the latest version, changed (in a new version if that one is locked)."""
    for name, value in changes.items():
        check_storable(name, value)
    checked = {
        name: checker(changes[name])
        for name, checker in (
            ("input", check_input),
            ("tags", check_tags),
            ("assertions", check_assertions),
            ("expected", lambda value: value),
        )
        if name in changes
    }

    def change(version: DatasetVersion) -> Case:
        case = case_of(version, key)
        for name, value in checked.items():
            setattr(case, name, value)
        case.save(update_fields=list(checked))
        return case

    return edit(dataset, change)


def delete_case(dataset: Dataset, key: str) -> DatasetVersion:
    """The latest version without the case `key` (a new version if that one is locked)."""

    def remove(version: DatasetVersion) -> DatasetVersion:
        case_of(version, key).delete()
        return version

    return edit(dataset, remove)


def case_of(version: DatasetVersion, key: str) -> Case:
    case = version.cases.filter(key=key).first()
    if case is None:
        raise DatasetInputError(f"No case with key `{key}`.", param="key", code="not_found", status=404)
    return case


def next_position(version: DatasetVersion) -> int:
    highest: int | None = version.cases.aggregate(highest=Max("position"))["highest"]
    return (highest or 0) + 1


def check_unique_keys(cases: Sequence[CaseData]) -> None:
    seen: set[str] = set()
    for index, case in enumerate(cases, 1):
        if case.key in seen:
            raise DatasetInputError(f"case {index}: the key `{case.key}` is given twice", param="key")
        seen.add(case.key)


def store_cases(version: DatasetVersion, cases: Sequence[CaseData], first_position: int) -> None:
    if version.cases.count() + len(cases) > settings.EVALS_MAX_CASES_PER_VERSION:
        raise DatasetInputError(
            f"A version holds at most {settings.EVALS_MAX_CASES_PER_VERSION} cases.", code="too_many_cases"
        )
    Case.objects.bulk_create(
        Case(
            version=version,
            key=case.key,
            position=position,
            input=case.input,
            expected=case.expected,
            tags=case.tags,
            assertions=case.assertions,
            source=case.source,
        )
        for position, case in enumerate(cases, first_position)
    )


# Import and export


def parse_file(content: bytes, file_format: FileFormat) -> list[CaseData]:
    """The cases of a JSONL or CSV file; DatasetInputError naming the first bad line."""
    if len(content) > settings.EVALS_IMPORT_MAX_BYTES:
        raise DatasetInputError(
            f"The file exceeds {settings.EVALS_IMPORT_MAX_BYTES} bytes.", param="file", code="file_too_large"
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetInputError("The file is not UTF-8 text.", param="file", code="invalid_file") from None
    rows = jsonl_rows(text) if file_format == FileFormat.JSONL else csv_rows(text)
    cases: list[CaseData] = []
    for line, fields in rows:
        if len(cases) == settings.EVALS_MAX_CASES_PER_VERSION:
            raise line_error(line, f"more than {settings.EVALS_MAX_CASES_PER_VERSION} cases")
        try:
            cases.append(case_from_fields(fields))
        except DatasetInputError as error:
            raise line_error(
                line, f"{error.param}: {error.message}" if error.param else error.message
            ) from None
    if not cases:
        raise DatasetInputError("The file has no cases.", param="file", code="empty_file")
    check_unique_lines(cases, [line for line, _ in rows])
    return cases


def line_error(line: int, message: str) -> DatasetInputError:
    return DatasetInputError(f"line {line}: {message}", param="file", code="invalid_line")


def jsonl_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as error:
            raise line_error(number, f"not JSON ({error.msg})") from None
        except RecursionError:
            raise line_error(number, "JSON nested too deeply") from None
        if not isinstance(fields, dict):
            raise line_error(number, "not a JSON object")
        rows.append((number, fields))
    return rows


def csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
        unknown = [name for name in header if name not in FIELDS]
        if unknown or "input" not in header:
            raise line_error(1, f"the header must name input and at most {', '.join(FIELDS)}")
        return list(csv_records(reader))
    except csv.Error as error:
        raise line_error(max(reader.line_num, 1), f"not CSV ({error})") from None


def csv_records(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    start = reader.line_num + 1
    for record in reader:
        if None in record:
            raise line_error(start, "more cells than the header names")
        yield start, csv_fields(start, record)
        start = reader.line_num + 1


def csv_fields(line: int, record: Mapping[str, str | None]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, cell in record.items():
        if cell is None or cell == "":
            continue
        if name == "tags":
            fields[name] = [tag.strip() for tag in cell.split(TAG_SEPARATOR) if tag.strip()]
        elif name == "expected":
            fields[name] = json_or_text(cell)
        elif name in ("input", "assertions"):
            fields[name] = json_cell(line, name, cell)
        else:
            fields[name] = cell
    return fields


def json_cell(line: int, name: str, cell: str) -> Any:
    try:
        return json.loads(cell)
    except RecursionError:
        raise line_error(line, f"{name}: JSON nested too deeply") from None
    except ValueError:
        if name == "input":
            return cell  # plain text: one user message
        raise line_error(line, f"{name}: not JSON") from None


def json_or_text(cell: str) -> Any:
    try:
        return json.loads(cell)
    except (ValueError, RecursionError):
        return cell


def check_unique_lines(cases: Sequence[CaseData], lines: Sequence[int]) -> None:
    first_line: dict[str, int] = {}
    for case, line in zip(cases, lines, strict=True):
        if case.key in first_line:
            raise line_error(line, f"the key `{case.key}` is also on line {first_line[case.key]}")
        first_line[case.key] = line


def import_cases(
    dataset: Dataset, content: bytes, file_format: FileFormat, mode: ImportMode
) -> DatasetVersion:
    cases = parse_file(content, file_format)
    if mode == ImportMode.REPLACE:
        return replace_cases(dataset, cases)
    return add_cases(dataset, cases)


def export_cases(version: DatasetVersion, file_format: FileFormat) -> str:
    """The version's cases as a file `import_cases` reads back to the same cases."""
    cases = version.cases.order_by("position")
    if file_format == FileFormat.JSONL:
        return "".join(json.dumps(exported(case), ensure_ascii=False) + "\n" for case in cases)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_exported(case) for case in cases)
    return buffer.getvalue()


def exported(case: Case) -> dict[str, Any]:
    return {
        "key": case.key,
        "input": case.input,
        "expected": case.expected,
        "tags": case.tags,
        "assertions": case.assertions,
    }


def csv_exported(case: Case) -> dict[str, str]:
    return {
        "key": case.key,
        "input": json.dumps(case.input, ensure_ascii=False),
        "expected": "" if case.expected is None else json.dumps(case.expected, ensure_ascii=False),
        "tags": TAG_SEPARATOR.join(case.tags),
        "assertions": json.dumps(case.assertions, ensure_ascii=False) if case.assertions else "",
    }


# Cases from real traffic


def cases_from_request_logs(request_ids: Iterable[str]) -> list[CaseData]:
    """One case per logged chat request: its messages as input, its answer as `expected`
    (a reference to compare with, not an assertion). Only requests whose content was
    logged whole (request logging on, status 200, neither side cut) qualify."""
    wanted = list(dict.fromkeys(request_ids))
    logs = {log.request_id: log for log in RequestLog.objects.filter(request_id__in=wanted)}
    cases = []
    for request_id in wanted:
        log = logs.get(request_id)
        if log is None:
            raise DatasetInputError(
                f"No logged request `{request_id}` (is request logging on?).", param="request_ids"
            )
        cases.append(case_from_request_log(log))
    return cases


def case_from_request_log(log: RequestLog) -> CaseData:
    messages = log.request_body.get("messages")
    if log.status != 200 or log.request_body.get("truncated") or not isinstance(messages, list):
        raise DatasetInputError(
            f"The request `{log.request_id}` is not a logged, successful chat request.",
            param="request_ids",
        )
    cut = TRUNCATION_MARKER.split("{", 1)[0]
    return CaseData(
        key=log_key(log.request_id),
        input=check_input({"messages": messages}),
        expected=None if cut in log.response_text else log.response_text,
        tags=["from-request-log"],
        source=f"request:{log.request_id}",
    )


def log_key(request_id: str) -> str:
    if KEY_PATTERN.fullmatch(request_id):
        return request_id
    return f"request-{hashlib.sha256(request_id.encode()).hexdigest()[:16]}"


def cases_from_runs(run_ids: Iterable[int]) -> list[CaseData]:
    """One case per succeeded agent run: its input as the agent input, its output as `expected`."""
    wanted = list(dict.fromkeys(run_ids))
    runs = {run.pk: run for run in Run.objects.filter(pk__in=wanted)}
    cases = []
    for run_id in wanted:
        run = runs.get(run_id)
        if run is None or run.status != RunStatus.SUCCEEDED:
            raise DatasetInputError(f"No succeeded run {run_id}.", param="run_ids")
        cases.append(
            CaseData(
                key=f"run-{run.pk}",
                input={"agent_input": run.input},
                expected=run.output,
                tags=["from-run", f"agent:{run.agent_name}"[:MAX_TAG_LENGTH]],
                source=f"run:{run.pk}",
            )
        )
    return cases


# Reads


def datasets_list() -> QuerySet[Dataset]:
    """Datasets with their latest version's number, lock and case count."""
    latest = DatasetVersion.objects.filter(dataset=OuterRef("pk")).order_by("-version")
    return Dataset.objects.annotate(
        latest_version=Subquery(latest.values("version")[:1]),
        latest_locked_at=Subquery(latest.values("locked_at")[:1]),
        case_count=Subquery(latest.annotate(cases_n=Count("cases")).values("cases_n")[:1]),
    )


def versions_list(dataset: Dataset) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(dataset=dataset).annotate(case_count=Count("cases"))


def version_of(dataset: Dataset, number: int | None) -> DatasetVersion:
    """The version `number` of the dataset, its latest when None; DatasetInputError (404) if none."""
    if number is None:
        return latest_version(dataset)
    version = DatasetVersion.objects.filter(dataset=dataset, version=number).first()
    if version is None:
        raise DatasetInputError(f"No version {number}.", param="version", code="not_found", status=404)
    return version
