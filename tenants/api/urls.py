from rest_framework.routers import SimpleRouter

from tenants.api.views import ApiKeyViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /keys and /keys/ both; API clients should not get redirects
router.register("keys", ApiKeyViewSet, basename="api-key")

urlpatterns = router.urls
