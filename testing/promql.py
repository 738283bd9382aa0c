"""The operator files in deploy/observability/ as the tests read them: the Prometheus
rules, the Grafana dashboards, the PromQL each holds, the series names that PromQL
reads, and promtool (skipping, with a message, where it is not installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "observability"
RULES = sorted((DEPLOY / "rules").glob("*.yaml"))
RULE_TESTS = sorted((DEPLOY / "tests").glob("*.yaml"))
DASHBOARDS = sorted((DEPLOY / "dashboards").glob("*.json"))
RUNBOOKS = DEPLOY.parent.parent / "docs" / "runbooks"
# What Grafana substitutes before Prometheus sees an expression.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")  # a name, or a call
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan"}
)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # the alert's or the recorded series'
    kind: str  # "alert" or "record"
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]


def rules() -> list[Rule]:
    return [
        Rule(
            name=rule.get("alert") or rule["record"],
            kind="alert" if "alert" in rule else "record",
            expr=rule["expr"],
            labels=rule.get("labels", {}),
            annotations=rule.get("annotations", {}),
        )
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def dashboard_expressions(board: dict[str, Any]) -> list[str]:
    """Every query of every panel, with Grafana's variables as Prometheus would get them."""
    expressions = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    return [grafana_substituted(expression) for expression in expressions]


def grafana_substituted(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def series_names(expression: str) -> set[str]:
    """The metric and recorded-series names a PromQL expression selects: what is left
    once strings, label matchers, ranges, groupings, functions and keywords are taken out."""
    for pattern in (_STRINGS, _MATCHERS, _RANGES, _GROUPINGS):
        expression = pattern.sub(" ", expression)
    return {
        name for name, call in _IDENTIFIER.findall(expression) if not call and name.lower() not in _KEYWORDS
    }


def promtool(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    if executable is None:
        pytest.skip("promtool is not installed (apt-get install -y prometheus; .ci/run installs it)")
    return subprocess.run(  # noqa: S603 (promtool, found on PATH, with our own files)
        [executable, *map(str, arguments)], capture_output=True, text=True, timeout=600, check=False
    )
