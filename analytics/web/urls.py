"""The dashboard's Analytics page and its CSV export, in the `dashboard` namespace (aiaas/urls_tenant.py)."""

from django.urls import path

from analytics.web import views

urlpatterns = [
    path("analytics/", views.analytics, name="analytics"),
    path("analytics/export.csv", views.analytics_export, name="analytics-export"),
]
