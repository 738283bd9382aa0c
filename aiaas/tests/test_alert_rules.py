"""The Prometheus rules in deploy/observability/: valid for promtool, their unit tests
(each SLO alert firing and not firing) passing, every series they read exported by
the platform, and every alert linked to its runbook."""

from __future__ import annotations

import re

from aiaas.observability.metrics import OVERHEAD_BUCKETS, exposed_names
from testing.promql import RULE_TESTS, RULES, RUNBOOKS, promtool, rules, series_names

SLO_ALERTS = {"V1AvailabilityBudgetBurn", "V1OverheadBudgetBurn"}
# (long window, short window, burn rate, severity): Google's SRE workbook, chapter 5.
BURN_WINDOWS = {
    ("1h", "5m", "14.4", "page"),
    ("6h", "30m", "6", "page"),
    ("1d", "2h", "3", "ticket"),
    ("3d", "6h", "1", "ticket"),
}


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", *RULES)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", *RULE_TESTS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_has_a_unit_test() -> None:
    tested = {name for path in RULE_TESTS for name in re.findall(r"alertname: (\w+)", path.read_text())}

    assert {rule.name for rule in rules() if rule.kind == "alert"} == tested


def test_each_slo_alerts_on_the_four_window_pairs_of_the_workbook() -> None:
    for alert in SLO_ALERTS:
        pairs = {
            tuple(rule.labels[label] for label in ("long_window", "short_window", "burn_rate", "severity"))
            for rule in rules()
            if rule.name == alert
        }

        assert pairs == BURN_WINDOWS, alert


def test_the_overhead_slo_threshold_is_a_bucket_bound() -> None:
    overhead_rules = [rule for rule in rules() if "aiaas_gateway_overhead_seconds_bucket" in rule.expr]

    assert overhead_rules
    for rule in overhead_rules:
        assert {float(bound) for bound in re.findall(r'le="([^"]+)"', rule.expr)} <= set(OVERHEAD_BUCKETS)


def test_the_rules_read_only_series_the_platform_exports_or_records() -> None:
    recorded = {rule.name for rule in rules() if rule.kind == "record"}

    for rule in rules():
        assert series_names(rule.expr), rule.name
        assert series_names(rule.expr) <= exposed_names() | recorded, rule.name


def test_every_alert_links_its_runbook_and_every_runbook_has_an_alert() -> None:
    alerts = {rule.name for rule in rules() if rule.kind == "alert"}

    for rule in rules():
        if rule.kind == "alert":
            assert rule.annotations["runbook_url"] == f"docs/runbooks/{rule.name}.md"
            assert set(rule.annotations) == {"summary", "description", "runbook_url"}
    assert {path.stem for path in RUNBOOKS.glob("*.md")} == alerts


def test_series_names_leaves_out_labels_functions_and_keywords() -> None:
    expression = (
        'sum by (le, route) (rate(a_bucket{route="/v1/{x}",le="0.01"}[5m])) '
        "/ on () group_left b:recorded:ratio and ignoring (tier) c_total offset 1h > 1e3"
    )

    assert series_names(expression) == {"a_bucket", "b:recorded:ratio", "c_total"}
