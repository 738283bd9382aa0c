from rest_framework.routers import SimpleRouter

from evals.api.views import DatasetViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /datasets and /datasets/ both; API clients should not get redirects
router.register("datasets", DatasetViewSet, basename="dataset")

urlpatterns = router.urls
