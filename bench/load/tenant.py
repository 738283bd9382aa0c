"""The load test's tenant and credentials, written for bench/load/locustfile.py.

    python bench/load/tenant.py [--slug load] [--out .data/load-credentials.json]

`make load` runs it under the launcher before Locust. The tenant is on the
`load-test` plan, whose limits the load cannot reach (the default plan allows a
key 60 requests a minute, which a load test is past in seconds), and it is
made once; each run issues a new inference key and sets a new owner password,
both only in the credentials file (development only).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
LOAD_PLAN = "load-test"
OWNER_EMAIL = "owner@load.example"
UNREACHABLE = 1_000_000_000


def prepare(slug: str) -> dict[str, str]:
    """The tenant `slug` on the load-test plan (made if missing), a new key and owner password."""
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from billing.models import Plan
    from tenants.models import ApiKeyScope, Tenant
    from tenants.services import create_api_key, provision_tenant, tenant_domain_name

    plan, _ = Plan.objects.update_or_create(
        slug=LOAD_PLAN,
        defaults={
            "name": "Load test",
            "key_requests_per_minute": UNREACHABLE,
            "key_tokens_per_minute": UNREACHABLE,
            "tenant_requests_per_minute": UNREACHABLE,
            "tenant_tokens_per_minute": UNREACHABLE,
            "monthly_token_budget": None,
            "monthly_spend_budget_usd": None,
        },
    )
    password = secrets.token_urlsafe(18)
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        tenant = provision_tenant(
            slug=slug, name="Load test", owner_email=OWNER_EMAIL, owner_password=password, plan_slug=LOAD_PLAN
        ).tenant
    else:
        Tenant.objects.filter(pk=tenant.pk).update(plan=plan)
        with tenant_context(tenant):
            owner = User.objects.get(email=OWNER_EMAIL)
            owner.set_password(password)
            owner.save(update_fields=["password"])
    issued = create_api_key(tenant, name="Load test", scopes=[ApiKeyScope.INFERENCE, ApiKeyScope.ADMIN])
    return {
        "tenant_host": tenant_domain_name(slug),
        "api_key": issued.secret,
        "owner_email": OWNER_EMAIL,
        "owner_password": password,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slug", default="load")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".data" / "load-credentials.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
    import django

    django.setup()
    data = prepare(args.slug)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    args.out.chmod(0o600)
    print(f"wrote {args.out} (tenant host {data['tenant_host']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
