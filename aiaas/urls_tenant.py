"""A tenant's host (<slug>.BASE_DOMAIN): signing in, and the dashboard.

Each domain app owns its dashboard pages in its web/ package; they share the
one `dashboard` namespace (templates reverse "dashboard:keys" whoever owns it).
Every view here goes through tenants/web/base.py, and
tenants/tests/test_tenant_pages.py fails for any that does not.
"""

from django.urls import include, path

dashboard_pages = [
    path("", include("accounts.web.dashboard_urls")),  # overview, team
    path("", include("tenants.web.dashboard_urls")),  # API keys
    path("", include("billing.web.urls")),  # usage, billing
    path("", include("routing.web.urls")),
    path("", include("analytics.web.urls")),
    path("", include("realtime.web.urls")),  # the chat playground
    path("", include("request_logs.web.urls")),
]

urlpatterns = [
    path("", include("accounts.web.urls")),
    path("", include("tenants.web.verification_urls")),
    path("dashboard/", include((dashboard_pages, "dashboard"))),
    path("dashboard/agents/", include("agents.web.urls")),
    path("dashboard/knowledge/", include("ingestion.web.urls")),
    path("dashboard/evals/", include("evals.web.urls")),
]
