"""The dashboard's knowledge pages on the tenant's host: collections are created and
filled by upload, URL and text, attributed to the chosen key; progress is served for
the page's bars; search results mark the query's terms in escaped text; and nothing
of one tenant shows on another's host."""

from __future__ import annotations

from django.contrib.postgres.search import SearchVector
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Value
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from ingestion.models import Chunk, Collection, Document, DocumentSource, DocumentStatus
from ingestion.tests.factories import make_collection_with_file, make_stored_collection
from ingestion.web.highlighting import highlight
from tenants.models import ApiKey
from testing.tenants import TenantFixture

KNOWLEDGE = "/dashboard/knowledge/"


def key_id(tenant: TenantFixture) -> str:
    return str(tenant.provisioned.issued_key.api_key.pk)


def test_a_collection_is_created_with_the_chosen_model_and_key(tenant: TenantFixture, registry: str) -> None:
    browser = tenant.web_client()

    response = browser.post(
        KNOWLEDGE, {"name": "Handbook", "embedding_model": "sim-small", "api_key": key_id(tenant)}
    )

    with tenant_context(tenant.tenant):
        collection = Collection.objects.get(name="Handbook")
    assert response["Location"] == f"{KNOWLEDGE}{collection.pk}/"
    assert (collection.embedding_model, collection.api_key_id) == ("sim-small", int(key_id(tenant)))
    assert "Handbook" in browser.get(KNOWLEDGE).content.decode()


def test_an_unknown_embedding_model_is_shown_on_the_form(tenant: TenantFixture, registry: str) -> None:
    response = tenant.web_client().post(
        KNOWLEDGE, {"name": "Handbook", "embedding_model": "no-such-model", "api_key": key_id(tenant)}
    )

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    with tenant_context(tenant.tenant):
        assert not Collection.objects.exists()


def test_uploads_urls_and_text_become_queued_documents_of_the_chosen_key(tenant: TenantFixture) -> None:
    collection = make_stored_collection(tenant)
    browser = tenant.web_client()
    page = f"{KNOWLEDGE}{collection.pk}/"
    files = [
        SimpleUploadedFile("a.md", b"# A\n\nfirst"),
        SimpleUploadedFile("b.txt", b"second"),
    ]

    uploaded = browser.post(f"{page}upload/", {"documents": files, "api_key": key_id(tenant)})
    linked = browser.post(f"{page}url/", {"url": "https://docs.example.com/guide", "api_key": key_id(tenant)})
    pasted = browser.post(f"{page}text/", {"title": "Pasted", "text": "third", "api_key": key_id(tenant)})

    assert [uploaded["Location"], linked["Location"], pasted["Location"]] == [page] * 3
    with tenant_context(tenant.tenant):
        documents = list(Document.objects.filter(collection=collection).order_by("created_at"))
    assert [(d.title, d.source, d.status, d.api_key_id) for d in documents] == [
        ("a.md", DocumentSource.UPLOAD, DocumentStatus.QUEUED, int(key_id(tenant))),
        ("b.txt", DocumentSource.UPLOAD, DocumentStatus.QUEUED, int(key_id(tenant))),
        ("", DocumentSource.URL, DocumentStatus.QUEUED, int(key_id(tenant))),
        ("Pasted", DocumentSource.TEXT, DocumentStatus.QUEUED, int(key_id(tenant))),
    ]
    html = browser.get(page).content.decode()
    assert html.count("<progress") == 4
    assert 'id="dropzone"' in html
    assert 'type="file" name="documents"' in html


def test_every_form_preselects_the_only_key(tenant: TenantFixture) -> None:
    """A file dropped on the page is submitted at once: with one key there is nothing to choose."""
    # Other tests' servers may have committed keys to this tenant: this one keeps one.
    only = tenant.provisioned.issued_key.api_key
    ApiKey.objects.filter(tenant=tenant.tenant).exclude(pk=only.pk).update(revoked_at=timezone.now())
    collection = make_stored_collection(tenant)

    html = tenant.web_client().get(f"{KNOWLEDGE}{collection.pk}/").content.decode()

    assert html.count(f'<option value="{key_id(tenant)}" selected>') == 4  # upload, URL, text, search


def test_a_bad_url_is_shown_on_the_form(tenant: TenantFixture) -> None:
    collection = make_stored_collection(tenant)

    response = tenant.web_client().post(
        f"{KNOWLEDGE}{collection.pk}/url/", {"url": "ftp://files.example.com/a", "api_key": key_id(tenant)}
    )

    assert response.status_code == 400
    with tenant_context(tenant.tenant):
        assert not Document.objects.filter(collection=collection).exists()


def test_progress_and_a_stream_token_are_served_for_the_bars(tenant: TenantFixture) -> None:
    collection = make_stored_collection(tenant)
    with tenant_context(tenant.tenant):
        document = Document.objects.create(
            collection=collection,
            source=DocumentSource.TEXT,
            text="x",
            status=DocumentStatus.PROCESSING,
            chunks_done=3,
            chunks_total=8,
            api_key_id=int(key_id(tenant)),
            stream_id="ingest_" + "a" * 32,
        )
    browser = tenant.web_client()

    progress = browser.get(f"{KNOWLEDGE}{collection.pk}/progress/").json()
    token = browser.post(f"{KNOWLEDGE}documents/{document.pk}/stream-token/").json()

    assert progress == {
        "documents": [
            {
                "id": document.pk,
                "status": "processing",
                "chunks_done": 3,
                "chunks_total": 8,
                "chunk_count": 0,
                "error": "",
            }
        ]
    }
    assert (token["purpose"], token["stream_id"]) == ("streams", document.stream_id)
    assert token["token"].startswith("st_")


def test_search_results_mark_the_query_terms_in_escaped_text(tenant: TenantFixture) -> None:
    collection = make_stored_collection(tenant)
    text = 'Restart the worker, then check the queue: 1 < 2 & "<b>"'
    with tenant_context(tenant.tenant):
        Collection.objects.filter(pk=collection.pk).update(dimensions=64)
        document = Document.objects.create(
            collection=collection,
            source=DocumentSource.TEXT,
            title="Runbook",
            text=text,
            status=DocumentStatus.READY,
            generation=1,
        )
        Chunk.objects.create(
            document=document,
            collection=collection,
            generation=1,
            position=0,
            text=text,
            heading="Operations",
            token_count=9,
            embedding=[0.1] * 64,
            dimensions=64,
            search_vector=SearchVector(Value(text), config="english"),
        )

    response = tenant.web_client().get(
        f"{KNOWLEDGE}{collection.pk}/", {"q": "worker queue", "mode": "keyword", "api_key": key_id(tenant)}
    )

    html = response.content.decode()
    assert response.status_code == 200
    marked = "Restart the <mark>worker</mark>, then check the <mark>queue</mark>"
    assert f"{marked}: 1 &lt; 2 &amp; &quot;&lt;b&gt;&quot;" in html
    assert "Runbook · Operations" in html


def test_highlighting_escapes_before_marking() -> None:
    assert highlight("a <b>tenants</b> & Tenant", "tenant amp") == (
        "a &lt;b&gt;<mark>tenants</mark>&lt;/b&gt; &amp; <mark>Tenant</mark>"
    )
    assert highlight("<i>x</i>", "") == "&lt;i&gt;x&lt;/i&gt;"
    assert highlight("1 < 2", "<script>") == "1 &lt; 2"


def test_members_can_look_but_not_add_or_delete(tenant: TenantFixture) -> None:
    collection = make_stored_collection(tenant)
    member = browser_for(tenant, make_user(tenant, email="reader@alpha.example", role=Role.MEMBER))
    page = f"{KNOWLEDGE}{collection.pk}/"

    assert member.get(page).status_code == 200
    assert member.post(f"{page}text/", {"text": "x", "api_key": key_id(tenant)}).status_code == 403
    assert member.post(f"{page}delete/").status_code == 403
    with tenant_context(tenant.tenant):
        assert Collection.objects.filter(pk=collection.pk).exists()
        assert not Document.objects.exists()


def test_another_tenants_user_gets_404_on_every_page(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    collection = make_collection_with_file(tenant)
    with tenant_context(tenant.tenant):
        document = Document.objects.get(collection=collection)
    outsider = other_tenant.web_client()
    page = f"{KNOWLEDGE}{collection.pk}/"
    document_page = f"{KNOWLEDGE}documents/{document.pk}/"

    for url in (page, f"{page}progress/", f"{page}?q=notes&mode=keyword"):
        assert outsider.get(url).status_code == 404, url
    for url in (
        f"{page}upload/",
        f"{page}url/",
        f"{page}text/",
        f"{page}delete/",
        f"{document_page}delete/",
        f"{document_page}stream-token/",
    ):
        assert outsider.post(url, {"text": "x", "url": "https://example.com/"}).status_code == 404, url
    assert collection.pk not in outsider.get(KNOWLEDGE).content.decode()
    with tenant_context(tenant.tenant):
        assert Document.objects.filter(pk=document.pk).exists()
