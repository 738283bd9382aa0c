"""The SVG chart of bench/tenants.py's JSON: provisioning seconds per tenant
against the tenants existing (log scale), and request latency (p50) at each
checkpoint. Plain SVG text, no plotting library."""

from __future__ import annotations

import math
from html import escape
from statistics import median
from typing import Any

WIDTH, HEIGHT = 860, 340
PANEL_WIDTH, PANEL_HEIGHT = 340, 230
LEFT, TOP = 70, 50
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
LATENCY_LABELS = {
    "chat_one_tenant": "/v1 chat, one tenant",
    "chat_many_tenants": "/v1 chat, many tenants",
    "api_many_tenants": "/api read, many tenants",
    "dashboard_one_tenant": "dashboard overview",
}


def log_x(value: float, lowest: float, highest: float) -> float:
    span = math.log10(highest) - math.log10(lowest) or 1.0
    return (math.log10(max(value, lowest)) - math.log10(lowest)) / span * PANEL_WIDTH


def panel(
    origin_x: int,
    title: str,
    y_label: str,
    series: list[tuple[str, list[tuple[float, float]]]],
    lowest: float,
    highest: float,
) -> list[str]:
    top = max((y for _, points in series for _, y in points), default=1.0) * 1.15 or 1.0
    parts = [
        f'<g transform="translate({origin_x},{TOP})">',
        f'<text x="{PANEL_WIDTH / 2}" y="-22" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<line x1="0" y1="{PANEL_HEIGHT}" x2="{PANEL_WIDTH}" y2="{PANEL_HEIGHT}" stroke="#333"/>',
        f'<line x1="0" y1="0" x2="0" y2="{PANEL_HEIGHT}" stroke="#333"/>',
        f'<text x="{PANEL_WIDTH / 2}" y="{PANEL_HEIGHT + 34}" text-anchor="middle">'
        "tenants existing (log)</text>",
        f'<text transform="translate(-48,{PANEL_HEIGHT / 2}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>",
    ]
    decade = 10 ** math.floor(math.log10(lowest))
    while decade <= highest:
        if decade >= lowest:
            x = log_x(decade, lowest, highest)
            parts.append(
                f'<text x="{x:.1f}" y="{PANEL_HEIGHT + 16}" text-anchor="middle" font-size="11">'
                f"{decade:,.0f}</text>"
            )
        decade *= 10
    for fraction in (0.25, 0.5, 0.75, 1.0):
        y = PANEL_HEIGHT - fraction * PANEL_HEIGHT
        parts.append(f'<line x1="0" y1="{y:.1f}" x2="{PANEL_WIDTH}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="-6" y="{y + 4:.1f}" text-anchor="end" font-size="11">{top * fraction:.3g}</text>'
        )
    for index, (label, points) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        xy = [(log_x(x, lowest, highest), PANEL_HEIGHT - y / top * PANEL_HEIGHT) for x, y in sorted(points)]
        if len(xy) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in xy)
        parts.append(
            f'<text x="{PANEL_WIDTH - 4}" y="{14 + 14 * index}" text-anchor="end" font-size="11" '
            f'fill="{colour}">{escape(label)}</text>'
        )
    parts.append("</g>")
    return parts


def draw(result: dict[str, Any]) -> str:
    checkpoints = result["checkpoints"]
    counts = [point["tenants"] for point in checkpoints]
    batch_points = [(b["existing"] + b["tenants"], b["per_tenant"]) for b in result["batches"]]
    highest = max([*counts, *(x for x, _ in batch_points), 10])
    lowest = max(1, min([*counts, *(x for x, _ in batch_points), 10]))
    provisioning = [
        ("batch (dump replayed), per tenant", batch_points),
        (
            "provision_tenant (clone_schema), median",
            [(point["tenants"], median(point["single_provision_seconds"])) for point in checkpoints],
        ),
    ]
    latency = [
        (label, [(point["tenants"], point["latency"][key]["p50_ms"]) for point in checkpoints])
        for key, label in LATENCY_LABELS.items()
    ]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        *panel(LEFT, "Provisioning", "seconds per tenant", provisioning, lowest, highest),
        *panel(LEFT + PANEL_WIDTH + 90, "Request latency (p50)", "milliseconds", latency, lowest, highest),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
