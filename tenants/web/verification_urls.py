"""The email verification link and signup's welcome link on a tenant's host (see aiaas/urls_tenant.py)."""

from django.urls import path

from tenants.web import views

urlpatterns = [
    path("verify-email/<str:token>/", views.VerifyEmailView.as_view(), name="verify-email"),
    path("welcome/<str:token>/", views.WelcomeView.as_view(), name="welcome"),
]
