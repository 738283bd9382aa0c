"""URLs of a tenant's host (see aiaas/urls_tenant.py)."""

from django.contrib.auth.views import LogoutView
from django.urls import include, path

from accounts.web import views
from realtime.web import views as realtime_views
from routing.web.views import routing

dashboard_patterns = [
    path("", views.overview, name="overview"),
    path("usage/", views.usage, name="usage"),
    path("routing/", routing, name="routing"),
    path("keys/", views.keys, name="keys"),
    path("keys/<int:pk>/revoke/", views.revoke_key, name="revoke-key"),
    path("keys/<int:pk>/limits/", views.key_limits, name="key-limits"),
    path("team/", views.team, name="team"),
    path("team/<int:pk>/role/", views.change_member_role, name="change-role"),
    path("team/<int:pk>/remove/", views.remove_team_member, name="remove-member"),
    # The streaming chat playground (realtime/web/views.py).
    path("playground/", realtime_views.playground, name="playground"),
    path("playground/token/", realtime_views.playground_token, name="playground-token"),
    path("billing/", views.billing, name="billing"),
    path("billing/checkout/", views.billing_checkout, name="billing-checkout"),
    path("billing/portal/", views.billing_portal, name="billing-portal"),
]

urlpatterns = [
    path("", views.TenantLoginView.as_view(), name="home"),
    path("login/", views.TenantLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("invite/<uidb64>/<token>/", views.AcceptInviteView.as_view(), name="accept-invite"),
    path("dashboard/", include((dashboard_patterns, "dashboard"))),
]
