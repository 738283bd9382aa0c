"""The dashboard's Request logs pages, in the `dashboard` namespace (aiaas/urls_tenant.py)."""

from django.urls import path

from request_logs.web import views

urlpatterns = [
    path("request-logs/", views.request_logs, name="request-logs"),
    path("request-logs/<int:pk>/", views.request_log, name="request-log"),
    path("request-logs/settings/", views.logging_settings, name="request-logs-settings"),
]
