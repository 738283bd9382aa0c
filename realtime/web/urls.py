"""The dashboard's chat playground, in the `dashboard` namespace (aiaas/urls_tenant.py)."""

from django.urls import path

from realtime.web import views

urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("playground/token/", views.playground_token, name="playground-token"),
]
