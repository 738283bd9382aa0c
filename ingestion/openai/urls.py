"""OpenAI's paths, exactly (no trailing slash): the SDK builds them."""

from django.urls import path

from ingestion.openai.views import FileViewSet, VectorStoreFileViewSet, VectorStoreViewSet

urlpatterns = [
    path("files", FileViewSet.as_view({"get": "list", "post": "create"}), name="v1-file-list"),
    path(
        "files/<str:file_id>",
        FileViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="v1-file-detail",
    ),
    path("files/<str:file_id>/content", FileViewSet.as_view({"get": "content"}), name="v1-file-content"),
    path(
        "vector_stores",
        VectorStoreViewSet.as_view({"get": "list", "post": "create"}),
        name="v1-vector-store-list",
    ),
    path(
        "vector_stores/<str:vector_store_id>",
        VectorStoreViewSet.as_view({"get": "retrieve", "post": "update", "delete": "destroy"}),
        name="v1-vector-store-detail",
    ),
    path(
        "vector_stores/<str:vector_store_id>/search",
        VectorStoreViewSet.as_view({"post": "search"}),
        name="v1-vector-store-search",
    ),
    path(
        "vector_stores/<str:vector_store_id>/files",
        VectorStoreFileViewSet.as_view({"get": "list", "post": "create"}),
        name="v1-vector-store-file-list",
    ),
    path(
        "vector_stores/<str:vector_store_id>/files/<str:file_id>",
        VectorStoreFileViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="v1-vector-store-file-detail",
    ),
    path(
        "vector_stores/<str:vector_store_id>/files/<str:file_id>/content",
        VectorStoreFileViewSet.as_view({"get": "content"}),
        name="v1-vector-store-file-content",
    ),
]
