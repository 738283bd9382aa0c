"""Dashboard URLs of agents (included by aiaas/urls_tenant.py under dashboard/agents/)."""

from django.urls import path

from agents.web import views
from flags.web.gates import feature_pages

app_name = "agents"
urlpatterns = [
    path("", views.agent_list, name="list"),
    path("new/", views.agent_edit, name="new"),
    path("<int:pk>/", views.agent_edit, name="edit"),
    path("<int:pk>/delete/", views.agent_delete, name="delete"),
    path("<int:pk>/runs/", views.run_start, name="start-run"),
    path("runs/", views.run_list, name="runs"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/events/", views.run_events, name="run-events"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:pk>/replay/", views.run_replay, name="run-replay"),
]
# Off for a tenant (flags/): each page answers 404 "not enabled for this workspace".
urlpatterns = feature_pages("agents", urlpatterns)
