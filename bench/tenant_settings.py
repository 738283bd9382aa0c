"""The platform's settings plus bench/scale_probe as a tenant app (bench/tenants.py)."""

import os

from aiaas.settings import *  # noqa: F403

TENANT_APPS = [*TENANT_APPS, "bench.scale_probe"]  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "bench.scale_probe"]  # noqa: F405
# step1: the table; step2 and step3 each add a column (the migration bench/tenants.py times).
MIGRATION_MODULES = {
    "scale_probe": f"bench.scale_probe.{os.environ.get('BENCH_PROBE_STEP', 'step1')}.migrations"
}
