from django.urls import re_path

from billing.api.views import BillingPreviewViewSet, UsageViewSet

urlpatterns = [
    # /usage and /usage/ both, as the router's routes; API clients should not get redirects.
    re_path(r"^usage/?$", UsageViewSet.as_view({"get": "report"}), name="usage-list"),
    re_path(
        r"^billing/preview/?$", BillingPreviewViewSet.as_view({"get": "preview"}), name="billing-preview"
    ),
]
