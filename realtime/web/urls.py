"""The dashboard's chat playground, in the `dashboard` namespace (aiaas/urls_tenant.py)."""

from django.urls import path

from flags.web.gates import feature_pages
from realtime.web import views

urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("playground/token/", views.playground_token, name="playground-token"),
]
# Off for a tenant (flags/): each page answers 404 "not enabled for this workspace".
urlpatterns = feature_pages("playground", urlpatterns)
