"""An experiment with a baseline: its pairwise judge reads, for each case, the
baseline experiment's output beside the new one (the judge's answer planted)."""

from __future__ import annotations

import uuid

import httpx
import orjson

from evals.models import Experiment
from evals.scorers.judges import output_shown_first
from evals.tests.experiments import create, in_tenant, make_version, results, run
from testing.tenants import TenantFixture

CASES = 8


def test_a_pairwise_judge_compares_each_output_with_the_baselines(
    serving_tenant: TenantFixture, gateway: str, simulator_url: str
) -> None:
    rubric = f"Prefer the clearer answer [{uuid.uuid4().hex}]"
    # The judge always answers "A": the output wins where it was shown first.
    planted = {"reasoning": "A reads better.", "winner": "A"}
    httpx.post(
        simulator_url.removesuffix("/v1") + "/_sim/answers",
        json={"when_contains": rubric, "content": orjson.dumps(planted).decode()},
        timeout=5,
    ).raise_for_status()
    version_id = make_version(
        serving_tenant, [{"messages": [{"role": "user", "content": f"Pair {n}."}]} for n in range(CASES)]
    )
    baseline = run(serving_tenant, create(serving_tenant, version_id))
    judge = {"type": "pairwise_judge", "rubric": rubric, "model": "sim-small"}

    def create_with_baseline() -> str:
        return create(
            serving_tenant,
            version_id,
            scorers=[judge],
            baseline=in_tenant(serving_tenant, lambda: Experiment.objects.get(pk=baseline.pk)),
            target={"model": "sim-small", "params": {"max_tokens": 4}},
        )

    candidate = run(serving_tenant, create_with_baseline())

    stored = results(serving_tenant, candidate.pk)
    assert {key: result.passed for key, result in stored.items()} == {
        key: output_shown_first(key) for key in stored
    }
    assert all("(the output was response" in result.scores[0]["reason"] for result in stored.values())
    assert all(len(result.request_ids) == 2 for result in stored.values())  # the target's, the judge's
