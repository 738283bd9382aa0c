# Quick start: `make run` serves the platform, `make test` runs every check.
# Both start embedded PostgreSQL and Redis under .data/ when DATABASE_URL /
# REDIS_URL are unset.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) -m aiaas.launcher

.PHONY: run test check audit lock lint typecheck migrations-check pytest openapi screenshots bench-provisioning bench-gateway bench-routing bench-routing-adaptation bench-realtime bench-billing bench-ingestion bench-evals bench-analytics bench-degrade bench-tenants bench-capacity load clean

# Every package from the hashed development lock: pip refuses a file whose sha256 is not
# in it (docs/deploy.md, "Supply chain"). --no-deps: the lock holds every dependency, and
# pip's hash mode refuses a dependency asked for with an extra (pip-audit's
# CacheControl[filecache]) although the lock pins it; `pip check` then refuses a
# dependency the lock leaves out.
$(VENV)/.installed: requirements/dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.lock
	$(PY) -m pip check
	touch $@

# Compile the hashed locks again after editing requirements/*.txt (uv keeps every pin
# it can; LOCK_ARGS=--upgrade moves them all, --upgrade-package=NAME one), install the
# new tree and write the licence report from its metadata.
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --annotation-style line \
	--custom-compile-command "make lock" $(LOCK_ARGS)
lock: $(VENV)/.installed
	$(LOCK) requirements/dev.txt -o requirements/dev.lock
	$(LOCK) requirements/base.txt requirements/s3.txt -c requirements/dev.lock -o requirements/runtime.lock
	$(MAKE) --no-print-directory $(VENV)/.installed
	$(PY) requirements/licences.py --write docs/licences.md

run: $(VENV)/.installed
	$(STACK) run

test: $(VENV)/.installed
	$(STACK) exec -- $(MAKE) --no-print-directory check

# The checks `make test` runs, with the services already configured.
# The alert rule tests need promtool (`apt-get install -y prometheus`; skipped without it).
check: lint typecheck migrations-check audit pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The locks against the OSV advisory database; one line and no failure when it cannot
# be reached (an offline machine), a failure for any known vulnerability.
audit:
	$(PY) requirements/audit.py requirements/dev.lock requirements/runtime.lock

typecheck:
	$(VENV)/bin/mypy .

migrations-check:
	$(PY) manage.py makemigrations --check --dry-run

# PYTHONNODEBUGRANGES: CPython 3.11's traceback module calls ast.parse to draw its
# carets, and ast.parse is not thread-safe there; a server thread logging a traceback
# while pytest formats a failure crashed the run (SystemError "AST constructor
# recursion depth mismatch", once a segfault). Without column ranges no caret is drawn.
pytest:
	PYTHONNODEBUGRANGES=1 $(VENV)/bin/pytest $(PYTEST_ARGS)

# Regenerate the committed OpenAPI document (a test fails when it is stale).
openapi: $(VENV)/.installed
	$(STACK) exec -- $(PY) manage.py spectacular --urlconf aiaas.urls_api --validate --fail-on-warn \
		--file docs/openapi.yaml

# The browser journey at 1280 and 390 px, saving each page's screenshot to docs/screenshots/
# (the README's gallery; needs chromium, docs/browser-tests.md).
screenshots: $(VENV)/.installed
	$(STACK) exec -- env AIAAS_SCREENSHOTS=docs/screenshots $(VENV)/bin/pytest -q tests/browser/test_journey.py

bench-provisioning: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/provisioning.py --count 20

# The /v1 gateway against the LiteLLM proxy on the same simulated upstreams
# (creates bench/.venv-litellm on first use; BENCH_ARGS=--quick for a short run).
bench-gateway: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/gateway.py $(BENCH_ARGS)

# The router offline on RouteLLM's data: unseen MMLU subjects and GSM8K (about 2 min).
bench-routing: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/routing.py $(BENCH_ARGS)

# The tenant threshold: GSM8K replayed as a new tenant against a router trained without
# it, and what a router trained on GSM8K itself needs (about 10 min; bench/README.md).
bench-routing-adaptation: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/routing_adaptation.py $(BENCH_ARGS)

# WebSockets: 1,000 subscribers (a share slow readers) and concurrent WebSocket chats
# (BENCH_ARGS=--quick for a short run; bench/README.md).
bench-realtime: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/realtime.py $(BENCH_ARGS)

# Webhook verification and meter-event sends against the local Stripe stand-in.
bench-billing: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/billing.py $(BENCH_ARGS)

# Ingestion throughput, search latency at 10k and 100k chunks, retrieval quality
# (BENCH_ARGS=--quick for a short run; bench/README.md).
bench-ingestion: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/ingestion.py $(BENCH_ARGS)

# The eval runner's cases per second at 0 and 500 ms of upstream latency
# (BENCH_ARGS=--quick for a short run; bench/README.md).
bench-evals: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/evals.py $(BENCH_ARGS)
# The analytics read model: 10 M ledger rows, rebuild, 30-day queries, lag at 2,000 events/s
# (BENCH_ARGS="--rows 1000000" for a shorter run; bench/README.md).
bench-analytics: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/analytics.py $(BENCH_ARGS)

# Overload: the simulated provider slows mid-run; the degrade switch sheds low-priority
# keys (about 2 min; BENCH_ARGS=--quick for a shorter run; bench/README.md).
bench-degrade: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/degrade.py $(BENCH_ARGS)

# 10 to 10,000 tenants: provisioning, all-tenant migrations, latency, PostgreSQL's
# catalog and memory (up to an hour; bench/README.md). Its own embedded PostgreSQL
# and Redis under .data/bench-tenants/, made afresh, so the test database is left alone.
bench-tenants: $(VENV)/.installed
	rm -rf .data/bench-tenants
	AIAAS_DATA_DIR=$(CURDIR)/.data/bench-tenants $(STACK) exec -- $(PY) bench/tenants.py $(BENCH_ARGS)

# Requests per CPU-second of one platform process for each Locust mix (docs/capacity.md).
bench-capacity: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/load/capacity.py $(BENCH_ARGS)

# Locust against a running `make run` (LOAD_URL), headless: a load tenant and key are
# prepared first (bench/load/tenant.py); exits 1 when a threshold is broken (docs/capacity.md).
LOAD_URL ?= http://localhost:8000
LOAD_ARGS ?= --users 20 --spawn-rate 5 --run-time 60s
load: $(VENV)/.installed
	$(STACK) exec -- $(PY) bench/load/tenant.py --out .data/load-credentials.json
	LOAD_CREDENTIALS=.data/load-credentials.json $(VENV)/bin/locust -f bench/load/locustfile.py \
		--headless --only-summary --host $(LOAD_URL) $(LOAD_ARGS)

# Deletes .data/ (or AIAAS_DATA_DIR). Refuses while a process (`make run`, `make test`,
# manage.py) uses its embedded servers; servers a killed process left running are
# stopped first. Without .venv no embedded server can have run.
clean:
	@if [ -x $(PY) ]; then $(STACK) clean; else rm -rf .data; fi
