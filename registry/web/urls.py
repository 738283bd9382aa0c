"""Dashboard URLs of prompts (included by aiaas/urls_tenant.py under dashboard/prompts/).
A `pk` is one version's entry; its page shows the whole prompt around it."""

from django.urls import path

from registry.web import views

app_name = "prompts"
urlpatterns = [
    path("", views.prompt_list, name="list"),
    path("new/", views.prompt_new, name="new"),
    path("<int:pk>/", views.prompt_version, name="version"),
    path("<int:pk>/diff/", views.prompt_diff, name="diff"),
    path("<int:pk>/promote/", views.prompt_promote, name="promote"),
    path("<int:pk>/rollback/", views.prompt_rollback, name="rollback"),
]
