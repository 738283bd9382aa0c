"""URLs of the public host (see aiaas/urls_public.py)."""

from django.urls import path

from tenants.web import views

urlpatterns = [
    path("", views.home, name="home"),
]
