"""The API URLConf with the request-log routes, whether or not aiaas/urls_api.py includes them yet."""

from django.urls import include, path

from aiaas.urls_api import handler400, handler403, handler404, handler500
from aiaas.urls_api import urlpatterns as api_urlpatterns

urlpatterns = [path("api/v1/", include("request_logs.api.urls")), *api_urlpatterns]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
