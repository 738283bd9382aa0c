"""OpenAI's paths, exactly (no trailing slash): the SDK builds them."""

from django.urls import path

from batches.openai.views import BatchViewSet

urlpatterns = [
    path("batches", BatchViewSet.as_view({"get": "list", "post": "create"}), name="v1-batch-list"),
    path("batches/<str:batch_id>", BatchViewSet.as_view({"get": "retrieve"}), name="v1-batch-detail"),
    path("batches/<str:batch_id>/cancel", BatchViewSet.as_view({"post": "cancel"}), name="v1-batch-cancel"),
]
