"""Dashboard URLs of evals (aiaas/urls_tenant.py includes them under dashboard/evals/)."""

from django.urls import path

from evals.web import comparison, datasets, experiments, router_quality
from flags.web.gates import feature_pages

app_name = "evals"
urlpatterns = [
    path("", experiments.experiment_list, name="experiments"),
    path("new/", experiments.experiment_new, name="new"),
    path("compare/", comparison.compare, name="compare"),
    path("router/", router_quality.router_quality, name="router-quality"),
    path("experiments/<str:pk>/", experiments.experiment_detail, name="experiment"),
    path("experiments/<str:pk>/progress/", experiments.experiment_progress, name="progress"),
    path("experiments/<str:pk>/stream-token/", experiments.experiment_stream_token, name="stream-token"),
    path("experiments/<str:pk>/cancel/", experiments.experiment_cancel, name="cancel"),
    path("results/<int:pk>/label/", experiments.result_label, name="label"),
    path("datasets/", datasets.dataset_list, name="datasets"),
    path("datasets/new/", datasets.dataset_create, name="dataset-create"),
    path("datasets/golden/", datasets.golden_suite_use, name="golden"),
    path("datasets/from-traffic/", datasets.dataset_from_traffic, name="from-traffic"),
    path("datasets/<int:pk>/", datasets.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/import/", datasets.dataset_import, name="import"),
    path("datasets/<int:pk>/export/", datasets.dataset_export, name="export"),
]
# Off for a tenant (flags/): each page answers 404 "not enabled for this workspace".
urlpatterns = feature_pages("evals", urlpatterns)
