"""Dashboard URLs of prompts (included by aiaas/urls_tenant.py under dashboard/prompts/)."""

from django.urls import path

from registry.web import views

app_name = "prompts"
urlpatterns = [
    path("", views.prompt_list, name="list"),
    path("new/", views.prompt_new, name="new"),
    path("<str:name>/", views.prompt_detail, name="detail"),
    path("<str:name>/diff/", views.prompt_diff, name="diff"),
    path("<str:name>/rollback/", views.prompt_rollback, name="rollback"),
    path("<str:name>/v<int:version>/", views.prompt_version, name="version"),
    path("<str:name>/v<int:version>/promote/", views.prompt_promote, name="promote"),
]
