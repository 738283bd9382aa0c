"""The router's parts, offline: features, the exported classifier, metrics, the
policy's choices, the canary's sequential test and route_bench."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from routing.catalog import Catalog, ModelSpec, ProviderSpec
from routing.models import CanaryState
from routing.policy import RouteRequest
from routing.router.canary import sequential_test
from routing.router.config import Tally, TenantRouterConfig, VersionSpec, canary_slot, outcome_field
from routing.router.evaluation import curve_metrics, random_share
from routing.router.features import analyse, output_format, prompt_of, terms
from routing.router.model import load_artifact
from routing.router.policy import LearnedRouter, RoutedPlan
from routing.router.training import OUTCOME_DATA, calibration_error

MMLU = OUTCOME_DATA / "mmlu"
EASY = "What is the capital of France?"
HARD = "Let p = (1, 2, 5, 4)(2, 3) in S_5 . Find the index of <p> in S_5.\nA. 8\nB. 2\nC. 24\nD. 120\nAnswer:"
PROVIDER = ProviderSpec("sim", "Sim", "http://sim/v1", "none", None, {}, 1.0, 1.0, 1.0, 8, True)


def model(model_id: str, tier: int, input_price: str, output_price: str) -> ModelSpec:
    return ModelSpec(
        model_id,
        PROVIDER,
        model_id,
        tier,
        8192,
        Decimal(input_price),
        Decimal(output_price),
        True,
        True,
        False,
    )


CATALOG = Catalog(
    {
        m.model_id: m
        for m in (
            model("small", 1, "0.15", "0.60"),
            model("medium", 2, "1", "4"),
            model("large", 3, "5", "15"),
        )
    }
)
TWO_TIERS = Catalog(
    {m.model_id: m for m in (model("small", 1, "0.15", "0.60"), model("large", 3, "5", "15"))}
)


def route(prompt: str, config: TenantRouterConfig, **extra: object) -> RoutedPlan:
    request = RouteRequest("auto", 40, 256, prompt=prompt, request_id="req_1", routing=config, **extra)  # type: ignore[arg-type]
    plan = LearnedRouter(explore=lambda: 0.0).plan(request, CATALOG, lambda _: True)
    assert isinstance(plan, RoutedPlan)
    assert plan.decision is not None
    return plan


def test_terms_match_scikit_learns_analyzer() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()
    for text in (HARD, EASY, "Ünïcode wörds, l'été; x=3*y — C++ & naïve_case"):
        assert terms(text) == analyzer(text)
        assert analyse(text)[0] == analyzer(text)


def test_the_shipped_model_is_calibrated_and_orders_prompts_by_difficulty() -> None:
    router = load_artifact("global_router.npz")
    easy, hard = router.predict(EASY), router.predict(HARD)

    assert 0 <= easy.failure < hard.failure <= 1
    assert router.meta["calibration_error_out_of_fold"] < 0.05
    assert router.threshold(0.99) <= router.threshold(0.95) <= router.threshold(0.90)


def test_the_request_features_read_the_output_format_and_the_user_turns() -> None:
    strict = {
        "type": "json_schema",
        "json_schema": {
            "strict": True,
            "schema": {
                "type": "object",
                "required": ["a", "b"],
                "additionalProperties": False,
                "properties": {"a": {"type": "string", "enum": ["x"]}, "b": {"type": "integer"}},
            },
        },
    }
    assert output_format(strict).bucket == "schema_strict"
    assert output_format({"type": "json_schema", "json_schema": {"schema": {}}}).bucket == "schema_loose"
    assert output_format({"type": "json_object"}).bucket == "json_object"
    assert output_format(None).bucket == "text"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "one"}]},
        {"role": "user", "content": "two"},
    ]
    assert prompt_of(messages) == "one\ntwo"


def test_curve_metrics_on_a_worked_example() -> None:
    weak = np.array([True, False, False, True])
    strong = np.array([True, True, False, True])
    # The router puts the one prompt only the strong model answers first.
    metrics = curve_metrics(np.array([0.1, 0.9, 0.5, 0.2]), weak, strong, target=1.0)

    assert metrics["strong_share_at_target"] == 0.25
    assert metrics["cpt50"] == 0.25
    assert metrics["apgr"] == pytest.approx(0.875)  # PGR 0, then 1 for the rest of the curve
    assert random_share(weak, strong, 1.0) == 1.0
    assert random_share(weak, strong, 0.5) == 0.0


def test_calibration_error_is_the_size_weighted_gap() -> None:
    probabilities = np.array([0.1, 0.1, 0.9, 0.9])
    assert calibration_error(probabilities, np.array([False, False, True, True])) == pytest.approx(0.1)
    assert calibration_error(probabilities, np.array([True, True, False, False])) == pytest.approx(0.9)


def test_easy_prompts_stay_cheap_and_hard_ones_go_up() -> None:
    config = TenantRouterConfig(1, exploration_rate=0.0)

    assert route(EASY, config).chain[0].model_id == "small"
    hard = route(HARD, config)
    assert hard.chain[0].model_id == "large"
    assert "quality target 0.95" in hard.reason


def test_a_higher_quality_target_sends_more_to_the_top() -> None:
    prompts = [
        EASY,
        HARD,
        "Say hello.",
        "Janet's ducks lay 16 eggs. She eats 3 and sells the rest at $2. How much?",
    ]
    loose = [route(p, TenantRouterConfig(1, quality_target=0.80)).decision.tier for p in prompts]  # type: ignore[union-attr]
    strict = [route(p, TenantRouterConfig(1, quality_target=1.0)).decision.tier for p in prompts]  # type: ignore[union-attr]

    assert all(s >= lo for s, lo in zip(strict, loose, strict=True))
    assert sum(strict) > sum(loose)


def test_a_tenants_own_outcomes_move_the_choice() -> None:
    plain = route(EASY, TenantRouterConfig(1, exploration_rate=0.0))
    assert plain.decision is not None
    assert plain.decision.tier == 1
    bucket = plain.decision.bucket
    failing = TenantRouterConfig(
        1, exploration_rate=0.0, outcomes={outcome_field("global-v1", bucket, 1): Tally(90, 100, 10)}
    )

    learned = route(EASY, failing)
    assert learned.decision is not None
    assert learned.decision.tier > 1
    assert learned.decision.cheap_failure > 0.7


def test_exploration_tries_one_tier_cheaper_only_on_close_calls() -> None:
    close = "Find the derivative of ln(x^2 + 1)."  # tier 2, with tier 1 a close second
    never = route(close, TenantRouterConfig(1, exploration_rate=0.0)).decision
    assert never is not None
    assert (never.tier, never.explored) == (2, False)

    explored = route(close, TenantRouterConfig(1, exploration_rate=0.1))  # route() draws 0.0: under the rate
    assert explored.decision is not None
    assert (explored.decision.tier, explored.decision.explored) == (1, True)
    assert "exploring one tier cheaper" in explored.reason
    assert [m.model_id for m in explored.chain] == ["small", "medium", "large"]
    # A clear call is never explored: HARD's cheaper tiers are far worse.
    hard = route(HARD, TenantRouterConfig(1, exploration_rate=0.1)).decision
    assert hard is not None
    assert (hard.tier, hard.explored) == (3, False)
    # Above the rate, nothing is explored.
    request = RouteRequest("auto", 40, 256, prompt=close, request_id="r", routing=TenantRouterConfig(1))
    plan = LearnedRouter(explore=lambda: 0.5).plan(request, CATALOG, lambda _: True)
    assert isinstance(plan, RoutedPlan)
    assert plan.decision is not None
    assert not plan.decision.explored


def test_a_json_schema_request_exits_early_from_the_cheapest_tier() -> None:
    schema_format = output_format({"type": "json_schema", "json_schema": {"schema": {"type": "object"}}})
    plan = route(HARD, TenantRouterConfig(1), output=schema_format)

    assert plan.decision is not None
    assert plan.decision.early_exit
    assert [m.model_id for m in plan.chain] == ["small", "medium", "large"]
    assert "early exit" in plan.reason
    # Streams cannot take an answer back: no early exit.
    streamed = route(HARD, TenantRouterConfig(1), output=schema_format, stream=True)
    assert streamed.decision is not None
    assert not streamed.decision.early_exit
    # When this tenant's cheap tier almost never follows such schemas, the cascade costs more.
    bucket = f"schema:{schema_format.bucket}"
    hopeless = TenantRouterConfig(1, outcomes={outcome_field("global-v1", bucket, 1): Tally(200, 200, 20)})
    skipped = route(HARD, hopeless, output=schema_format)
    assert skipped.decision is not None
    assert not skipped.decision.early_exit
    assert skipped.decision.tier > 1


def test_named_models_are_not_routed() -> None:
    request = RouteRequest("medium", 40, 256, prompt=HARD, routing=TenantRouterConfig(1))
    plan = LearnedRouter().plan(request, CATALOG, lambda _: True)
    assert [m.model_id for m in plan.chain] == ["medium", "large"]
    assert plan.reason == "requested"


def test_the_canary_takes_its_share_of_request_ids() -> None:
    canary = VersionSpec("cheap-v2", threshold_shift=1.0)
    config = TenantRouterConfig(1, canary=canary, canary_share=0.1)
    ids = [f"req_{index}" for index in range(5000)]
    share = sum(config.version_for(request_id) is canary for request_id in ids) / len(ids)

    assert 0.08 < share < 0.12
    assert all(config.version_for(i) is canary for i in ids if canary_slot(i) < 0.1)
    assert route(HARD, TenantRouterConfig(1, canary=canary, canary_share=1.0)).chain[0].model_id == "small"


def test_two_tiers_reduce_to_a_threshold_on_the_failure_probability() -> None:
    router = load_artifact("global_router.npz")
    threshold = router.threshold(0.95)
    for prompt in (EASY, HARD, "Say hello.", "Explain the tort of negligence and its elements."):
        request = RouteRequest("auto", 40, 256, prompt=prompt, request_id="r", routing=TenantRouterConfig(1))
        plan = LearnedRouter(explore=lambda: 1.0).plan(request, TWO_TIERS, lambda _: True)
        assert plan.chain[0].model_id == ("large" if router.predict(prompt).failure > threshold else "small")


@pytest.mark.parametrize(
    ("control", "canary", "state"),
    [
        ((2, 100), (12, 40), CanaryState.ROLLED_BACK),
        ((2, 100), (0, 300), CanaryState.PASSED),
        ((2, 100), (1, 5), CanaryState.RUNNING),
        ((0, 5), (5, 5), CanaryState.RUNNING),  # the control's rate is not known yet
    ],
)
def test_the_sequential_test(control: tuple[int, int], canary: tuple[int, int], state: CanaryState) -> None:
    verdict = sequential_test(*control, *canary, drop=0.05)
    assert verdict.state == state


def run_bench(*args: str) -> dict[str, object]:
    out = io.StringIO()
    call_command("route_bench", *args, stdout=out)
    return dict(json.loads(out.getvalue()))


def test_route_bench_trains_on_train_only_and_reports_every_figure() -> None:
    train = [str(MMLU / f"mmlu_{s}.csv") for s in ("high_school_physics", "college_biology", "marketing")]
    test = [str(MMLU / f"mmlu_{s}.csv") for s in ("astronomy", "nutrition")]
    report = run_bench("--train", *train, "--test", *test, "--target", "0.95", "--json")

    assert report["n_train"] == 151 + 144 + 234
    assert report["n_test"] == 152 + 306
    assert report["train_sources"] == ["mmlu_college_biology", "mmlu_high_school_physics", "mmlu_marketing"]
    for share in ("strong_share_at_target", "random_strong_share_at_target", "oracle_strong_share_at_target"):
        assert 0 <= float(report[share]) <= 1  # type: ignore[arg-type]
    assert float(report["oracle_strong_share_at_target"]) <= float(report["strong_share_at_target"])  # type: ignore[arg-type]
    for key in (
        "weak_accuracy",
        "strong_accuracy",
        "apgr",
        "cpt50",
        "cpt80",
        "decision_p99_ms",
        "calibration_error_test",
    ):
        assert isinstance(report[key], float)


def test_route_bench_refuses_overlapping_and_malformed_data(tmp_path: Path) -> None:
    astronomy = str(MMLU / "mmlu_astronomy.csv")
    with pytest.raises(CommandError, match="also in the training data"):
        run_bench("--train", astronomy, "--test", astronomy)
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,yes\nhello,True\n")
    with pytest.raises(CommandError, match="no column"):
        run_bench("--train", str(bad), "--test", astronomy)
    with pytest.raises(CommandError, match="no such file"):
        run_bench("--train", str(tmp_path / "missing"), "--test", astronomy)
    header = "prompt,mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview\n"
    malformed = {
        "latin1": ((header + "caf\xe9,True,False\n").encode("latin-1"), "not UTF-8"),
        "short row": ((header + "hello,True\n").encode(), "line 2: the row has no"),
        "verdict": ((header + "hello,True,maybe\n").encode(), "line 2: 'maybe' is not True or False"),
    }
    for content, message in malformed.values():
        bad.write_bytes(content)
        with pytest.raises(CommandError, match=message):
            run_bench("--train", str(bad), "--test", astronomy)
