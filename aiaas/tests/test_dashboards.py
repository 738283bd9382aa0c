"""The Grafana dashboards in deploy/observability/dashboards/: valid JSON that Grafana
can import, one per area the operators watch, whose queries promtool parses and read
only series the platform exports (or the rules record)."""

from __future__ import annotations

import yaml

from aiaas.observability.metrics import exposed_names
from testing.promql import DASHBOARDS, dashboard, dashboard_expressions, promtool, rules, series_names

AREAS = {"gateway", "router", "billing-pipeline", "celery", "realtime"}


def test_there_is_a_dashboard_per_area() -> None:
    assert {path.stem for path in DASHBOARDS} == AREAS


def test_each_dashboard_is_importable_with_unique_ids() -> None:
    uids = set()
    for path in DASHBOARDS:
        board = dashboard(path)
        ids = [panel["id"] for panel in board["panels"]]

        assert board["title"]
        assert board["uid"] == f"aiaas-{path.stem}"
        assert len(ids) == len(set(ids)), path.name
        assert dashboard_expressions(board), path.name
        uids.add(board["uid"])
    assert len(uids) == len(DASHBOARDS)


def test_each_panel_queries_the_templated_prometheus_datasource() -> None:
    for path in DASHBOARDS:
        for panel in dashboard(path)["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_no_two_panels_overlap() -> None:
    for path in DASHBOARDS:
        cells: set[tuple[int, int]] = set()
        for panel in dashboard(path)["panels"]:
            grid = panel["gridPos"]
            area = {
                (grid["x"] + column, grid["y"] + row)
                for column in range(grid["w"])
                for row in range(grid["h"])
            }

            assert grid["x"] + grid["w"] <= 24, (path.name, panel["title"])
            assert not area & cells, (path.name, panel["title"])
            cells |= area


def test_the_dashboards_read_only_series_the_platform_exports_or_records() -> None:
    known = exposed_names() | {rule.name for rule in rules() if rule.kind == "record"}

    for path in DASHBOARDS:
        for expression in dashboard_expressions(dashboard(path)):
            assert series_names(expression), expression
            assert series_names(expression) <= known, (path.name, expression)


def test_promtool_parses_every_dashboard_query(tmp_path) -> None:
    expressions = [expression for path in DASHBOARDS for expression in dashboard_expressions(dashboard(path))]
    as_rules = [
        {"record": f"dashboard:query:{index}", "expr": expr} for index, expr in enumerate(expressions)
    ]
    file = tmp_path / "dashboards.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": as_rules}]}))

    result = promtool("check", "rules", file)

    assert result.returncode == 0, result.stdout + result.stderr
