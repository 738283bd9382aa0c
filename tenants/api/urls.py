from django.urls import re_path
from rest_framework.routers import SimpleRouter

from tenants.api.views import ApiKeyViewSet, TenantSettingsViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /keys and /keys/ both; API clients should not get redirects
router.register("keys", ApiKeyViewSet, basename="api-key")

urlpatterns = [
    *router.urls,
    re_path(
        r"^tenant/settings/?$",
        TenantSettingsViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="tenant-settings",
    ),
]
