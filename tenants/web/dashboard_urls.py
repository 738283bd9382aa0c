"""The dashboard's API keys pages, the workspace's settings and the owner's "send the
email link again", in the `dashboard` namespace (aiaas/urls_tenant.py).

tenants/web/urls.py is the public host's signup."""

from django.urls import path

from tenants.web import views

urlpatterns = [
    path("verification/resend/", views.resend_verification, name="resend-verification"),
    path("keys/", views.keys, name="keys"),
    path("keys/<int:pk>/", views.key_detail, name="key"),
    path("keys/<int:pk>/revoke/", views.revoke_key, name="revoke-key"),
    path("keys/<int:pk>/limits/", views.key_limits, name="key-limits"),
    path("settings/", views.workspace_settings, name="settings"),
]
