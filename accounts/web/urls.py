"""Signing in on a tenant's host (see aiaas/urls_tenant.py)."""

from django.urls import path

from accounts.web import views

urlpatterns = [
    path("", views.TenantLoginView.as_view(), name="home"),
    path("login/", views.TenantLoginView.as_view(), name="login"),
    path("logout/", views.TenantLogoutView.as_view(), name="logout"),
    path("invite/<uidb64>/<token>/", views.AcceptInviteView.as_view(), name="accept-invite"),
    path("password-reset/", views.TenantPasswordResetView.as_view(), name="password-reset"),
    path("password-reset/sent/", views.TenantPasswordResetSentView.as_view(), name="password-reset-sent"),
    path(
        "reset/<uidb64>/<token>/",
        views.TenantPasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
]
