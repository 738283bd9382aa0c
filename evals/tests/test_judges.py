"""The LLM judges against the simulated provider through the in-process gateway:
planted answers become scores, malformed ones become failed scores with a
reason, the calls are billed to the experiment's key under stable request ids,
and the pairwise judge's order is randomised per case and mapped back."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from billing.models import UsageEvent
from billing.usage import flush_usage_events
from evals.scorers import JudgeContext, Observation, Score, ScorerSpecError, build
from evals.scorers.judges import output_shown_first
from gateway.errors import GatewayError
from gateway.transports.inprocess import InProcessGateway
from tenants.models import ApiKey
from tenants.selectors import find_usable_api_key
from testing.tenants import TenantFixture

RUBRIC = "The answer states the refund window of 30 days."


@pytest.fixture
def api_key(platform_url: str, registry: str, serving_tenant: TenantFixture) -> ApiKey:
    """(platform_url: the session's server, whose teardown also ends the database
    sessions the in-process gateway's threads opened.)"""
    key = find_usable_api_key(serving_tenant.admin_key)
    assert key is not None
    return key


@pytest.fixture
def plant(simulator_url: str) -> Any:
    def plant(when_contains: str, content: str | dict[str, Any]) -> None:
        text = content if isinstance(content, str) else orjson.dumps(content).decode()
        answers_url = simulator_url.removesuffix("/v1") + "/_sim/answers"
        httpx.post(
            answers_url, json={"when_contains": when_contains, "content": text}, timeout=5
        ).raise_for_status()

    return plant


def observe(output: Any, *, case_key: str = "case-1", baseline: Any = None) -> Observation:
    return Observation(
        case_key=case_key,
        input={"messages": [{"role": "user", "content": "How long do I have to return a jacket?"}]},
        expected="30 days",
        output=output,
        latency_ms=120,
        cost_usd=Decimal("0.0001"),
        baseline_output=baseline,
    )


def unique(text: str) -> str:
    return f"{text} [{uuid.uuid4().hex}]"


def judge_all(
    spec: dict[str, Any], observations: list[Observation], api_key: ApiKey, prefix: str
) -> list[Score]:
    (scorer,) = build([spec])

    async def run() -> list[Score]:
        gateway = InProcessGateway()
        try:
            return [
                await scorer.score(observation, JudgeContext(gateway, api_key, f"{prefix}_{number}"))
                for number, observation in enumerate(observations)
            ]
        finally:
            await gateway.aclose()

    return asyncio.run(run())


def judge(spec: dict[str, Any], observation: Observation, api_key: ApiKey) -> Score:
    (score,) = judge_all(spec, [observation], api_key, f"req_{uuid.uuid4().hex}")
    return score


def ledger(request_id: str) -> UsageEvent:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        flush_usage_events(batch_size=1000)
        event = UsageEvent.objects.filter(request_id=request_id).first()
        if event is not None:
            return event
        time.sleep(0.1)
    raise AssertionError(f"no usage event for {request_id}")


SCALE_JUDGE = {"type": "llm_judge", "name": "refund", "rubric": RUBRIC, "model": "sim-small", "scale": [1, 5]}


def test_a_scale_judge_normalises_its_score_and_keeps_its_reasoning(api_key: ApiKey, plant: Any) -> None:
    output = unique("You can return it within 30 days.")
    plant(output, {"reasoning": "states the window", "score": 4})
    (scorer,) = build([{**SCALE_JUDGE, "threshold": 0.75}])

    async def run() -> Score:
        gateway = InProcessGateway()
        try:
            return await scorer.score(observe(output), JudgeContext(gateway, api_key, prefix))
        finally:
            await gateway.aclose()

    prefix = f"req_{uuid.uuid4().hex}"
    score = asyncio.run(run())

    assert (score.scorer, score.score, score.passed) == ("refund", 0.75, True)
    assert score.reason == "4 on 1-5: states the window"
    assert score.request_ids == (f"{prefix}:refund",)
    assert score.completion_tokens == 3  # the planted compact JSON's space-separated pieces
    assert score.prompt_tokens > 0
    event = ledger(f"{prefix}:refund")
    assert (event.api_key_id, event.completion_tokens) == (api_key.pk, 3)
    assert event.cost_usd == score.cost_usd > 0


def test_a_score_below_the_threshold_fails(api_key: ApiKey, plant: Any) -> None:
    output = unique("Returns are possible.")
    plant(output, {"reasoning": "no window given", "score": 2})

    score = judge({**SCALE_JUDGE, "threshold": 0.5}, observe(output), api_key)

    assert (score.score, score.passed) == (0.25, False)


def test_a_pass_fail_judge_answers_a_verdict(api_key: ApiKey, plant: Any) -> None:
    spec = {"type": "llm_judge", "rubric": RUBRIC, "model": "sim-small"}
    good, bad = unique("30 days."), unique("Whenever you like.")
    plant(good, {"reasoning": "correct", "verdict": "pass"})
    plant(bad, {"reasoning": "no window", "verdict": "fail"})

    passed, failed = judge(spec, observe(good), api_key), judge(spec, observe(bad), api_key)

    assert (passed.scorer, passed.score, passed.passed, passed.reason) == ("llm_judge", 1.0, True, "correct")
    assert (failed.score, failed.passed, failed.reason) == (0.0, False, "no window")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            '{"reasoning": "cut short", "score": 4',
            'the judge\'s answer is not JSON: \'{"reasoning": "cut short", "score": 4\'',
        ),
        (
            {"reasoning": "too generous", "score": 9},
            "the judge's answer breaks its schema at $.score: 9 is greater than the maximum of 5",
        ),
        (
            {"reasoning": "a word", "score": "4"},
            "the judge's answer breaks its schema at $.score: '4' is not of type 'integer'",
        ),
        (
            {"reasoning": "no score"},
            "the judge's answer breaks its schema at $: 'score' is a required property",
        ),
    ],
)
def test_a_malformed_judge_answer_is_a_failed_score_with_a_reason(
    api_key: ApiKey, plant: Any, answer: Any, reason: str
) -> None:
    output = unique("30 days")
    plant(output, answer)

    score = judge(SCALE_JUDGE, observe(output), api_key)

    assert (score.score, score.passed, score.reason) == (0.0, False, reason)
    assert score.completion_tokens > 0  # the call was made and is billed


def test_the_simulators_own_answer_lacks_the_score_and_fails_cleanly(api_key: ApiKey) -> None:
    score = judge(SCALE_JUDGE, observe(unique("30 days")), api_key)

    assert not score.passed
    assert score.reason == "the judge's answer breaks its schema at $: 'score' is a required property"


def test_a_judge_call_the_gateway_refuses_raises_its_error_for_the_runner(api_key: ApiKey) -> None:
    with pytest.raises(GatewayError) as refused:
        judge({**SCALE_JUDGE, "model": "no-such-model"}, observe("30 days"), api_key)

    assert (refused.value.status, refused.value.code) == (404, "model_not_found")


PAIRWISE = {"type": "pairwise_judge", "model": "sim-small"}


def test_the_pairwise_order_is_randomised_per_case_and_the_verdict_maps_back(
    api_key: ApiKey, plant: Any
) -> None:
    """The planted judge always prefers the output, in whichever position it is shown:
    a verdict not mapped back would score the cases shown as B 0."""
    keys = [f"case-{number}" for number in range(16)]
    observations = [observe(unique("output"), case_key=key, baseline=unique("baseline")) for key in keys]
    for observation in observations:
        plant(f"<response_a>\n{observation.output}", {"reasoning": "A is right", "winner": "A"})
        plant(f"<response_a>\n{observation.baseline_output}", {"reasoning": "B is right", "winner": "B"})

    scores = judge_all(PAIRWISE, observations, api_key, f"req_{uuid.uuid4().hex}")

    assert [(score.score, score.passed) for score in scores] == [(1.0, True)] * 16
    shown_as = ["A" if "(the output was response A)" in score.reason else "B" for score in scores]
    assert shown_as == ["A" if output_shown_first(key) else "B" for key in keys]
    assert set(shown_as) == {"A", "B"}
    assert scores[0].reason.startswith("the output wins (the output was response ")


def test_a_position_biased_judge_is_cancelled_across_cases(api_key: ApiKey, plant: Any) -> None:
    keys = [f"biased-{number}" for number in range(16)]
    observations = [observe(unique("output"), case_key=key, baseline=unique("baseline")) for key in keys]
    for observation in observations:
        plant(str(observation.output), {"reasoning": "the first one", "winner": "A"})

    scores = judge_all(PAIRWISE, observations, api_key, f"req_{uuid.uuid4().hex}")

    assert [score.score for score in scores] == [float(output_shown_first(key)) for key in keys]
    assert 0 < sum(score.score for score in scores) < 16


def test_a_pairwise_tie_is_half_and_passes(api_key: ApiKey, plant: Any) -> None:
    output = unique("30 days")
    plant(output, {"reasoning": "same", "winner": "tie"})

    score = judge(PAIRWISE, observe(output, baseline="thirty days"), api_key)

    assert (score.score, score.passed) == (0.5, True)
    assert score.reason.startswith("a tie (the output was response ")


def test_a_pairwise_judge_without_a_baseline_fails_without_a_call(api_key: ApiKey) -> None:
    score = judge(PAIRWISE, observe("30 days"), api_key)

    assert (score.passed, score.reason, score.request_ids) == (
        False,
        "no baseline output to compare with",
        (),
    )


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"type": "llm_judge"}], "scorer 0 (llm_judge): `rubric` must be a non-empty string"),
        (
            [{"type": "llm_judge", "rubric": "r", "scale": [5, 1]}],
            "scorer 0 (llm_judge): `scale` must be [lowest, highest]",
        ),
        (
            [{"type": "llm_judge", "rubric": "r", "scale": [1, 5.0]}],
            "scorer 0 (llm_judge): `scale` must be [lowest, highest]",
        ),
        (
            [{"type": "llm_judge", "rubric": "r", "threshold": 0.5}],
            "scorer 0 (llm_judge): `threshold` applies to a `scale` only",
        ),
        (
            [{"type": "llm_judge", "rubric": "r", "scale": [1, 5], "threshold": 3}],
            "scorer 0 (llm_judge): `threshold` must be between 0 and 1",
        ),
        (
            [{"type": "llm_judge", "rubric": "r", "model": ""}],
            "scorer 0 (llm_judge): `model` must be a non-empty string",
        ),
        (
            [{"type": "pairwise_judge", "rubric": "r", "baseline": "x"}],
            "scorer 0 (pairwise_judge): unknown argument `baseline`",
        ),
        (
            [{"type": "llm_judge", "rubric": "r"}, {"type": "llm_judge", "rubric": "s"}],
            "scorer 1 (llm_judge): the name 'llm_judge' is taken by scorer 0; scorers that make calls "
            "need distinct names",
        ),
    ],
)
def test_a_bad_judge_spec_is_refused(specs: Any, message: str) -> None:
    with pytest.raises(ScorerSpecError) as error:
        build(specs)
    assert str(error.value).startswith(message), str(error.value)


def test_judges_with_distinct_names_build() -> None:
    scorers = build(
        [
            {"type": "llm_judge", "rubric": "r", "name": "tone"},
            {"type": "llm_judge", "rubric": "s", "name": "facts", "scale": [0, 10], "threshold": 0.8},
            {"type": "contains", "value": "x"},
            {"type": "contains", "value": "y"},
        ]
    )
    assert [scorer.name for scorer in scorers] == ["tone", "facts", "contains", "contains"]
