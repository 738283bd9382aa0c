"""The public host (BASE_DOMAIN): home with signup, the Django admin for staff,
and Stripe's webhooks."""

from django.contrib import admin
from django.urls import include, path

from accounts.web.forms import StaffLoginForm
from billing.web.views import stripe_webhook

admin.site.login_form = StaffLoginForm  # throttled like a tenant's sign-in

urlpatterns = [
    path("admin/", admin.site.urls),
    path("billing/stripe/webhook/", stripe_webhook, name="stripe-webhook"),
    path("", include("tenants.web.urls")),
]
