from django.urls import re_path

from routing.api.views import RoutingReportViewSet, RoutingSettingsViewSet

urlpatterns = [
    # With and without the trailing slash, as the other routes; API clients should not get redirects.
    re_path(r"^routing/report/?$", RoutingReportViewSet.as_view({"get": "report"}), name="routing-report"),
    re_path(
        r"^routing/settings/?$",
        RoutingSettingsViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="routing-settings",
    ),
]
