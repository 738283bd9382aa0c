"""The dashboard's usage and billing pages, in the `dashboard` namespace (aiaas/urls_tenant.py).

The Stripe webhook is on the public host (aiaas/urls_public.py)."""

from django.urls import path

from billing.web import views
from billing.web.charts import BILLING_CHARTS, USAGE_CHARTS

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("billing/", views.billing, name="billing"),
    path("billing/checkout/", views.billing_checkout, name="billing-checkout"),
    path("billing/plan/", views.billing_change_plan, name="billing-change-plan"),
    path("billing/portal/", views.billing_portal, name="billing-portal"),
    *USAGE_CHARTS.urls(),
    *BILLING_CHARTS.urls(),
]
