"""The public host (BASE_DOMAIN): home with signup, and the Django admin for staff."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("tenants.web.urls")),
]
