"""A tenant's host (<slug>.BASE_DOMAIN): login and the dashboard."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.web.urls")),
    path("dashboard/agents/", include("agents.web.urls")),
]
