from rest_framework.routers import SimpleRouter

from evals.api.views import DatasetViewSet, ExperimentViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /datasets and /datasets/ both; API clients should not get redirects
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("experiments", ExperimentViewSet, basename="experiment")

urlpatterns = router.urls
