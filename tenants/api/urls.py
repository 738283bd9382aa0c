from rest_framework.routers import SimpleRouter

from tenants.api.views import ApiKeyViewSet

router = SimpleRouter(trailing_slash="/?")  # type: ignore[arg-type]  # both spellings
router.register("keys", ApiKeyViewSet, basename="api-key")

urlpatterns = router.urls
