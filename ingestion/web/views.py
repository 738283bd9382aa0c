"""The dashboard's knowledge pages: collections, and per collection its documents
(upload by drag and drop, URL, pasted text) with live progress, and a search box.

Reading is for every member; what spends tokens (ingesting, searching) is for
owners and admins, attributed to an inference key they choose, as agent runs are.
Progress arrives on each document's realtime stream through a stream token the
page asks for (acting as the document's key); the page polls `progress` when
no stream can be opened.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.selectors import active_api_keys_of
from gateway.errors import GatewayError
from ingestion import selectors, services
from ingestion.models import Collection, Document, DocumentStatus
from ingestion.search import SearchInputError, search
from ingestion.web.forms import CollectionForm, SearchForm, TextForm, UploadForm, UrlForm
from ingestion.web.highlighting import highlight
from realtime.tokens import StreamTokenClaims, mint_stream_token_sync
from routing.selectors import enabled_models
from tenants.models import ApiKey, ApiKeyScope, Tenant
from tenants.web.base import PageAccess, manager_page, tenant_page

IN_PROGRESS = (DocumentStatus.QUEUED, DocumentStatus.PROCESSING)


def inference_keys_of(tenant: Tenant) -> list[ApiKey]:
    keys = active_api_keys_of(tenant).order_by("name")
    return [key for key in keys if key.has_scope(ApiKeyScope.INFERENCE)]


def embedding_models() -> Any:
    return enabled_models().filter(supports_embeddings=True).order_by("model_id")


@tenant_page
@require_http_methods(["GET", "POST"])
def collection_list(request: HttpRequest, access: PageAccess) -> HttpResponse:
    keys = inference_keys_of(access.tenant)
    form = CollectionForm(request.POST or None, keys=keys, models=embedding_models())
    if request.method == "POST":
        access.require_manager()
        if form.is_valid():
            try:
                collection = services.create_collection(
                    name=form.cleaned_data["name"],
                    embedding_model=form.cleaned_data["embedding_model"],
                    api_key_id=form.cleaned_data["api_key"].pk,
                )
            except services.IngestionInputError as error:
                form.add_error(None, error.message)
            else:
                return redirect("ingestion:collection", pk=collection.pk)
    context = {"collections": selectors.collections_list(), "form": form}
    return render(request, "ingestion/collections.html", context, status=400 if form.errors else 200)


def collection_page(
    request: HttpRequest, access: PageAccess, collection: Collection, status: int = 200, **forms: Any
) -> HttpResponse:
    keys = inference_keys_of(access.tenant)
    search_form = forms.pop("search_form", None) or SearchForm(keys=keys)
    context: dict[str, Any] = {
        "collection": collection,
        "documents": selectors.documents_list(collection),
        "upload_form": forms.get("upload_form") or UploadForm(keys=keys),
        "url_form": forms.get("url_form") or UrlForm(keys=keys),
        "text_form": forms.get("text_form") or TextForm(keys=keys),
        "search_form": search_form,
        "results": forms.get("results"),
    }
    return render(request, "ingestion/collection.html", context, status=status)


@tenant_page
@require_GET
def collection_detail(request: HttpRequest, access: PageAccess, pk: str) -> HttpResponse:
    """The collection; with `q`, also the results of searching it (owners and admins)."""
    collection = get_object_or_404(Collection, pk=pk)
    if "q" not in request.GET:
        return collection_page(request, access, collection)
    access.require_manager()
    form = SearchForm(request.GET, keys=inference_keys_of(access.tenant))
    results = run_search(collection, form) if form.is_valid() else None
    status = 400 if form.errors else 200
    return collection_page(request, access, collection, status, search_form=form, results=results)


def run_search(collection: Collection, form: SearchForm) -> list[dict[str, Any]] | None:
    query = form.cleaned_data["q"]
    try:
        result = search(
            collection, query, top_k=10, mode=form.cleaned_data["mode"], api_key=form.cleaned_data["api_key"]
        )
    except SearchInputError as error:
        form.add_error("q", error.message)
        return None
    except GatewayError as error:
        form.add_error(None, f"The query could not be embedded: {error.message}")
        return None
    return [
        {"hit": hit, "highlighted": highlight(hit.text, query), "place": hit.heading or hit.page}
        for hit in result.hits
    ]


@manager_page
@require_POST
def collection_delete(request: HttpRequest, access: PageAccess, pk: str) -> HttpResponse:
    collection = get_object_or_404(Collection, pk=pk)
    services.delete_collection(collection)
    messages.success(request, f"Deleted “{collection.name}” with its documents.")
    return redirect("ingestion:collections")


@manager_page
@require_POST
def document_upload(request: HttpRequest, access: PageAccess, pk: str) -> HttpResponse:
    collection = get_object_or_404(Collection, pk=pk)
    form = UploadForm(request.POST, request.FILES, keys=inference_keys_of(access.tenant))
    if not form.is_valid():
        return collection_page(request, access, collection, 400, upload_form=form)
    key_id = form.cleaned_data["api_key"].pk
    for upload in form.cleaned_data["documents"]:
        try:
            stored = services.store_file(
                upload,
                filename=upload.name or "",
                purpose="assistants",
                content_type=upload.content_type or "",
                api_key_id=key_id,
            )
            services.add_file(collection, stored, api_key_id=key_id)
        except services.IngestionInputError as error:
            messages.error(request, f"{upload.name}: {error.message}")
        else:
            messages.success(request, f"{upload.name}: added; ingestion has started.")
    return redirect("ingestion:collection", pk=collection.pk)


@manager_page
@require_POST
def document_add_url(request: HttpRequest, access: PageAccess, pk: str) -> HttpResponse:
    collection = get_object_or_404(Collection, pk=pk)
    form = UrlForm(request.POST, keys=inference_keys_of(access.tenant))
    if form.is_valid():
        try:
            services.add_url(
                collection, url=form.cleaned_data["url"], api_key_id=form.cleaned_data["api_key"].pk
            )
        except services.IngestionInputError as error:
            form.add_error("url", error.message)
        else:
            return redirect("ingestion:collection", pk=collection.pk)
    return collection_page(request, access, collection, 400, url_form=form)


@manager_page
@require_POST
def document_add_text(request: HttpRequest, access: PageAccess, pk: str) -> HttpResponse:
    collection = get_object_or_404(Collection, pk=pk)
    form = TextForm(request.POST, keys=inference_keys_of(access.tenant))
    if form.is_valid():
        try:
            services.add_text(
                collection,
                text=form.cleaned_data["text"],
                title=form.cleaned_data["title"],
                api_key_id=form.cleaned_data["api_key"].pk,
            )
        except services.IngestionInputError as error:
            form.add_error("text", error.message)
        else:
            return redirect("ingestion:collection", pk=collection.pk)
    return collection_page(request, access, collection, 400, text_form=form)


@manager_page
@require_POST
def document_delete(request: HttpRequest, access: PageAccess, pk: str) -> HttpResponse:
    document = get_object_or_404(Document, pk=pk)
    services.delete_document(document)
    messages.success(request, f"Deleted “{document}” and its chunks.")
    return redirect("ingestion:collection", pk=document.collection_id)


def progress_of(document: Document) -> dict[str, Any]:
    return {
        "id": document.pk,
        "status": document.status,
        "chunks_done": document.chunks_done,
        "chunks_total": document.chunks_total,
        "chunk_count": document.chunk_count,
        "error": document.error,
    }


@tenant_page
@require_GET
def documents_progress(request: HttpRequest, access: PageAccess, pk: str) -> JsonResponse:
    """Every document's progress (the page polls this when it cannot follow the streams)."""
    collection = get_object_or_404(Collection, pk=pk)
    documents = [progress_of(document) for document in selectors.documents_list(collection)]
    return JsonResponse({"documents": documents})


@tenant_page
@never_cache
@require_POST
def document_stream_token(request: HttpRequest, access: PageAccess, pk: str) -> JsonResponse:
    """A single-use token for the document's progress stream, from this origin only,
    acting as the key the document's work is attributed to."""
    document = get_object_or_404(Document, pk=pk)
    api_key = next((key for key in inference_keys_of(access.tenant) if key.pk == document.api_key_id), None)
    if api_key is None or not document.stream_id:
        return JsonResponse(
            {"error": {"message": "This document's progress has no stream to follow."}}, status=409
        )
    claims = StreamTokenClaims(
        tenant_id=access.tenant.pk,
        schema_name=access.tenant.schema_name,
        api_key_id=api_key.pk,
        purpose="streams",
        stream_id=document.stream_id,
        origin=f"{request.scheme}://{request.get_host()}".lower(),
        page_checked=True,
    )
    return JsonResponse(mint_stream_token_sync(claims))
