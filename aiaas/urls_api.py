"""/v1 (OpenAI-compatible) and /api (platform REST), served on any host; the
tenant comes from the API key."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from aiaas.api_errors import bad_request_view, json_error_view, unknown_url_view

urlpatterns = [
    path("api/v1/", include("tenants.api.urls")),
    path("api/v1/", include("billing.api.urls")),
    path("api/v1/", include("analytics.api.urls")),
    path("api/v1/", include("request_logs.api.urls")),
    path("api/v1/", include("routing.api.urls")),
    path("api/v1/", include("agents.api.urls")),
    path("api/v1/", include("registry.api.urls")),
    path("api/v1/", include("ingestion.api.urls")),
    path("api/v1/", include("ingestion.api.search_urls")),
    path("api/v1/", include("evals.api.urls")),
    path("api/v1/", include("flags.api.urls")),
    # OpenAI's Files, Vector Stores and Batches: CRUD over the tenant's schema, so Django's (aiaas/asgi.py).
    path("v1/", include("ingestion.openai.urls")),
    path("v1/", include("batches.openai.urls")),
    path(
        "api/schema/",
        # This URLConf, not ROOT_URLCONF (the tenant dashboard's), which the view would describe.
        SpectacularAPIView.as_view(
            urlconf="aiaas.urls_api", authentication_classes=[], permission_classes=[]
        ),
        name="openapi-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(
            url_name="openapi-schema", authentication_classes=[], permission_classes=[]
        ),
        name="swagger-ui",
    ),
    re_path(r"^(?P<path>.*)$", unknown_url_view, name="unknown-url"),
]

handler400 = bad_request_view
handler403 = json_error_view(403, "Forbidden.", "forbidden")
handler404 = json_error_view(404, "Unknown URL.", "not_found")
handler500 = json_error_view(500, "The server failed to handle the request.", "server_error")
