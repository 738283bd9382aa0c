from rest_framework.routers import SimpleRouter

from request_logs.api.views import RequestLogViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # /request-logs and /request-logs/ both; API clients should not get redirects
router.register("request-logs", RequestLogViewSet, basename="request-log")

urlpatterns = router.urls
