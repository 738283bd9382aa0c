"""Dashboard URLs of knowledge collections (aiaas/urls_tenant.py includes them under dashboard/knowledge/)."""

from django.urls import path

from flags.web.gates import feature_pages
from ingestion.web import views

app_name = "ingestion"
urlpatterns = [
    path("", views.collection_list, name="collections"),
    path("<str:pk>/", views.collection_detail, name="collection"),
    path("<str:pk>/delete/", views.collection_delete, name="collection-delete"),
    path("<str:pk>/upload/", views.document_upload, name="upload"),
    path("<str:pk>/url/", views.document_add_url, name="add-url"),
    path("<str:pk>/text/", views.document_add_text, name="add-text"),
    path("<str:pk>/progress/", views.documents_progress, name="progress"),
    path("documents/<str:pk>/delete/", views.document_delete, name="document-delete"),
    path("documents/<str:pk>/stream-token/", views.document_stream_token, name="stream-token"),
]
# Off for a tenant (flags/): each page answers 404 "not enabled for this workspace".
urlpatterns = feature_pages("ingestion", urlpatterns)
