"""The page base (tenants/web/base.py) and every URL of a tenant's host.

The URLs are read from the tenant URLConf, so a new page is checked without
anyone adding it here: it must go through the base, and an anonymous visitor
or another tenant's member must be sent to sign in, changing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from accounts.models import Role, User
from accounts.tests.factories import browser_for, make_user
from agents.models import Agent, Run
from agents.tests.factories import make_agent, make_run, simple_spec
from evals.models import CaseResult, Dataset, Experiment
from evals.tests.web_factories import make_experiment, make_version
from ingestion.models import Collection, Document
from ingestion.tests.factories import make_collection_with_file
from request_logs.tests.factories import make_request_log
from routing.router.services import tenant_routing
from tenants.models import ApiKey, Tenant
from tenants.web.base import (
    SESSION_TENANT_KEY,
    PageAccess,
    TenantPageView,
    is_tenant_page,
    tenant_page,
)
from testing.tenants import TenantFixture

TENANT_URLCONF = "aiaas.urls_tenant"
# The only pages of a tenant's host open to visitors who are not its members.
SIGN_IN_PAGES = {
    "home",
    "login",
    "logout",
    "accept-invite",
    "password-reset",
    "password-reset-sent",
    "password-reset-confirm",
    "verify-email",
    "welcome",
}


@dataclass(frozen=True)
class HostUrl:
    name: str
    view: Callable[..., HttpResponseBase]
    arguments: tuple[str, ...]

    @property
    def opens_to_anonymous(self) -> bool:
        view_class = getattr(self.view, "view_class", None)
        return bool(getattr(view_class, "dangerously_allow_anonymous", False))


def walk(patterns: list[Any], namespace: str = "") -> Iterator[HostUrl]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            arguments = tuple(pattern.pattern.converters)
            yield HostUrl(f"{namespace}{pattern.name}", pattern.callback, arguments)


HOST_URLS = list(walk(get_resolver(TENANT_URLCONF).url_patterns))
DASHBOARD_URLS = [url for url in HOST_URLS if url.name not in SIGN_IN_PAGES]


def api_key_pk(tenant: TenantFixture) -> int:
    return tenant.provisioned.issued_key.api_key.pk


def member_pk(tenant: TenantFixture) -> int:
    return make_user(tenant, role=Role.ADMIN).pk


def agent_pk(tenant: TenantFixture) -> int:
    return make_agent(tenant).pk


def run_pk(tenant: TenantFixture) -> int:
    return make_run(tenant).pk


def collection_pk(tenant: TenantFixture) -> str:
    return make_collection_with_file(tenant).pk


def document_pk(tenant: TenantFixture) -> str:
    collection = make_collection_with_file(tenant)
    with tenant_context(tenant.tenant):
        return Document.objects.get(collection=collection).pk


def experiment_pk(tenant: TenantFixture) -> str:
    return make_experiment(tenant, make_version(tenant, cases=1), [True], status="running").pk


def dataset_pk(tenant: TenantFixture) -> int:
    return make_version(tenant, cases=1).dataset_id


def result_pk(tenant: TenantFixture) -> int:
    experiment = make_experiment(tenant, make_version(tenant, cases=1), [True])
    with tenant_context(tenant.tenant):
        return CaseResult.objects.get(experiment=experiment).pk


def request_log_pk(tenant: TenantFixture) -> int:
    return make_request_log(tenant).pk


def chart_of(chart: str) -> Callable[[TenantFixture], str]:
    return lambda tenant: chart


CHART_SAMPLES = {
    "overview": "overview-requests-chart",
    "usage": "usage-keys-chart",
    "routing": "routing-tier-mix-chart",
    "billing": "billing-quota-chart",
}


# A real object of the tenant under test for each page that takes one, so a page
# that let an outsider through would change something the test sees.
SAMPLE_OBJECTS: dict[str, Callable[[TenantFixture], int | str]] = {
    "dashboard:key": api_key_pk,
    "dashboard:revoke-key": api_key_pk,
    "dashboard:key-limits": api_key_pk,
    "dashboard:change-role": member_pk,
    "dashboard:remove-member": member_pk,
    "agents:edit": agent_pk,
    "agents:delete": agent_pk,
    "agents:start-run": agent_pk,
    "agents:run": run_pk,
    "agents:run-events": run_pk,
    "agents:run-cancel": run_pk,
    "agents:run-replay": run_pk,
    **dict.fromkeys(
        [
            "ingestion:collection",
            "ingestion:collection-delete",
            "ingestion:upload",
            "ingestion:add-url",
            "ingestion:add-text",
            "ingestion:progress",
        ],
        collection_pk,
    ),
    "ingestion:document-delete": document_pk,
    "ingestion:stream-token": document_pk,
    **dict.fromkeys(
        ["evals:experiment", "evals:progress", "evals:stream-token", "evals:cancel"], experiment_pk
    ),
    "evals:label": result_pk,
    **dict.fromkeys(["evals:dataset", "evals:import", "evals:export"], dataset_pk),
    "dashboard:request-log": request_log_pk,
    # A chart's data (analytics/web/chart_pages.py): the argument is the chart's id.
    **{
        f"dashboard:{page}-{format}": chart_of(chart)
        for page, chart in CHART_SAMPLES.items()
        for format in ("csv", "json")
    },
}


def path_of(url: HostUrl, tenant: TenantFixture) -> str:
    kwargs = {url.arguments[0]: SAMPLE_OBJECTS[url.name](tenant)} if url.arguments else {}
    return reverse(url.name, urlconf=TENANT_URLCONF, kwargs=kwargs)


def hostile_form(tenant: TenantFixture) -> dict[str, str]:
    """One body that every dashboard form would act on, were it let through."""
    return {
        "name": "outsider",
        "scopes": "admin",
        "email": "outsider@evil.example",
        "role": Role.OWNER,
        "plan": "pro",
        "quality_target": "0.85",
        "exploration_rate": "0.05",
        "requests_per_minute": "1",
        "key": str(api_key_pk(tenant)),
        "spec": json.dumps(simple_spec("outsider")),
        "input": json.dumps({"text": "hi"}),
        "api_key": str(api_key_pk(tenant)),
        "url": "https://outsider.example/",
        "text": "outsider",
        "label": "fail",
        "dataset": "outsider",
        "sample": "5",
        "target_kind": "model",
        "target": json.dumps({"model": "auto"}),
        "concurrency": "1",
        "enabled": "on",
        "retention_days": "7",
    }


def state_of(tenant: TenantFixture) -> dict[str, Any]:
    """What a dashboard page can change of a tenant."""
    routing = tenant_routing(tenant.tenant.pk)
    with tenant_context(tenant.tenant):
        return {
            "keys": list(ApiKey.objects.filter(tenant=tenant.tenant).order_by("pk").values()),
            "members": list(
                User.objects.order_by("pk").values("pk", "email", "role", "is_active", "password")
            ),
            "agents": list(Agent.objects.order_by("pk").values("pk", "name", "version")),
            "runs": list(Run.objects.order_by("pk").values("pk", "status", "replay_of")),
            "collections": list(Collection.objects.order_by("pk").values("pk", "name")),
            "documents": list(Document.objects.order_by("pk").values("pk", "status")),
            "datasets": list(Dataset.objects.order_by("pk").values("pk", "name")),
            "experiments": list(Experiment.objects.order_by("pk").values("pk", "status")),
            "labels": list(CaseResult.objects.order_by("pk").values("pk", "human_label")),
            "routing": (routing.quality_target, routing.exploration_rate),
            "logging": Tenant.objects.values_list(
                "request_logging_enabled", "request_log_retention_days"
            ).get(pk=tenant.tenant.pk),
        }


def assert_sent_to_sign_in(client: Client, path: str, tenant: TenantFixture) -> None:
    get = client.get(path)
    post = client.post(path, hostile_form(tenant))

    assert (get.status_code, post.status_code) == (302, 302)
    assert get["Location"] == post["Location"] == f"/login/?next={path}"


def test_every_url_of_a_tenants_host_goes_through_the_page_base() -> None:
    assert [url.name for url in HOST_URLS if not is_tenant_page(url.view)] == []


def test_only_the_sign_in_pages_open_to_anonymous_visitors() -> None:
    assert {url.name for url in HOST_URLS if url.opens_to_anonymous} == SIGN_IN_PAGES


def test_every_dashboard_page_that_takes_an_object_has_a_sample() -> None:
    assert {url.name for url in DASHBOARD_URLS if url.arguments} == set(SAMPLE_OBJECTS)
    assert {url.arguments for url in DASHBOARD_URLS if url.arguments} == {("pk",), ("chart",)}


@pytest.mark.parametrize("url", DASHBOARD_URLS, ids=lambda url: url.name)
def test_an_anonymous_visitor_is_sent_to_sign_in_and_changes_nothing(
    url: HostUrl, tenant: TenantFixture
) -> None:
    path = path_of(url, tenant)
    before = state_of(tenant)

    assert_sent_to_sign_in(Client(HTTP_HOST=tenant.host), path, tenant)

    assert state_of(tenant) == before


@pytest.mark.parametrize("url", DASHBOARD_URLS, ids=lambda url: url.name)
def test_another_tenants_member_is_sent_to_sign_in_and_changes_nothing(
    url: HostUrl, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    path = path_of(url, tenant)
    before = state_of(tenant)
    outsider = Client(HTTP_HOST=tenant.host)
    outsider.cookies["sessionid"] = other_tenant.web_client().cookies["sessionid"].value

    assert_sent_to_sign_in(outsider, path, tenant)

    assert state_of(tenant) == before


# The base itself


@tenant_page
def member_probe(request: HttpRequest, access: PageAccess) -> HttpResponse:
    return HttpResponse(f"{access.tenant.slug} {access.user.email}")


def anonymous_request(tenant: Tenant | None) -> HttpRequest:
    request = RequestFactory().get("/dashboard/probe/")
    request.tenant = tenant  # type: ignore[attr-defined]
    request.user = AnonymousUser()
    return request


def test_a_request_without_a_tenant_is_a_404(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant), pytest.raises(Http404):
        member_probe(anonymous_request(None))


def test_the_public_schema_is_a_404(tenant: TenantFixture) -> None:
    with schema_context(get_public_schema_name()):
        public = Tenant.objects.get(schema_name=get_public_schema_name())
        with pytest.raises(Http404):
            member_probe(anonymous_request(public))


def test_an_inactive_tenant_is_a_404(tenant: TenantFixture) -> None:
    inactive = Tenant.objects.get(pk=tenant.tenant.pk)
    inactive.is_active = False

    with tenant_context(tenant.tenant), pytest.raises(Http404):
        member_probe(anonymous_request(inactive))


def test_a_tenant_whose_schema_is_not_active_is_a_404(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    with tenant_context(other_tenant.tenant), pytest.raises(Http404):
        member_probe(anonymous_request(tenant.tenant))


def test_the_tenants_own_schema_gets_past_the_tenant_check(tenant: TenantFixture) -> None:
    with tenant_context(tenant.tenant):
        response = member_probe(anonymous_request(tenant.tenant))

    assert (response.status_code, response["Location"]) == (302, "/login/?next=/dashboard/probe/")


def test_a_session_not_opened_on_this_tenants_host_is_ended(tenant: TenantFixture) -> None:
    client = Client(HTTP_HOST=tenant.host)
    with tenant_context(tenant.tenant):
        client.force_login(User.objects.get(email=tenant.owner_email))

    response = client.get("/dashboard/")

    assert (response.status_code, response["Location"]) == (302, "/login/?next=/dashboard/")
    with tenant_context(tenant.tenant):
        assert "_auth_user_id" not in client.session


def test_a_session_bound_to_another_tenant_is_ended(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    client = tenant.web_client()
    assert client.get("/dashboard/").status_code == 200
    with tenant_context(tenant.tenant):
        session = client.session
        session[SESSION_TENANT_KEY] = other_tenant.tenant.schema_name
        session.save()

    response = client.get("/dashboard/")

    assert (response.status_code, response["Location"]) == (302, "/login/?next=/dashboard/")
    assert client.get("/dashboard/").status_code == 302


def test_signing_in_binds_the_session_to_the_tenant(tenant: TenantFixture) -> None:
    client = tenant.web_client()

    with tenant_context(tenant.tenant):
        assert client.session[SESSION_TENANT_KEY] == tenant.tenant.schema_name


def test_a_manager_page_refuses_a_member_with_403(tenant: TenantFixture) -> None:
    browser = browser_for(tenant, make_user(tenant, role=Role.MEMBER))

    assert browser.get("/dashboard/playground/").status_code == 403
    assert browser.get("/dashboard/").status_code == 200


def test_a_page_view_cannot_weaken_the_base() -> None:
    for name in ("dispatch", "as_view", "tenant", "access"):
        with pytest.raises(TypeError, match=f"must not override {name}"):
            type("Leaky", (TenantPageView,), {name: lambda self: None})


def test_a_page_view_must_put_the_base_first() -> None:
    with pytest.raises(TypeError, match="must not override dispatch"):
        type("Behind", (LoginView, TenantPageView), {})


def test_a_class_page_open_to_anonymous_visitors_still_needs_its_tenant(tenant: TenantFixture) -> None:
    class Open(TenantPageView):
        dangerously_allow_anonymous = True

        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse(self.tenant.slug)

    with tenant_context(tenant.tenant):
        served = Open.as_view()(anonymous_request(tenant.tenant))
        with pytest.raises(Http404):
            Open.as_view()(anonymous_request(None))

    assert isinstance(served, HttpResponse)
    assert (served.status_code, served.content) == (200, b"alpha")
