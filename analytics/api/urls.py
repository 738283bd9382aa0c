from django.urls import re_path

from analytics.api.views import AnalyticsViewSet

urlpatterns = [
    # With and without the trailing slash, as the other routes; API clients should not get redirects.
    re_path(r"^analytics/summary/?$", AnalyticsViewSet.as_view({"get": "summary"}), name="analytics-summary"),
    re_path(
        r"^analytics/timeseries/?$",
        AnalyticsViewSet.as_view({"get": "timeseries"}),
        name="analytics-timeseries",
    ),
]
