"""Every Prometheus metric the platform exports, defined once (docs/observability.md).

prometheus_client keeps the values: in this process's default registry, or, when
PROMETHEUS_MULTIPROC_DIR is set before the first import of prometheus_client
(the launcher sets it), in files there that every process of the host shares,
so one scrape sums the uvicorn workers and Celery processes (exposition.py).
A gauge says how its processes' values combine (`multiprocess_mode`).

Labels are bounded sets (routes, models, tiers, kinds, queues); a tenant id is
never a label: tenant figures belong to analytics.
"""

from __future__ import annotations

import functools
from typing import TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

# Upper bounds in seconds. The overhead SLO is "99% under 10 ms": 0.01 is a bound.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
DECISION_MS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

HTTP_REQUESTS = Counter(
    "aiaas_http_requests_total",
    "HTTP requests answered, by route template and status class (2xx..5xx).",
    ["route", "method", "status_class"],
)
HTTP_REQUEST_DURATION = Histogram(
    "aiaas_http_request_duration_seconds",
    "From the request's arrival to its response's last byte.",
    ["route", "method"],
    buckets=REQUEST_BUCKETS,
)
GATEWAY_OVERHEAD = Histogram(
    "aiaas_gateway_overhead_seconds",
    "The gateway's own time per model request: its duration minus time waiting on providers.",
    ["endpoint"],
    buckets=OVERHEAD_BUCKETS,
)
GATEWAY_UNMETERED_REQUESTS = Counter(
    "aiaas_gateway_unmetered_requests_total",
    "/v1 requests that reached no model (refused before admission, or served without one).",
    ["status", "error_type"],
)
UPSTREAM_LATENCY = Histogram(
    "aiaas_upstream_latency_seconds",
    "Time a model request spent waiting on providers, by the model that served it.",
    ["model", "tier"],
    buckets=UPSTREAM_BUCKETS,
)
TTFT = Histogram(
    "aiaas_ttft_seconds",
    "Time to the first streamed token, from the request's arrival.",
    ["model", "tier"],
    buckets=TTFT_BUCKETS,
)
TOKENS = Counter(
    "aiaas_tokens_total",
    "Tokens billed, by model, tier and kind (prompt or completion).",
    ["model", "tier", "kind"],
)
ROUTER_DECISION_LATENCY = Histogram(
    "aiaas_router_decision_latency_ms",
    "Time the learned router took to choose a first tier, in milliseconds.",
    buckets=DECISION_MS_BUCKETS,
)
ROUTER_DECISIONS = Counter(
    "aiaas_router_decisions_total",
    "Requests to `auto`, by the tier the router chose first.",
    ["tier"],
)
ROUTER_ESCALATIONS = Counter(
    "aiaas_router_escalations_total",
    "Routed requests served by another tier than the one chosen first (misroutes).",
    ["from_tier", "to_tier"],
)
ROUTER_EXPECTED_COST = Counter(
    "aiaas_router_expected_cost_usd_total",
    "What the router expected its routed requests to cost, in USD.",
)
ROUTER_ACTUAL_COST = Counter(
    "aiaas_router_actual_cost_usd_total",
    "What its routed requests cost, in USD.",
)
LIMITER_DECISIONS = Counter(
    "aiaas_limiter_decisions_total",
    "Limit and budget checks, by result (admitted or rejected) and the limit that refused.",
    ["result", "reason"],
)
CIRCUIT_BREAKER_STATE = Gauge(
    "aiaas_circuit_breaker_state",
    "The breaker last seen per provider model: 0 closed, 1 half-open, 2 open.",
    ["provider_model"],
    multiprocess_mode="mostrecent",
)
CIRCUIT_BREAKER_TRANSITIONS = Counter(
    "aiaas_circuit_breaker_transitions_total",
    "Breaker transitions seen by this platform's processes, by the state entered.",
    ["provider_model", "to_state"],
)
PROVIDER_ERRORS = Counter(
    "aiaas_provider_errors_total",
    "Failed provider attempts, by provider and failure kind.",
    ["provider", "kind"],
)
USAGE_STREAM_LENGTH = Gauge(
    "aiaas_usage_stream_length",
    "Usage events queued in Redis and not yet in the ledger.",
    multiprocess_mode="mostrecent",
)
USAGE_FLUSH_LAG = Gauge(
    "aiaas_usage_flush_lag_seconds",
    "Age of the oldest usage event not yet in the ledger (0 when none waits).",
    multiprocess_mode="mostrecent",
)
CELERY_QUEUE_LENGTH = Gauge(
    "aiaas_celery_queue_length",
    "Tasks waiting in each Celery queue.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
CELERY_TASK_DURATION = Histogram(
    "aiaas_celery_task_duration_seconds",
    "Celery task run time, by queue and task.",
    ["queue", "task"],
    buckets=TASK_BUCKETS,
)
CELERY_TASKS = Counter(
    "aiaas_celery_tasks_total",
    "Celery tasks finished, by queue, task and state (success, failure, retry).",
    ["queue", "task", "state"],
)
WEBSOCKET_CONNECTIONS = Gauge(
    "aiaas_websocket_connections",
    "Accepted WebSocket connections not yet closed.",
    multiprocess_mode="livesum",
)
WEBSOCKET_COALESCED_MESSAGES = Counter(
    "aiaas_websocket_coalesced_messages_total",
    "Chunk events merged into the one before them for a slow reader.",
)
WEBSOCKET_SEND_ERRORS = Counter(
    "aiaas_websocket_send_errors_total",
    "WebSocket sends that failed or stalled past REALTIME_STALLED_READER_SECONDS.",
)
INGESTION_DOCUMENTS = Counter(
    "aiaas_ingestion_documents_total",
    "Documents the ingestion pipeline finished, by final status (ready or failed).",
    ["status"],
)
EVAL_CASES = Counter(
    "aiaas_eval_cases_total",
    "Evaluation cases scored, by status.",
    ["status"],
)
ANALYTICS_ROLLUP_LAG = Gauge(
    "aiaas_analytics_rollup_lag_seconds",
    "How far the analytics rollups trail the usage ledger.",
    multiprocess_mode="mostrecent",
)

DEGRADE_LEVEL = Gauge(
    "aiaas_degrade_level",
    "The degrade level this process applies: 0 normal, 1 degraded, 2 critical (capacity/).",
    multiprocess_mode="mostrecent",
)
DEGRADE_CHANGES = Counter(
    "aiaas_degrade_changes_total",
    "Changes of the degrade level, by the level entered and who set it (auto or staff).",
    ["level", "source"],
)
DEGRADE_SIGNAL = Gauge(
    "aiaas_degrade_signal",
    "The signals the degrade evaluator last measured (capacity/signals.py).",
    ["signal"],
    multiprocess_mode="mostrecent",
)
SHED = Counter(
    "aiaas_shed_total",
    "Model requests refused with 503 by the degrade level, by level and key priority.",
    ["level", "priority"],
)

ALL_METRICS: tuple[MetricWrapperBase, ...] = tuple(
    value for value in dict(globals()).values() if isinstance(value, MetricWrapperBase)
)


def sample_names(metric: MetricWrapperBase) -> tuple[str, ...]:
    """The series names a metric is exposed under (what PromQL names)."""
    (family,) = metric.describe()  # named without a counter's _total suffix
    name, kind = family.name, family.type
    if kind == "counter":
        return (f"{name}_total",)
    if kind == "histogram":
        return (f"{name}_bucket", f"{name}_sum", f"{name}_count")
    return (name,)


def exposed_names() -> set[str]:
    """Every series name the platform exports (dashboards and rules may use only these)."""
    return {name for metric in ALL_METRICS for name in sample_names(metric)}


Metric = TypeVar("Metric", bound=MetricWrapperBase)


def series(metric: Metric, *values: str) -> Metric:
    """`metric.labels(*values)`, kept once made: prometheus_client's lookup costs
    microseconds per call on the request path, and every label set here is bounded."""
    return cast("Metric", _series(metric, *values))


@functools.cache
def _series(metric: MetricWrapperBase, *values: str) -> MetricWrapperBase:
    return metric.labels(*values)


def status_class(status: int) -> str:
    return f"{status // 100}xx"
