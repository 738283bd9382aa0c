from rest_framework.routers import SimpleRouter

from registry.api.views import PromptViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /prompts and /prompts/ both; API clients should not get redirects
router.register("prompts", PromptViewSet, basename="prompt")

urlpatterns = router.urls
