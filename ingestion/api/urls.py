from rest_framework.routers import SimpleRouter

from ingestion.api.views import CollectionViewSet, DocumentViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /collections and /collections/ both; API clients should not get redirects
router.register("collections", CollectionViewSet, basename="collection")
router.register("documents", DocumentViewSet, basename="document")

urlpatterns = router.urls
