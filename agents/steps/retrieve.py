"""A retrieve step: a search of one of the tenant's collections, attributed to the
run's API key, whose output a later step quotes (`{{ steps.x.output.context }}`) and
cites by number ([1], [2], ...).

The search's query embedding is recorded as usage (`retrieval.usage`) and added
to the run's totals; the step's output is recorded like any step's, so a resumed
run takes it from the record and never searches again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.events import RetrievalUsage
from agents.steps.context import Attempt, ExecutionContext, StepError
from agents.steps.definitions import RetrieveStep
from agents.steps.llm import check_cost_budget
from agents.templating import render
from ingestion.models import Collection
from ingestion.search import Hit, SearchInputError, SearchUsage, search


def perform(step: RetrieveStep, attempt: Attempt, execution: ExecutionContext) -> dict[str, Any]:
    check_cost_budget(execution)
    collection = collection_named(str(render(step.collection, attempt.context)))
    query = str(render(step.query, attempt.context))
    filters = rendered_filters(step, attempt)
    try:
        result = search(
            collection, query, top_k=step.top_k, mode=step.mode, filters=filters, api_key=execution.api_key()
        )
    except SearchInputError as error:
        raise StepError(f"{error.param}: {error.message}") from None
    record_usage(result.usage, attempt, execution)
    return retrieved(result.hits)


def record_usage(usage: SearchUsage, attempt: Attempt, execution: ExecutionContext) -> None:
    """The query's embedding, as the run's usage (a keyword search made none)."""
    if usage.request_id is None or usage.model is None:
        return
    recorded = RetrievalUsage(
        request_id=usage.request_id,
        model=usage.model,
        prompt_tokens=usage.prompt_tokens,
        cost_usd=usage.cost_usd,
    )
    execution.record(recorded, attempt.step_id)
    execution.state.cost_usd += usage.cost_usd


def collection_named(reference: str) -> Collection:
    """The collection whose id, or else whose name, is `reference` (in the run's schema)."""
    by_id = Collection.objects.filter(pk=reference).first()
    if by_id is not None:
        return by_id
    named = list(Collection.objects.filter(name=reference)[:2])
    if not named:
        raise StepError(f"no collection has the id or name `{reference}`")
    if len(named) > 1:
        raise StepError(f"several collections are named `{reference}`; name it by its id")
    return named[0]


def rendered_filters(step: RetrieveStep, attempt: Attempt) -> dict[str, Any] | None:
    if step.filters is None:
        return None
    filters = render(step.filters, attempt.context)
    if not isinstance(filters, Mapping):
        raise StepError(f"`filters` must give an object, not {type(filters).__name__}")
    return dict(filters)


def retrieved(hits: list[Hit]) -> dict[str, Any]:
    """The step's output: the hits, a citation per hit, and their text numbered as cited."""
    return {
        "hits": [
            {
                "document_id": hit.document_id,
                "title": hit.document_title,
                "chunk_id": hit.chunk_id,
                "text": hit.text,
                "position": hit.position,
                "heading": hit.heading,
                "page": hit.page,
                "score": hit.score,
            }
            for hit in hits
        ],
        "citations": [
            {
                "index": number,
                "document_id": hit.document_id,
                "title": hit.document_title,
                "chunk_id": hit.chunk_id,
                "heading": hit.heading,
                "page": hit.page,
            }
            for number, hit in enumerate(hits, start=1)
        ],
        "context": "\n\n".join(f"[{number}] {hit.text}" for number, hit in enumerate(hits, start=1)),
    }
