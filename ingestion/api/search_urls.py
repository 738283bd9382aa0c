"""The search route, apart from ingestion/api/urls.py (the collections and documents REST)."""

from django.urls import path

from ingestion.api.search import CollectionSearchViewSet

urlpatterns = [
    path(
        "collections/<str:pk>/search",
        CollectionSearchViewSet.as_view({"post": "search"}),
        name="collection-search",
    ),
]
