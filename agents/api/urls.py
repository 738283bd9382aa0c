from rest_framework.routers import SimpleRouter

from agents.api.views import AgentViewSet, RunViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /agents and /agents/ both; API clients should not get redirects
router.register("agents", AgentViewSet, basename="agent")
router.register("runs", RunViewSet, basename="run")

urlpatterns = router.urls
