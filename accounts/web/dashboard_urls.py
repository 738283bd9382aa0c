"""The dashboard's overview and team pages, in the `dashboard` namespace (aiaas/urls_tenant.py)."""

from django.urls import path

from accounts.web import views
from accounts.web.charts import OVERVIEW_CHARTS

urlpatterns = [
    path("", views.overview, name="overview"),
    path("team/", views.team, name="team"),
    path("team/<int:pk>/role/", views.change_member_role, name="change-role"),
    path("team/<int:pk>/remove/", views.remove_team_member, name="remove-member"),
    *OVERVIEW_CHARTS.urls(),
]
