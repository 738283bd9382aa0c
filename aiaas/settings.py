"""Settings, read from the environment with django-environ.

DATABASE_URL and REDIS_URL are required; `make run` / `make test` set them to
embedded servers when they are unset (see aiaas/embedded.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import csp.constants as csp
import environ
from django.core.exceptions import ImproperlyConfigured
from kombu.entity import Exchange, Queue

from aiaas import profiles, queues
from aiaas.embedded import default_data_dir
from aiaas.logs import logging_config
from aiaas.proxies import trusted_networks
from aiaas.redis_clients import celery_redis, channel_layer_host
from aiaas.secret_keys import development_secret_key
from aiaas.sentry import init_sentry

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)

# The environment's defaults (aiaas/profiles.py, docs/profiles.md); unset: production.
AIAAS_PROFILE = profiles.profile_named(env.str("AIAAS_PROFILE", default=profiles.Profile.PRODUCTION))
PROFILE_DEFAULTS = profiles.DEFAULTS[AIAAS_PROFILE]
DEBUG = env.bool("DEBUG", default=PROFILE_DEFAULTS.debug)
# No key in the repository: with DEBUG on, a random one kept under the data folder (aiaas/secret_keys.py).
SECRET_KEY = env.str("SECRET_KEY", default="") or (
    development_secret_key(default_data_dir()) if DEBUG else ""
)
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is required when DEBUG is off. Set it to a long random string: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )
# Comma-separated keys SECRET_KEY replaced: what they signed or sealed still opens
# (sessions, login links, idempotency bodies); new material uses SECRET_KEY (docs/deploy.md).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

# Tenants live at <slug>.<BASE_DOMAIN>; the public site and admin at BASE_DOMAIN.
BASE_DOMAIN = env.str("BASE_DOMAIN", default="localhost").lower()
ALLOWED_HOSTS = [BASE_DOMAIN, f".{BASE_DOMAIN}", *env.list("EXTRA_ALLOWED_HOSTS", default=[])]

SHARED_APPS = [
    # Before django_tenants: Django's own admin templates, not django-tenants' app list,
    # whose inline <style> and style attributes the Content-Security-Policy refuses (and the
    # admin lives on the public schema alone).
    "django.contrib.admin",
    "django_tenants",
    "tenants",
    "accounts",
    "billing",
    "routing",
    "analytics",
    "registry",
    "flags",
    "capacity",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
]
TENANT_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "accounts",
    "agents",
    "conversations",
    "ingestion",
    "batches",
    "evals",
    "request_logs",
    "registry",  # a tenant's own entries (prompts) in its schema (docs/decisions/0030)
]
INSTALLED_APPS = [
    *SHARED_APPS,
    *[app for app in TENANT_APPS if app not in SHARED_APPS],
    "realtime",
    "gateway",
    "aiaas",  # its system checks (aiaas/checks.py)
]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# New tenants clone this migrated schema instead of replaying every migration.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True

MIDDLEWARE = [
    "aiaas.middleware.LogContextMiddleware",
    "aiaas.middleware.HealthCheckMiddleware",
    "aiaas.middleware.RouteLabelMiddleware",
    # CORS preflights carry no key and no CSRF token: answered before either is asked for.
    "tenants.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Static files are served before the tenant is looked up: no database query each.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenants.middleware.TenantRoutingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aiaas.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "aiaas.urls_public"
API_URLCONF = "aiaas.urls_api"
# Paths served on any host; their tenant comes from the API key, never the host.
API_PATH_PREFIXES = ("/v1/", "/api/")
# How long a process keeps the set of origins any tenant allows (tenants/cors.py).
CORS_ORIGINS_CACHE_SECONDS = env.float("CORS_ORIGINS_CACHE_SECONDS", default=10.0)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["aiaas.formats"],  # the one date, number and JSON format
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "aiaas.asgi.application"

# Database connections (docs/decisions/0012): none kept between requests (under
# ASGI every request runs on a thread of its own, and persistent connections
# piled up one per dead thread), at most DATABASE_CONNECTIONS_PER_PROCESS open
# in a process at once, replaced when PostgreSQL dropped them. DATABASE_POOL=true
# uses psycopg's pool (the psycopg-pool package) instead, sized the same.
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["ENGINE"] = "aiaas.postgresql_backend"  # django-tenants' own, bounded
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
DATABASE_CONNECTIONS_PER_PROCESS = env.int("DATABASE_CONNECTIONS_PER_PROCESS", default=20)
# A request waiting longer than this for a connection fails (500 on Django, 503 on /readyz).
DATABASE_CONNECTION_WAIT_SECONDS = env.float("DATABASE_CONNECTION_WAIT_SECONDS", default=10.0)
# Behind PgBouncer in transaction mode (docs/scale.md): the tenant's search_path is set
# per transaction (SET LOCAL), and no server-side cursor outlives one.
DATABASE_TRANSACTION_POOLING = env.bool("DATABASE_TRANSACTION_POOLING", default=False)
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_TRANSACTION_POOLING
if env.bool("DATABASE_POOL", default=False):
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_CONNECTIONS_PER_PROCESS,
        "timeout": DATABASE_CONNECTION_WAIT_SECONDS,
        "max_idle": 60,
    }
# Analytics reads (analytics/routers.py) use their own alias: a replica when
# ANALYTICS_DATABASE_URL is set, else the primary with the same settings. Either
# way its sessions are read-only, so the analytics API cannot write. Tests point
# it at the test database (a mirror of default).
DATABASES["analytics"] = {
    **DATABASES["default"],
    **(env.db("ANALYTICS_DATABASE_URL") if env.str("ANALYTICS_DATABASE_URL", default="") else {}),
    "ENGINE": "aiaas.postgresql_backend",
    "OPTIONS": {
        **DATABASES["default"]["OPTIONS"],
        "options": "-c default_transaction_read_only=on",
    },
    "TEST": {"MIRROR": "default"},
}
DATABASE_ROUTERS = ["analytics.routers.AnalyticsReadRouter", "django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL")
# Redis roles (docs/scale.md): each may live on a server of its own, else on REDIS_URL.
# The Celery broker and results; the Django cache; limits, budgets and everything
# else the /v1 gateway reads or writes per request; realtime streams and the channel layer.
REDIS_BROKER_URL = env.str("REDIS_BROKER_URL", default=REDIS_URL)
REDIS_CACHE_URL = env.str("REDIS_CACHE_URL", default=REDIS_URL)
REDIS_LIMITS_URL = env.str("REDIS_LIMITS_URL", default=REDIS_URL)
REDIS_STREAMS_URL = env.str("REDIS_STREAMS_URL", default=REDIS_URL)
# A role's URL may name Redis Sentinel: redis+sentinel://host:26379[,host:26379]/master/db
# (ADR 0038; the broker's and the cache's, ADR 0050).
# Named connection pools (aiaas/redis_clients.py): size, timeouts and role per purpose.
REDIS_POOLS: dict[str, dict[str, int | float | str]] = {
    # Short reads and writes of web requests and tasks.
    "default": {"role": "default", "max_connections": 50, "socket_timeout": 5, "socket_connect_timeout": 5},
    # Fail fast where a request waits: idempotency claims, /api throttles, key revocations, plan changes
    # (published to the gateway's key cache, so on its server).
    "control": {"role": "limits", "max_connections": 50, "socket_timeout": 2, "socket_connect_timeout": 2},
    # The stream queue flushers (aiaas/stream_queue.py): the usage and request-log
    # streams the gateway appends to, so on its server.
    "queues": {"role": "limits", "max_connections": 20, "socket_timeout": 10, "socket_connect_timeout": 5},
    # The /v1 gateway's hot path: limits, breakers, usage events, router outcomes.
    "gateway": {
        "role": "limits",
        "max_connections": 200,
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
        "pool_timeout": 2,
    },
    # Realtime stream logs, stream tokens and open-socket counts (realtime/).
    "realtime": {"role": "streams", "max_connections": 200, "socket_timeout": 5, "socket_connect_timeout": 5},
}


CACHES = {
    "default": {
        # Django's RedisCache, whose LOCATION may also name a Sentinel (aiaas/redis_cache.py).
        "BACKEND": "aiaas.redis_cache.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "cache",
        # Every cache key carries the tenant's schema (django-tenants make_key).
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
    }
}

# Realtime (realtime/, docs/realtime.md): Channels over Redis, per-stream event
# logs with bounded retention, and each WebSocket's bounded send queue.
CHANNEL_LAYERS = {
    "default": {
        # Redis pub/sub: messages are pushed to each process over one subscribed
        # connection (no round trip per message); the stream logs, not the layer,
        # are what makes delivery gap-free (realtime/streams.py).
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [{**channel_layer_host(REDIS_STREAMS_URL), "max_connections": 2000}],
            "prefix": "asgi",
        },
    }
}
REALTIME_STREAM_MAX_EVENTS = env.int("REALTIME_STREAM_MAX_EVENTS", default=10_000)
REALTIME_STREAM_TTL_SECONDS = env.int("REALTIME_STREAM_TTL_SECONDS", default=3600)
REALTIME_EVENT_MAX_BYTES = 65_536
REALTIME_SEND_QUEUE_MESSAGES = 64
REALTIME_SEND_QUEUE_BYTES = 131_072
# A reader that takes none of our bytes for this long is closed with code 4008.
REALTIME_STALLED_READER_SECONDS = env.float("REALTIME_STALLED_READER_SECONDS", default=15.0)
REALTIME_STREAM_TOKEN_SECONDS = 60
# Open WebSockets a tenant may hold at once, across every process (realtime/connections.py).
REALTIME_MAX_SOCKETS_PER_TENANT = env.int("REALTIME_MAX_SOCKETS_PER_TENANT", default=2_000)

_celery_redis = celery_redis(REDIS_BROKER_URL)
CELERY_BROKER_URL = _celery_redis.url
CELERY_RESULT_BACKEND = _celery_redis.url
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = _celery_redis.transport_options
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Worker processes (or threads) of a worker started without --concurrency.
CELERY_WORKER_CONCURRENCY = env.int(
    "CELERY_WORKER_CONCURRENCY", default=PROFILE_DEFAULTS.celery_worker_concurrency
)
# A task whose worker died unacked is delivered again after this long (Redis has
# no connection-bound acks). Longer than any task runs (an agent run's default
# budget is 600 s); every task is idempotent, and a run holds a lock, so an early
# redelivery cannot repeat work.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **_celery_redis.transport_options,
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900),
}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Every task is time-limited: SoftTimeLimitExceeded is raised inside it, then its
# process is killed. Agent runs set theirs from the run's budget (up to 86,400 s).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=330)
# A worker child whose resident memory passes this (KiB) is replaced after its task.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=512_000)
# django-celery-beat's database scheduler, sending only while it holds a Redis lease
# (aiaas/beat.py): a standby beat cannot double-schedule, and takes over within the TTL.
CELERY_BEAT_SCHEDULER = "aiaas.beat:LeaderScheduler"
BEAT_LEADER_KEY = env.str("BEAT_LEADER_KEY", default="beat:leader")
BEAT_LEADER_TTL_SECONDS = env.float("BEAT_LEADER_TTL_SECONDS", default=30.0)
# A file beat touches on every tick, for a liveness probe to read (deploy/k8s); empty: none.
BEAT_HEARTBEAT_FILE = env.str("BEAT_HEARTBEAT_FILE", default="")
# `bootstrap --executor multiprocessing` (deploy/k8s's migrations Job): tenant schemas
# migrated this many at a time (django-tenants' setting).
TENANT_MULTIPROCESSING_MAX_PROCESSES = env.int("TENANT_MIGRATION_PROCESSES", default=4)
# Where the gateway keeps settlements Redis failed to take, until it does (gateway/spool.py):
# a local, persistent folder in production.
USAGE_SPOOL_DIR = env.path("USAGE_SPOOL_DIR", default=BASE_DIR / ".data" / "spool")
# The Redis stream /v1 usage events are queued on (billing/usage.py).
USAGE_STREAM = env.str("USAGE_STREAM", default="usage:events")
# The usage ledger's retention (billing/partitions.py, docs/decisions/0023): monthly
# partitions older than this many whole months are dropped (invoices need two years
# and a month). A request id is kept LEDGER_DEDUPE_DAYS for exactly-once inserts.
LEDGER_RETENTION_MONTHS = env.int("LEDGER_RETENTION_MONTHS", default=25)
LEDGER_PARTITIONS_AHEAD = env.int("LEDGER_PARTITIONS_AHEAD", default=2)
LEDGER_DEDUPE_DAYS = env.int("LEDGER_DEDUPE_DAYS", default=7)
# The ClickHouse analytics backend (analytics/backends/clickhouse.py, requirements/clickhouse.txt):
# http(s)://user:password@host:port, or chdb:///a/folder for ClickHouse in process.
CLICKHOUSE_URL = env.str("CLICKHOUSE_URL", default="")
CLICKHOUSE_DATABASE = env.str("CLICKHOUSE_DATABASE", default="analytics")
CELERY_BEAT_SCHEDULE = {
    # The usage ledger: queued events reach PostgreSQL within seconds (billing/usage.py).
    "flush-usage-events": {
        "task": "billing.flush_usage_events",
        "schedule": 2.0,
        # The database scheduler drops `expires`; a backlog must not pile up duplicate runs.
        "options": {"queue": "billing", "expire_seconds": 10},
    },
    # Request logs (request_logs/): queued prompts and outputs reach their tenant's schema.
    "flush-request-logs": {
        "task": "request_logs.flush",
        "schedule": 5.0,
        "options": {"queue": "default", "expire_seconds": 20},
    },
    # Each tenant's request logs older than its retention are deleted.
    "purge-request-logs": {
        "task": "request_logs.purge",
        "schedule": 3600.0,
        "options": {"queue": "default", "expire_seconds": 1800},
    },
    # The ledger's monthly partitions: created ahead, dropped past retention (billing/partitions.py).
    "maintain-ledger-partitions": {
        "task": "billing.maintain_ledger_partitions",
        "schedule": 6 * 3600.0,
        "options": {"queue": "billing", "expire_seconds": 3600},
    },
    # Router v2 (routing/router/): canaries judged, learned outcomes kept in PostgreSQL.
    "check-router-canaries": {
        "task": "routing.check_canaries",
        "schedule": 5.0,
        "options": {"queue": "default", "expire_seconds": 20},
    },
    # Queue depths in the metrics (aiaas/observability/celery.py), on the platform queue.
    "sample-queues": {
        "task": "observability.sample_queues",
        "schedule": 15.0,
        "options": {"queue": "billing", "expire_seconds": 15},
    },
    # The analytics read model (analytics/rollups.py) follows the ledger within seconds.
    "apply-analytics-rollups": {
        "task": "analytics.apply_rollups",
        "schedule": 2.0,
        "options": {"queue": "billing", "expire_seconds": 10},
    },
    "snapshot-router-outcomes": {
        "task": "routing.snapshot_outcomes",
        "schedule": 60.0,
        "options": {"queue": "default", "expire_seconds": 120},
    },
}
CELERY_TIMEZONE = "UTC"

# Degrade switches (capacity/, docs/degrade.md). Per signal and level: [enter, exit]
# thresholds (enter above exit: hysteresis); DEGRADE_THRESHOLDS (JSON) replaces a
# signal's entry. The level falls only after DEGRADE_MIN_DWELL_SECONDS at it.
DEGRADE_THRESHOLDS: dict[str, dict[str, list[float]]] = {
    "gateway_overhead_p95_ms": {"degraded": [50, 25], "critical": [250, 100]},
    "upstream_p95_ms": {"degraded": [10_000, 5_000], "critical": [30_000, 15_000]},
    "provider_error_rate": {"degraded": [0.10, 0.05], "critical": [0.30, 0.15]},
    "celery_queue_depth": {"degraded": [1_000, 300], "critical": [5_000, 2_000]},
    "redis_memory_ratio": {"degraded": [0.80, 0.70], "critical": [0.90, 0.85]},
    "usage_flush_lag_seconds": {"degraded": [120, 30], "critical": [600, 300]},
    **env.json("DEGRADE_THRESHOLDS", default={}),
}
DEGRADE_MIN_DWELL_SECONDS = env.float("DEGRADE_MIN_DWELL_SECONDS", default=60.0)
DEGRADE_EVALUATE_SECONDS = env.float("DEGRADE_EVALUATE_SECONDS", default=5.0)
# The window the latency signals' p95 is taken over.
DEGRADE_SIGNAL_WINDOW_SECONDS = env.int("DEGRADE_SIGNAL_WINDOW_SECONDS", default=60)
# What each level changes (capacity/levels.py, Effects); DEGRADE_EFFECTS (JSON) replaces a level's.
DEGRADE_EFFECTS: dict[str, dict[str, object]] = {
    "normal": {},
    "degraded": {
        "quality_target": 0.8,
        "max_tokens": 1024,
        "context_tokens": 8_000,
        "skip_optional_steps": True,
        "shed_priorities": ["low"],
        "pause_work": ["ingestion", "evals"],
    },
    "critical": {
        "quality_target": 0.5,
        "max_tokens": 256,
        "context_tokens": 2_000,
        "skip_optional_steps": True,
        "shed_priorities": ["low", "normal"],
        "pause_work": ["ingestion", "evals"],
    },
    **env.json("DEGRADE_EFFECTS", default={}),
}
# The runbook the staff capacity view links to.
DEGRADE_RUNBOOK_URL = env.str("DEGRADE_RUNBOOK_URL", default="docs/runbooks/DegradeLevelRaised.md")
# The Retry-After of a shed request, in seconds.
DEGRADE_SHED_RETRY_AFTER_SECONDS = env.int("DEGRADE_SHED_RETRY_AFTER_SECONDS", default=30)
CELERY_BEAT_SCHEDULE["evaluate-degrade-level"] = {
    "task": "capacity.evaluate",
    "schedule": DEGRADE_EVALUATE_SECONDS,
    "options": {"queue": "billing", "expire_seconds": DEGRADE_EVALUATE_SECONDS},
}

# Shared providers (docs/security.md): a tenant may hold at most this share of a
# provider's concurrent calls in a process, and count at most this share of a
# circuit breaker's failure threshold in its window.
PROVIDER_TENANT_SHARE = env.float("PROVIDER_TENANT_SHARE", default=0.5)
BREAKER_TENANT_SHARE = env.float("BREAKER_TENANT_SHARE", default=0.5)
# A provider's max_concurrent_calls holds across every gateway process (Redis leases,
# gateway/resilience/shared_bulkhead.py); false: per process only.
PROVIDER_SHARED_CONCURRENCY = env.bool("PROVIDER_SHARED_CONCURRENCY", default=True)
# Where a provider's credential may come from (staff name it on the provider): an
# environment variable with one of these prefixes, or a file inside one of these folders.
PROVIDER_CREDENTIAL_ENV_PREFIXES = env.list("PROVIDER_CREDENTIAL_ENV_PREFIXES", default=["AIAAS_PROVIDER_"])
PROVIDER_CREDENTIAL_DIRS = env.list("PROVIDER_CREDENTIAL_DIRS", default=["/run/secrets"])

# Agents (agents/, docs/decisions/0009).
AGENT_RUNS_QUEUE = queues.runs_queue(os.environ)
# Two kinds of worker (aiaas/queues.py; `make run` and docker/compose.yaml start
# each with `-Q`): platform work (the usage flush, meter pushes, webhooks) on
# CELERY_PLATFORM_QUEUES, and tenant workloads on CELERY_TENANT_QUEUES, so no
# tenant's runs can starve the ledger.
CELERY_TENANT_QUEUES = queues.tenant_queues(os.environ)
CELERY_PLATFORM_QUEUES = queues.PLATFORM_QUEUES
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in (*CELERY_TENANT_QUEUES, *CELERY_PLATFORM_QUEUES)
]
# An agent run's Celery time limits follow its budget (agents/services.py): the
# soft limit this long after `max_seconds`, the hard one this long after that.
AGENT_RUN_SOFT_LIMIT_MARGIN_SECONDS = 60
AGENT_RUN_HARD_LIMIT_MARGIN_SECONDS = 30
# Templates in specs (agents/templating.py): what one rendering may produce and take.
AGENT_TEMPLATE_MAX_OUTPUT_CHARACTERS = env.int("AGENT_TEMPLATE_MAX_OUTPUT_CHARACTERS", default=1_000_000)
AGENT_TEMPLATE_MAX_ITERATIONS = env.int("AGENT_TEMPLATE_MAX_ITERATIONS", default=100_000)
AGENT_TEMPLATE_MAX_SECONDS = env.float("AGENT_TEMPLATE_MAX_SECONDS", default=2.0)
# A run event's data as JSON, and a tool's response body, at most this many bytes.
AGENT_EVENT_MAX_BYTES = env.int("AGENT_EVENT_MAX_BYTES", default=256 * 1024)
AGENT_TOOL_RESPONSE_MAX_BYTES = env.int("AGENT_TOOL_RESPONSE_MAX_BYTES", default=128 * 1024)
# A run's live stream carries the data of its first AGENT_RUN_STREAM_MAX_EVENTS
# events, each's at most AGENT_RUN_STREAM_EVENT_MAX_BYTES; of others, a stub
# (`"truncated": true`; the events table and API keep everything). With the
# stream's REALTIME_STREAM_MAX_EVENTS, a run's retained stream is about 10 MB at most.
AGENT_RUN_STREAM_MAX_EVENTS = env.int("AGENT_RUN_STREAM_MAX_EVENTS", default=1_000)
AGENT_RUN_STREAM_EVENT_MAX_BYTES = env.int("AGENT_RUN_STREAM_EVENT_MAX_BYTES", default=8 * 1024)
# How long POST /api/v1/agents/{id}/runs with "wait": true waits for the run.
AGENT_RUN_WAIT_SECONDS = env.float("AGENT_RUN_WAIT_SECONDS", default=60.0)
AGENT_DEFAULT_BUDGET = {"max_steps": 200, "max_seconds": 600.0}
# An executor stamps its run's heartbeat every AGENT_RUN_HEARTBEAT_SECONDS; the sweeper
# (agents.sweep) resumes a `running` run whose heartbeat is older than AGENT_RUN_STALE_SECONDS,
# ending the sessions that still hold its lock (docs/agents.md).
AGENT_RUN_HEARTBEAT_SECONDS = env.float("AGENT_RUN_HEARTBEAT_SECONDS", default=15.0)
AGENT_RUN_STALE_SECONDS = env.float("AGENT_RUN_STALE_SECONDS", default=120.0)
# A run still `queued` this long lost its delivery: the sweeper sends it again.
AGENT_RUN_QUEUED_STALE_SECONDS = env.float("AGENT_RUN_QUEUED_STALE_SECONDS", default=600.0)
CELERY_BEAT_SCHEDULE["sweep-agent-runs"] = {
    "task": "agents.sweep",
    "schedule": 60.0,
    "options": {"queue": "default", "expire_seconds": 50},
}
# Tool manifests: directories of signed manifest files, and the Ed25519 public keys
# trusted to sign them ("key_id=<base64 raw key>,...").
AGENT_TOOL_MANIFEST_DIRS = env.list("AGENT_TOOL_MANIFEST_DIRS", default=[])
AGENT_TOOL_PUBLIC_KEYS = env.dict("AGENT_TOOL_PUBLIC_KEYS", default={})
# Outbound requests on a tenant's behalf (aiaas/outbound.py, ADR 0042): the ports a
# tenant or tool may name at most ("80", "1024-65535"), and the ports used when it names none.
OUTBOUND_PERMITTED_PORTS = env.list("OUTBOUND_PERMITTED_PORTS", default=["80", "443", "1024-65535"])
OUTBOUND_DEFAULT_PORTS = env.list("OUTBOUND_DEFAULT_PORTS", default=["80", "443"])
# Hosts tools may reach even when they resolve to private or loopback addresses.
AGENT_TOOL_ALLOWED_HOSTS = env.list("AGENT_TOOL_ALLOWED_HOSTS", default=[])
# The signed registry (registry/, docs/registry.md): trusted Ed25519 public keys
# ("key_id=<base64 raw key>,..."; AGENT_TOOL_PUBLIC_KEYS is trusted too), key ids
# refused even while listed, whether only signed and promoted entries run (unset:
# in the production profile only), and the key the platform signs tenants' prompts with.
REGISTRY_PUBLIC_KEYS = env.dict("REGISTRY_PUBLIC_KEYS", default={})
REGISTRY_RETIRED_KEYS = env.list("REGISTRY_RETIRED_KEYS", default=[])
REGISTRY_REQUIRE_SIGNED = env.bool("REGISTRY_REQUIRE_SIGNED", default=None)
REGISTRY_SIGNING_KEY_FILE = env.str("REGISTRY_SIGNING_KEY_FILE", default="")
REGISTRY_SIGNING_KEY_ID = env.str("REGISTRY_SIGNING_KEY_ID", default="")
# Knowledge (ingestion/, docs/decisions/0018): collections, their documents and chunks.
INGESTION_QUEUE = queues.INGESTION_QUEUE
# The embedding model of a new collection unless it names another: any registry model
# that serves embeddings; by default the one the gateway runs in process (ADR 0017).
INGESTION_EMBEDDING_MODEL = env.str("INGESTION_EMBEDDING_MODEL", default="local-embed")
# Searches reorder their fused candidates with this `(query, hits) -> hits` callable
# (a dotted path; empty: no reranking). ADR 0019.
INGESTION_RERANKER = env.str("INGESTION_RERANKER", default="")
INGESTION_CHUNK_TOKENS = 400
INGESTION_CHUNK_OVERLAP = 60
INGESTION_MIN_CHUNK_TOKENS = 50
INGESTION_MAX_CHUNK_TOKENS = 4096
INGESTION_SEARCH_CONFIG = "english"
# An uploaded file (and a multipart upload's body), a text source, a fetched URL: at most this.
INGESTION_MAX_FILE_BYTES = env.int("INGESTION_MAX_FILE_BYTES", default=32 * 1024 * 1024)
# What parsing one document may produce: pages read of a PDF, characters of text kept.
INGESTION_MAX_PAGES = env.int("INGESTION_MAX_PAGES", default=2_000)
INGESTION_MAX_CHARACTERS = env.int("INGESTION_MAX_CHARACTERS", default=5_000_000)
# A DOCX (a ZIP) is refused when its parts would unpack past this (a decompression bomb).
INGESTION_MAX_UNPACKED_BYTES = env.int("INGESTION_MAX_UNPACKED_BYTES", default=256 * 1024 * 1024)
# Chunks embedded per gateway call (and stored per transaction).
INGESTION_EMBEDDING_BATCH = env.int("INGESTION_EMBEDDING_BATCH", default=64)
# Retries of a batch the gateway refused for a retryable reason (429, 5xx), backing off
# exponentially from INGESTION_RETRY_BASE_SECONDS (or as long as Retry-After says).
INGESTION_EMBEDDING_RETRIES = env.int("INGESTION_EMBEDDING_RETRIES", default=5)
INGESTION_RETRY_BASE_SECONDS = env.float("INGESTION_RETRY_BASE_SECONDS", default=1.0)
INGESTION_RETRY_MAX_SECONDS = env.float("INGESTION_RETRY_MAX_SECONDS", default=30.0)
# URL sources: a fetch (robots.txt included) takes at most this long and follows at
# most this many redirects, each checked by the SSRF guard (aiaas/outbound.py).
INGESTION_FETCH_TIMEOUT_SECONDS = env.float("INGESTION_FETCH_TIMEOUT_SECONDS", default=30.0)
INGESTION_FETCH_MAX_REDIRECTS = 5
INGESTION_FETCH_USER_AGENT = env.str("INGESTION_FETCH_USER_AGENT", default="aiaas-ingestion/1.0")
# Hosts URL sources may reach even when they resolve to private or loopback addresses.
INGESTION_ALLOWED_HOSTS = env.list("INGESTION_ALLOWED_HOSTS", default=[])
# The sweeper (ingestion.sweep): a document `processing` with no heartbeat for this long,
# or `queued` for this long, is queued again, at most INGESTION_MAX_ATTEMPTS times in all.
INGESTION_STALE_SECONDS = env.int("INGESTION_STALE_SECONDS", default=300)
INGESTION_MAX_ATTEMPTS = env.int("INGESTION_MAX_ATTEMPTS", default=3)
INGESTION_SOFT_TIME_LIMIT_SECONDS = env.int("INGESTION_SOFT_TIME_LIMIT_SECONDS", default=600)
INGESTION_TIME_LIMIT_SECONDS = env.int("INGESTION_TIME_LIMIT_SECONDS", default=630)
CELERY_BEAT_SCHEDULE["sweep-ingestion"] = {
    "task": "ingestion.sweep",
    "schedule": 60.0,
    "options": {"queue": "default", "expire_seconds": 50},
}
# Batches (batches/, docs/decisions/0021): an input file holds at most BATCH_MAX_LINES
# requests, each line at most BATCH_MAX_LINE_BYTES; a batch runs at most
# BATCH_CONCURRENCY of its lines at once. A batch whose worker sent no heartbeat for
# BATCH_STALE_SECONDS is queued again by the sweeper (batches.sweep).
BATCHES_QUEUE = queues.BATCHES_QUEUE
BATCH_MAX_LINES = env.int("BATCH_MAX_LINES", default=10_000)
BATCH_MAX_LINE_BYTES = env.int("BATCH_MAX_LINE_BYTES", default=1024 * 1024)
BATCH_CONCURRENCY = env.int("BATCH_CONCURRENCY", default=4)
BATCH_STALE_SECONDS = env.int("BATCH_STALE_SECONDS", default=120)
# A line our own rate limiter refuses waits (Retry-After) and is sent again, this many times.
BATCH_RATE_LIMIT_RETRIES = env.int("BATCH_RATE_LIMIT_RETRIES", default=100)
BATCH_SOFT_TIME_LIMIT_SECONDS = env.int("BATCH_SOFT_TIME_LIMIT_SECONDS", default=3600)
BATCH_TIME_LIMIT_SECONDS = env.int("BATCH_TIME_LIMIT_SECONDS", default=3630)
CELERY_BEAT_SCHEDULE["sweep-batches"] = {
    "task": "batches.sweep",
    "schedule": 60.0,
    "options": {"queue": "default", "expire_seconds": 50},
}
# Evals (evals/): an experiment whose runner sent no heartbeat for EVALS_STALE_SECONDS is
# queued again by the sweeper (evals.sweep); past EVALS_MAX_ATTEMPTS runs (crashes and
# soft-time-limit continuations) it fails. A call our own rate limiter refuses waits
# (Retry-After) and is sent again, EVALS_RATE_LIMIT_RETRIES times.
EVALS_QUEUE = queues.EVALS_QUEUE
EVALS_STALE_SECONDS = env.int("EVALS_STALE_SECONDS", default=120)
EVALS_MAX_ATTEMPTS = env.int("EVALS_MAX_ATTEMPTS", default=10)
EVALS_RATE_LIMIT_RETRIES = env.int("EVALS_RATE_LIMIT_RETRIES", default=100)
EVALS_SOFT_TIME_LIMIT_SECONDS = env.int("EVALS_SOFT_TIME_LIMIT_SECONDS", default=3600)
EVALS_TIME_LIMIT_SECONDS = env.int("EVALS_TIME_LIMIT_SECONDS", default=3630)
CELERY_BEAT_SCHEDULE["sweep-evals"] = {
    "task": "evals.sweep",
    "schedule": 60.0,
    "options": {"queue": "default", "expire_seconds": 50},
}
# Evals datasets (evals/datasets.py): an imported file is at most EVALS_IMPORT_MAX_BYTES and
# a version holds at most EVALS_MAX_CASES_PER_VERSION cases.
EVALS_IMPORT_MAX_BYTES = env.int("EVALS_IMPORT_MAX_BYTES", default=1024 * 1024)
EVALS_MAX_CASES_PER_VERSION = env.int("EVALS_MAX_CASES_PER_VERSION", default=5_000)
# Nightly runs (evals/nightly.py): datasets opted in start from this hour (UTC), each with
# this many cases at once; a regression alerts by email and/or a webhook POST (public
# hosts only, besides EVALS_ALERT_ALLOWED_HOSTS) that may take this long.
EVALS_NIGHTLY_HOUR = env.int("EVALS_NIGHTLY_HOUR", default=2)
EVALS_NIGHTLY_CONCURRENCY = env.int("EVALS_NIGHTLY_CONCURRENCY", default=4)
EVALS_ALERT_ALLOWED_HOSTS = env.list("EVALS_ALERT_ALLOWED_HOSTS", default=[])
EVALS_ALERT_TIMEOUT_SECONDS = env.float("EVALS_ALERT_TIMEOUT_SECONDS", default=10.0)
CELERY_BEAT_SCHEDULE["evals-nightly"] = {
    "task": "evals.nightly",
    "schedule": 900.0,
    "options": {"queue": "default", "expire_seconds": 600},
}
# Billing (billing/, docs/decisions/0008): without STRIPE_SECRET_KEY billing runs offline
# (metering, quotas and previews work; Checkout and the Customer Portal are off).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# Comma-separated: during a rotation both the old and the new signing secret verify.
STRIPE_WEBHOOK_SECRETS = env.list("STRIPE_WEBHOOK_SECRET", default=[])
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
# The `event_name` of the Stripe Billing Meter that counts tokens.
STRIPE_METER_EVENT_NAME = env.str("STRIPE_METER_EVENT_NAME", default="aiaas_tokens")
# Meter events go to Stripe's v2 meter event stream, on a host of its own (docs/decisions/0014).
STRIPE_METER_EVENTS_API_BASE = env.str(
    "STRIPE_METER_EVENTS_API_BASE", default="https://meter-events.stripe.com"
)
# Each meter event's identifier is "<prefix>:<ledger row id>", so deployments sharing a
# Stripe account (staging and production, two regions) never collide; Stripe counts one
# event per identifier. Default: the deployment's domain. Never change it while rows are
# pushed but not yet marked (docs/decisions/0014).
STRIPE_METER_IDENTIFIER_PREFIX = env.str("STRIPE_METER_IDENTIFIER_PREFIX", default=BASE_DOMAIN)
# Stream requests (100 events each) one pusher has in flight at once.
STRIPE_METER_PUSH_CONCURRENCY = env.int("STRIPE_METER_PUSH_CONCURRENCY", default=4)
CELERY_BEAT_SCHEDULE["push-meter-events"] = {
    "task": "billing.push_meter_events",
    "schedule": 30.0,
    "options": {"queue": "billing", "expire_seconds": 60},
}
# Webhook events Stripe was told we have but that are still not applied are queued again.
CELERY_BEAT_SCHEDULE["retry-stripe-events"] = {
    "task": "billing.retry_stripe_events",
    "schedule": 300.0,
    "options": {"queue": "billing", "expire_seconds": 240},
}

# Unauthenticated surfaces (docs/decisions/0013). Wrong API keys are remembered
# per process (tenants/rejected_keys.py) so repeating one costs no query, and
# key lookups that reach the database are bounded per process.
REJECTED_API_KEY_SECONDS = env.float("REJECTED_API_KEY_SECONDS", default=60.0)
REJECTED_API_KEY_ENTRIES = env.int("REJECTED_API_KEY_ENTRIES", default=10_000)
API_KEY_LOOKUP_CONCURRENCY = env.int("API_KEY_LOOKUP_CONCURRENCY", default=4)
# Throttles (accounts/throttling.py), counted in Redis per window; each key
# carries the tenant's schema. A Redis error refuses the attempt (fails closed).
THROTTLE_HOUR_SECONDS = 3600
SIGNUPS_PER_IP_PER_HOUR = env.int("SIGNUPS_PER_IP_PER_HOUR", default=PROFILE_DEFAULTS.signups_per_ip_per_hour)
SIGNUPS_PER_HOUR = env.int("SIGNUPS_PER_HOUR", default=PROFILE_DEFAULTS.signups_per_hour)
LOGIN_FAILURES_PER_USER = env.int("LOGIN_FAILURES_PER_USER", default=5)
LOGIN_FAILURES_PER_IP = env.int("LOGIN_FAILURES_PER_IP", default=30)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
PASSWORD_RESETS_PER_EMAIL_PER_HOUR = env.int("PASSWORD_RESETS_PER_EMAIL_PER_HOUR", default=3)
PASSWORD_RESETS_PER_IP_PER_HOUR = env.int("PASSWORD_RESETS_PER_IP_PER_HOUR", default=20)
VERIFICATION_EMAILS_PER_HOUR = env.int("VERIFICATION_EMAILS_PER_HOUR", default=3)
# How long a new tenant's email verification link works.
EMAIL_VERIFICATION_MAX_AGE_SECONDS = env.int("EMAIL_VERIFICATION_MAX_AGE_SECONDS", default=3 * 24 * 3600)
# How long a password reset link works (Django's setting).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3600)

# /api throttles (tenants/api/throttling.py, docs/security.md): requests per API key,
# and per tenant across its keys, in DRF's spelling (N/s, N/min, N/hour, N/day).
API_KEY_THROTTLE_RATE = env.str("API_KEY_THROTTLE_RATE", default="600/min")
API_TENANT_THROTTLE_RATE = env.str("API_TENANT_THROTTLE_RATE", default="3000/min")

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

# Cookies stay on the host that set them (no Domain attribute), so a session
# made on one tenant's subdomain is never sent to another's.
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=PROFILE_DEFAULTS.secure_cookies)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Secure cookies take the __Host- prefix: browsers then refuse them unless sent over HTTPS
# for this exact host with Path=/, so a page on a sibling subdomain cannot plant one.
SESSION_COOKIE_NAME = "__Host-sessionid" if SESSION_COOKIE_SECURE else "sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken" if CSRF_COOKIE_SECURE else "csrftoken"
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy, X-Forwarded-Proto and X-Forwarded-For are believed
# only from TRUSTED_PROXIES (comma-separated addresses or CIDRs); aiaas/proxies.py
# applies them to every protocol and drops them from anyone else. Django's
# SECURE_PROXY_SSL_HEADER stays unset: it would believe any client.
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
try:
    trusted_networks(TRUSTED_PROXIES)
except ValueError as error:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES: {error}") from None
# Content-Security-Policy (django-csp, docs/decisions/0043) in every profile, so development
# meets it first: scripts and styles from our own static files, or inline with the
# request's nonce (`nonce="{{ request.csp_nonce }}"`); no inline handler or style attribute.
# Forms post here and may land on a tenant's host (signup) or at Stripe's Checkout and Portal
# (billing/web/views.py): browsers hold a form's redirects to form-action too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.NONCE],
        "img-src": [csp.SELF, "data:"],
        "connect-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.SELF],
        "frame-ancestors": [csp.NONE],
        "form-action": [
            csp.SELF,
            f"*.{BASE_DOMAIN}:*",
            "https://checkout.stripe.com",
            "https://billing.stripe.com",
        ],
    },
}
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PROFILE_DEFAULTS.ssl_redirect)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=PROFILE_DEFAULTS.hsts_seconds)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PROFILE_DEFAULTS.hsts_include_subdomains
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production images run collectstatic and set STATIC_MANIFEST=true (hashed,
# compressed, cached forever); local runs and tests serve static/ directly.
STATIC_MANIFEST = env.bool("STATIC_MANIFEST", default=False)
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / ".data" / "staticfiles") if STATIC_MANIFEST else None
# Tenants' uploaded files (/v1/files, documents): on local disk under FILES_ROOT,
# or in an S3-compatible bucket through django-storages when FILES_S3_BUCKET is
# set (install requirements/s3.txt; credentials from the usual AWS_* variables).
FILES_ROOT = env.path("FILES_ROOT", default=BASE_DIR / ".data" / "files")
FILES_S3_BUCKET = env.str("FILES_S3_BUCKET", default="")
FILES_STORAGE = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": FILES_S3_BUCKET,
            "endpoint_url": env.str("FILES_S3_ENDPOINT_URL", default="") or None,
            "default_acl": None,
            "file_overwrite": False,
        },
    }
    if FILES_S3_BUCKET
    else {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": FILES_ROOT}}
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "files": FILES_STORAGE,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
WHITENOISE_AUTOREFRESH = DEBUG
# /favicon.ico on every host, answered before the tenant is looked up.
WHITENOISE_ROOT = BASE_DIR / "static" / "root"

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# The SMTP server of EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend: a deployment
# names it here, or no signup link, invitation or password reset reaches anyone.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"noreply@{BASE_DOMAIN}")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.permissions.HasTenantApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["aiaas.api_parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "aiaas.api_errors.openai_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # JSON is the API's only rendering: `?format=` is left to the endpoints (a dataset's export).
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "aiaas API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components, with request-only rules (a
    # CharField's minLength 1, write-only fields).
    "COMPONENT_SPLIT_REQUEST": True,
    # /v1 is not Django (docs/decisions/0005): its hand-kept description is merged in.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gateway.openapi.merge_v1_paths",
        "gateway.openapi.document_api_errors",
    ],
    # Swagger UI at /api/docs/ from drf-spectacular-sidecar's files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Names of their own, so other `source` and `status` enums keep theirs.
    "ENUM_NAME_OVERRIDES": {
        "DocumentSourceEnum": "ingestion.models.DocumentSource",
        "DocumentStatusEnum": "ingestion.models.DocumentStatus",
        # Two `mode` fields: the search mode keeps its name.
        "ModeEnum": ["hybrid", "vector", "keyword"],  # ingestion.search.SearchMode
        "DatasetImportModeEnum": ["append", "replace"],  # evals.datasets.ImportMode
        "AnalyticsGroupByEnum": ["model", "key", "tier", "status"],
        "GroupByEnum": ["day", "model", "key", "tier"],
    },
}
# Request bodies and slow clients (aiaas/request_limits.py, aiaas/http_protocol.py):
# a body over MAX_REQUEST_BYTES is a 413 before anything reads it, so Django
# never spools one to disk (a body within it stays in memory).
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=2 * 1024 * 1024)
# File uploads (multipart/form-data POSTs to these paths) may be as large as a stored
# file, plus room for the multipart envelope; Django spools those over
# FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file.
UPLOAD_PATHS = r"/api/v1/collections/[^/]+/documents/?|/v1/files/?"
MAX_UPLOAD_REQUEST_BYTES = INGESTION_MAX_FILE_BYTES + 64 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
REQUEST_BODY_TIMEOUT_SECONDS = env.float("REQUEST_BODY_TIMEOUT_SECONDS", default=30.0)
REQUEST_HEADERS_TIMEOUT_SECONDS = env.float("REQUEST_HEADERS_TIMEOUT_SECONDS", default=10.0)
MAX_REQUEST_HEADER_BYTES = env.int("MAX_REQUEST_HEADER_BYTES", default=64 * 1024)
# GET /metrics (docs/observability.md): only to `Authorization: Bearer <METRICS_TOKEN>`;
# unset, a 404 to everyone. METRICS_LISTEN (an internal-only host:port, say
# 127.0.0.1:9100) serves them there without authentication, from the web process.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_LISTEN = env.str("METRICS_LISTEN", default="")
# JSON Schemas tenants send (response_format, agent specs; aiaas/json_schema.py):
# refused above these sizes before any other work.
JSON_SCHEMA_MAX_BYTES = env.int("JSON_SCHEMA_MAX_BYTES", default=128 * 1024)
JSON_SCHEMA_MAX_DEPTH = env.int("JSON_SCHEMA_MAX_DEPTH", default=32)
JSON_SCHEMA_MAX_NODES = env.int("JSON_SCHEMA_MAX_NODES", default=10_000)

# Log lines (aiaas/logs.py): JSON but in development; one access line per HTTP request
# (aiaas/access_log.py; uvicorn's own is off: it writes query strings).
LOG_FORMAT = env.str("LOG_FORMAT", default=PROFILE_DEFAULTS.log_format)
LOGGING = logging_config(LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))
ACCESS_LOG = env.bool("ACCESS_LOG", default=True)

SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
if SENTRY_DSN:
    init_sentry(SENTRY_DSN, SENTRY_TRACES_SAMPLE_RATE)

# Analytics (analytics/, docs/decisions/0022): the read model's engine ("postgres" or
# "clickhouse"), and how long the API keeps a tenant's answer.
ANALYTICS_BACKEND = env.str("ANALYTICS_BACKEND", default="postgres")
ANALYTICS_CACHE_SECONDS = env.int("ANALYTICS_CACHE_SECONDS", default=10)

# The demo tenant `make run` seeds.
DEMO_TENANT_SLUG = "acme"
