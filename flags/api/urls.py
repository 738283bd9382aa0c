from django.urls import re_path

from flags.api.views import FlagViewSet

urlpatterns = [
    # With and without the trailing slash, as the other routes; API clients should not get redirects.
    re_path(r"^flags/?$", FlagViewSet.as_view({"get": "evaluated"}), name="flag-list"),
]
