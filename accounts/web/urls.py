"""Signing in on a tenant's host (see aiaas/urls_tenant.py)."""

from django.urls import path

from accounts.web import views

urlpatterns = [
    path("", views.TenantLoginView.as_view(), name="home"),
    path("login/", views.TenantLoginView.as_view(), name="login"),
    path("logout/", views.TenantLogoutView.as_view(), name="logout"),
    path("invite/<uidb64>/<token>/", views.AcceptInviteView.as_view(), name="accept-invite"),
]
