"""The retrieve step against real chunks in a tenant's schema and the simulated
provider's embeddings: its context reaches a later llm step's prompt, its citations
number the hits, a resumed run does not search again, and a missing collection
fails the run (compensated like any failure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.postgres.search import SearchVector
from django.db.models import Value
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from agents import events
from agents.models import RunStatus
from agents.spec import SpecError, compile_spec, parse_workflow
from agents.steps.definitions import RetrieveStep, StepKind
from agents.tests.factories import make_run
from agents.tests.test_execution import Crash, crash_on, event_types, execute, output_of, usage_stream_entries
from gateway.simulated.provider import ChatMessage, answer_words, embed
from ingestion.models import Chunk, Collection, Document
from ingestion.search import SearchMode
from testing.agents import Ledger
from testing.tenants import TenantFixture

_names = itertools.count(1)
PASSAGES: dict[str, list[tuple[str, int | None, str]]] = {
    "Boilers": [
        ("Safety", 3, "Bleed the radiator valves before the heating season starts."),
        ("Safety", 4, "A boiler pressure above two bar needs a plumber."),
    ],
    "Gardens": [("Soil", None, "Tomatoes want deep watering twice a week.")],
}


@dataclass(frozen=True)
class Stored:
    collection: Collection
    documents: dict[str, Document]
    chunks: dict[str, Chunk]  # by text


def store(tenant: TenantFixture, name: str | None = None) -> Stored:
    """A collection of the sim-small model (64 dimensions) with PASSAGES as its ready
    chunks; named uniquely unless `name` is given (the test tenant outlives a test)."""
    name = name or f"manuals-{next(_names)}"
    with tenant_context(tenant.tenant):
        collection = Collection.objects.create(name=name, embedding_model="sim-small", dimensions=64)
        documents, chunks = {}, {}
        for title, passages in PASSAGES.items():
            document = Document.objects.create(
                collection=collection,
                title=title,
                source="text",
                status="ready",
                generation=1,
                metadata={"topic": title.lower()},
            )
            documents[title] = document
            for position, (heading, page, text) in enumerate(passages):
                chunks[text] = Chunk.objects.create(
                    document=document,
                    collection=collection,
                    generation=1,
                    position=position,
                    text=text,
                    heading=heading,
                    page=page,
                    token_count=len(text.split()),
                    embedding=embed(text),
                    dimensions=64,
                    search_vector=SearchVector(Value(text), config="english"),
                )
        return Stored(collection, documents, chunks)


PROMPT = "Answer from these passages, citing them as [n].\n{{ steps.find.output.context }}\nQ: {{ input.q }}"


def rag_spec(collection: str, **retrieve: Any) -> dict[str, Any]:
    return {
        "name": f"rag-{next(_names)}",
        "steps": [
            {
                "id": "find",
                "kind": "retrieve",
                "collection": collection,
                "query": "{{ input.q }}",
                "top_k": 2,
                **retrieve,
            },
            {"id": "answer", "kind": "llm", "model": "sim-small", "prompt": PROMPT},
        ],
        "output": {"answer": "{{ steps.answer.output }}", "sources": "{{ steps.find.output.citations }}"},
    }


def simulated_answer(prompt: str) -> str:
    """What the simulated provider answers to exactly this prompt (its answer is seeded by it)."""
    return " ".join(answer_words([ChatMessage("user", prompt)]))


def test_a_retrieve_step_puts_the_passages_found_in_a_later_llm_prompt(
    tenant: TenantFixture, simulator: str
) -> None:
    stored = store(tenant)
    question = "boiler or radiator"
    run = make_run(tenant, rag_spec(stored.collection.name, mode="keyword"), {"q": question})

    run = execute(tenant, run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    with tenant_context(tenant.tenant):
        found = run.events.get(type=events.STEP_SUCCEEDED, step_id="find").data["output"]
    texts = [hit["text"] for hit in found["hits"]]
    assert sorted(texts) == sorted(text for _, _, text in PASSAGES["Boilers"])
    context = f"[1] {texts[0]}\n\n[2] {texts[1]}"
    assert found["context"] == context
    prompt = f"Answer from these passages, citing them as [n].\n{context}\nQ: {question}"
    assert output_of(run)["answer"] == simulated_answer(prompt)
    assert [hit["document_id"] for hit in found["hits"]] == [stored.documents["Boilers"].pk] * 2
    assert all(hit["score"] > 0 for hit in found["hits"])


def test_citations_number_the_hits_with_their_document_and_place(
    tenant: TenantFixture, simulator: str
) -> None:
    stored = store(tenant)
    text = "A boiler pressure above two bar needs a plumber."
    run = make_run(tenant, rag_spec(stored.collection.pk, mode="vector", top_k=1), {"q": text})

    run = execute(tenant, run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    chunk = stored.chunks[text]
    assert output_of(run)["sources"] == [
        {
            "index": 1,
            "document_id": stored.documents["Boilers"].pk,
            "title": "Boilers",
            "chunk_id": chunk.pk,
            "heading": "Safety",
            "page": 4,
        }
    ]


def test_the_query_embedding_is_run_usage_under_the_runs_key(tenant: TenantFixture, simulator: str) -> None:
    name = store(tenant).collection.name
    run = execute(tenant, make_run(tenant, rag_spec(name), {"q": "boiler pressure"}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    with tenant_context(tenant.tenant):
        retrieval = list(run.events.filter(type=events.RETRIEVAL_USAGE).values_list("step_id", "data"))
        llm = list(run.events.filter(type=events.LLM_USAGE).values_list("data", flat=True))
    assert [step_id for step_id, _ in retrieval] == ["find"]
    usage = retrieval[0][1]
    assert (usage["model"], usage["prompt_tokens"]) == ("sim-small", 2)
    assert run.prompt_tokens == 2 + llm[0]["prompt_tokens"]
    assert run.cost_usd == Decimal(usage["cost_usd"]) + Decimal(llm[0]["cost_usd"])
    queued = usage_stream_entries({usage["request_id"]})
    assert queued[usage["request_id"]]["api_key_id"] == str(tenant.provisioned.issued_key.api_key.pk)


def test_a_resumed_run_does_not_search_again(
    tenant: TenantFixture, simulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = store(tenant).collection.name
    run = make_run(tenant, rag_spec(name), {"q": "boiler pressure"})
    crash_on(monkeypatch, events.STEP_STARTED, "answer")
    with pytest.raises(Crash):
        execute(tenant, run)

    run = execute(tenant, run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    types = event_types(tenant, run)
    assert ("run.resumed", "") in types
    assert types.count(("step.started", "find")) == 1
    assert types.count(("retrieval.usage", "find")) == 1
    assert types.count(("step.succeeded", "answer")) == 1


def test_a_missing_collection_fails_the_step_and_compensates_earlier_effects(
    tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    spec = rag_spec("{{ input.shelf }}")
    spec["steps"].insert(0, {"id": "hold", "kind": "tool", "tool": "reserve", "input": {"resource": "desk"}})
    run = make_run(tenant, spec, {"q": "anything", "shelf": "no-such-shelf"})

    run = execute(tenant, run)

    assert run.status == RunStatus.COMPENSATED
    assert run.error == "find: no collection has the id or name `no-such-shelf`"
    assert tools.in_force() == []
    assert ("step.started", "answer") not in event_types(tenant, run)


def test_another_tenants_collection_is_not_found(
    tenant: TenantFixture, other_tenant: TenantFixture, simulator: str
) -> None:
    theirs = store(other_tenant)

    by_name = execute(tenant, make_run(tenant, rag_spec(theirs.collection.name), {"q": "boiler"}))
    by_id = execute(tenant, make_run(tenant, rag_spec(theirs.collection.pk), {"q": "boiler"}))

    assert by_name.status == by_id.status == RunStatus.FAILED
    assert by_id.error == f"find: no collection has the id or name `{theirs.collection.pk}`"


def test_collections_sharing_a_name_must_be_named_by_id(tenant: TenantFixture, simulator: str) -> None:
    name = store(tenant).collection.name
    store(tenant, name)

    run = execute(tenant, make_run(tenant, rag_spec(name), {"q": "boiler"}))

    assert run.status == RunStatus.FAILED
    assert run.error == f"find: several collections are named `{name}`; name it by its id"


def test_filters_rendered_from_the_input_narrow_the_search(tenant: TenantFixture, simulator: str) -> None:
    stored = store(tenant)
    spec = rag_spec(stored.collection.name, mode="keyword", filters={"topic": "{{ input.topic }}"})

    run = execute(tenant, make_run(tenant, spec, {"q": "boiler or tomatoes", "topic": "gardens"}))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [source["title"] for source in output_of(run)["sources"]] == ["Gardens"]


def test_a_filter_the_search_refuses_fails_the_step_naming_it(tenant: TenantFixture, simulator: str) -> None:
    spec = rag_spec(store(tenant).collection.name, filters={"topic": {"$like": "garden%"}})

    run = execute(tenant, make_run(tenant, spec, {"q": "tomatoes"}))

    assert run.status == RunStatus.FAILED
    assert run.error == "find: filters.topic: Unknown filter operator ($like): only `$in` is supported."


def test_a_spent_cost_budget_stops_a_retrieve_step(tenant: TenantFixture, simulator: str) -> None:
    spec = {**rag_spec(store(tenant).collection.name), "budget": {"max_cost_usd": 0}}

    run = execute(tenant, make_run(tenant, spec, {"q": "boiler"}))

    assert run.status == RunStatus.FAILED
    assert run.error == "find: the run's cost budget of 0 USD is spent"
    assert ("retrieval.usage", "find") not in event_types(tenant, run)


def test_filters_must_render_to_an_object(tenant: TenantFixture, simulator: str) -> None:
    spec = rag_spec(store(tenant).collection.name, filters="{{ input.q }}")

    run = execute(tenant, make_run(tenant, spec, {"q": "boiler"}))

    assert run.status == RunStatus.FAILED
    assert run.error == "find: `filters` must give an object, not str"


def retrieve_spec(**fields: Any) -> dict[str, Any]:
    step = {"id": "find", "kind": "retrieve", "collection": "manuals", "query": "{{ input.q }}", **fields}
    return {"name": "rag", "steps": [{key: value for key, value in step.items() if value is not None}]}


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"top_k": 0}, "steps[0].top_k", "0 is less than the minimum of 1"),
        ({"top_k": 51}, "steps[0].top_k", "51 is greater than the maximum of 50"),
        ({"top_k": "ten"}, "steps[0].top_k", "'ten' is not of type 'integer'"),
        ({"mode": "fuzzy"}, "steps[0].mode", "'fuzzy' is not one of ['hybrid', 'vector', 'keyword']"),
        ({"query": None}, "steps[0]", "'query' is a required property"),
        ({"collection": None}, "steps[0]", "'collection' is a required property"),
        ({"collection": ""}, "steps[0].collection", "'' should be non-empty"),
        ({"filters": [1]}, "steps[0].filters", "[1] is not of type 'object', 'string'"),
        ({"rerank": True}, "steps[0]", "Additional properties are not allowed ('rerank' was unexpected)"),
        ({"query": "{{ input.q "}, "steps[0].query", None),
        ({"collection": "{% for %}"}, "steps[0].collection", None),
        ({"filters": {"lang": "{{ input."}}, "steps[0].filters", None),
    ],
)
def test_an_invalid_retrieve_step_names_the_path(
    fields: dict[str, Any], path: str, message: str | None
) -> None:
    with pytest.raises(SpecError) as error:
        compile_spec(retrieve_spec(**fields))

    assert error.value.path == path
    if message is None:
        assert error.value.message.startswith("Invalid template: ")
    else:
        assert error.value.message == message


def test_a_retrieve_step_parses_with_its_defaults() -> None:
    workflow = parse_workflow(compile_spec(retrieve_spec()))

    assert workflow.steps == (
        RetrieveStep(id="find", collection="manuals", query="{{ input.q }}", top_k=5, mode=SearchMode.HYBRID),
    )
    assert workflow.steps[0].kind == StepKind.RETRIEVE


def test_an_invalid_retrieve_step_is_a_400_naming_the_path(api_client: APIClient) -> None:
    response = api_client.post("/api/v1/agents", {"spec": retrieve_spec(top_k=100)}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("spec.steps[0].top_k", "invalid_spec")
    assert error["message"] == "spec.steps[0].top_k: 100 is greater than the maximum of 50"
