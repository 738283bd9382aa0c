"""The dashboard's Request logs page: the table with the ledger's figures, its
filters and pages, one request's prompt and answer, the empty states, and the
owner's logging settings (owners only; another workspace gets nothing)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from billing.models import UsageEvent
from request_logs.models import RequestLog
from request_logs.tests.factories import make_request_log
from request_logs.web.views import PAGE_SIZE
from tenants.models import Tenant
from testing.tenants import TenantFixture

PAGE = "/dashboard/request-logs/"
SETTINGS = "/dashboard/request-logs/settings/"
NONE = "\N{EN DASH}"  # a figure the ledger does not have


def logged(tenant: TenantFixture, *, tier: int | None = 1, **fields: object) -> RequestLog:
    """A logged request and, unless `tier` is None (refused before the ledger), its ledger row."""
    log = make_request_log(tenant, request_id=f"req_{uuid.uuid4().hex}", **fields)
    if tier is not None:
        UsageEvent.objects.create(
            request_id=log.request_id,
            tenant=tenant.tenant,
            api_key=tenant.provisioned.issued_key.api_key,
            model=log.model,
            tier=tier,
            prompt_tokens=12,
            completion_tokens=34,
            cost_usd=Decimal("0.00123400"),
            latency_ms=321,
            status=log.status,
            created_at=log.created_at,
        )
    return log


def set_logging(tenant: TenantFixture, enabled: bool) -> None:
    Tenant.objects.filter(pk=tenant.tenant.pk).update(request_logging_enabled=enabled)


def row_ids(content: str) -> list[str]:
    return [part.split('"')[0] for part in content.split('id="request-log-')[1:]]


def test_the_table_shows_each_logged_request_with_its_ledger_figures(tenant: TenantFixture) -> None:
    set_logging(tenant, True)
    key = tenant.provisioned.issued_key.api_key
    served = logged(tenant, api_key_id=key.pk, model="sim-medium", tier=2)
    refused = logged(tenant, api_key_id=key.pk, status=429, tier=None)

    response = tenant.web_client().get(PAGE)

    assert response.status_code == 200
    content = response.content.decode()
    assert row_ids(content) == [str(refused.pk), str(served.pk)]
    assert f"<td>{key.name} ({key.prefix})</td>" in content
    cells = "\n          ".join
    assert (
        cells(["<td><code>sim-medium</code></td>", "<td>2</td>", "<td>200</td>", "<td>321 ms</td>"])
        in content
    )
    assert cells(["<td>12 + 34</td>", "<td>$0.001234</td>"]) in content
    assert cells(["<td>429</td>", *[f"<td>{NONE}</td>"] * 3]) in content
    assert 'id="logging-state">on</strong>' in content
    details = f'<a href="{PAGE}{served.pk}/" id="request-log-{served.pk}" data-drawer'
    assert details in content  # opens in the drawer below with scripts, as a page without
    assert '<dialog class="drawer" id="log-drawer" aria-labelledby="log-drawer-title">' in content


def test_the_filters_narrow_the_table(tenant: TenantFixture) -> None:
    set_logging(tenant, True)
    now = timezone.now()
    small = logged(tenant, model="sim-small", tier=1, created_at=now)
    large = logged(tenant, model="sim-large", tier=3, created_at=now)
    failed = logged(tenant, model="sim-small", status=502, tier=1, created_at=now)
    old = logged(tenant, model="sim-small", tier=1, created_at=now - timedelta(days=3))
    client = tenant.web_client()

    def shown(**query: str) -> list[str]:
        response = client.get(PAGE, query)
        assert response.status_code == 200, response.content
        return row_ids(response.content.decode())

    assert shown(tier="3") == [str(large.pk)]
    assert shown(model="sim-small", outcome="failed") == [str(failed.pk)]
    assert shown(model="sim-small", outcome="served", first_day=now.date().isoformat()) == [str(small.pk)]
    assert shown(last_day=(now - timedelta(days=1)).date().isoformat()) == [str(old.pk)]
    assert shown(request_id=small.request_id) == [str(small.pk)]
    nothing = client.get(PAGE, {"request_id": "req_nobody"}).content.decode()
    assert 'id="logs-empty"' in nothing
    assert "No logged request matches" in nothing


def test_bad_filters_are_a_400_that_says_why(tenant: TenantFixture) -> None:
    response = tenant.web_client().get(
        PAGE, {"first_day": "2026-03-02", "last_day": "2026-03-01", "tier": "x"}
    )

    assert response.status_code == 400
    content = response.content.decode()
    assert "The range ends before it starts." in content
    assert "tier: Enter a whole number." in content


def test_the_table_is_paged(tenant: TenantFixture) -> None:
    set_logging(tenant, True)
    start = timezone.now() - timedelta(hours=1)
    logs = [logged(tenant, tier=None, created_at=start + timedelta(seconds=i)) for i in range(PAGE_SIZE + 2)]
    client = tenant.web_client()

    first = client.get(PAGE).content.decode()
    second = client.get(PAGE, {"page": "2"}).content.decode()

    assert row_ids(first)[0] == str(logs[-1].pk)
    assert len(row_ids(first)) == PAGE_SIZE
    assert row_ids(second) == [str(logs[1].pk), str(logs[0].pk)]
    assert 'id="logs-page">Page 2 of 2</span>' in second
    assert 'href="?page=1" rel="prev"' in second


def test_the_detail_shows_the_prompt_and_the_answer(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    set_logging(tenant, True)
    log = logged(
        tenant,
        request_body={
            "model": "auto",
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi <there>"},
            ],
        },
        response_text="Hello & welcome",
    )

    response = tenant.web_client().get(f"{PAGE}{log.pk}/")

    assert response.status_code == 200
    content = response.content.decode()
    assert '<span class="badge">system</span><pre class="log-text">Be brief.</pre>' in content
    assert '<span class="badge">user</span><pre class="log-text">Hi &lt;there&gt;</pre>' in content
    assert '<pre class="log-text" id="log-answer">Hello &amp; welcome</pre>' in content
    assert "&quot;temperature&quot;: 0.2" in content
    assert tenant.web_client().get(f"{PAGE}{log.pk + 10_000}/").status_code == 404
    # Another workspace's owner, on their own host, has no such log.
    assert other_tenant.web_client().get(f"{PAGE}{log.pk}/").status_code == 404


def test_with_logging_off_the_page_says_so_plainly(tenant: TenantFixture) -> None:
    set_logging(tenant, False)

    content = tenant.web_client().get(PAGE).content.decode()

    assert 'id="logging-state">off</strong>' in content
    assert "<h2>Request logging is off</h2>" in content
    assert 'id="request-logs-table"' not in content


def test_only_the_owner_changes_logging_and_it_holds(tenant: TenantFixture) -> None:
    set_logging(tenant, False)
    admin = browser_for(tenant, make_user(tenant, role=Role.ADMIN))
    member = browser_for(tenant, make_user(tenant, role=Role.MEMBER))

    assert admin.post(SETTINGS, {"enabled": "on", "retention_days": "7"}).status_code == 403
    assert member.post(SETTINGS, {"enabled": "on", "retention_days": "7"}).status_code == 403
    assert member.get(PAGE).status_code == 403
    admin_page = admin.get(PAGE).content.decode()
    assert 'id="logging-owner-only"' in admin_page
    assert 'id="logging-settings-form"' not in admin_page
    tenant.tenant.refresh_from_db()
    assert (tenant.tenant.request_logging_enabled, tenant.tenant.request_log_retention_days) == (False, 30)

    owner = tenant.web_client()
    saved = owner.post(SETTINGS, {"enabled": "on", "retention_days": "7"})
    refused = owner.post(SETTINGS, {"enabled": "on", "retention_days": "400"})

    assert (saved.status_code, saved["Location"]) == (302, PAGE)
    assert refused.status_code == 302
    tenant.tenant.refresh_from_db()
    assert (tenant.tenant.request_logging_enabled, tenant.tenant.request_log_retention_days) == (True, 7)
    after = owner.get(PAGE).content.decode()
    assert "Request logging is on; logs are kept 7 days." in after
    assert "Ensure this value is less than or equal to 365." in after
    owner.post(SETTINGS, {"retention_days": "30"})
    tenant.tenant.refresh_from_db()
    assert (tenant.tenant.request_logging_enabled, tenant.tenant.request_log_retention_days) == (False, 30)
