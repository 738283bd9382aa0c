"""The public host (BASE_DOMAIN): home with signup, the Django admin for staff,
and Stripe's webhooks."""

from django.contrib import admin
from django.urls import include, path

from billing.web.views import stripe_webhook

urlpatterns = [
    path("admin/", admin.site.urls),
    path("billing/stripe/webhook/", stripe_webhook, name="stripe-webhook"),
    path("", include("tenants.web.urls")),
]
