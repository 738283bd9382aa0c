"""The tenant threshold (routing/router/adaptation.py) on GSM8K replayed as a new tenant.

    python bench/routing_adaptation.py [--seeds 5] [--folds 5] [--target 0.95] [--json PATH]

A router trained without GSM8K (every other outcome file) serves GSM8K's prompts
in a random order as one tenant's traffic, every answer judged (its recorded
correctness is the feedback), three ways: the static policy (the training
data's threshold), per-bucket learning alone, learning with the tenant's
threshold re-solved from its outcomes every 50 requests, and that with the
tenant's own ranking correction (routing/router/ranking.py) refitted as often,
the threshold re-solved on the corrected score. Reported over the
second half of each stream: strong share and quality (accuracy over the
strong model's on the same prompts), medians over `--seeds` orders.

The reference is what a router trained on GSM8K itself needs: `--folds`-fold
cross-validation over GSM8K (each fold's router trained on the other folds plus
every other file), the strong share its ranking needs to reach the target on
the held-out fold; the median over folds. The goal (issue 22): quality at the
target with a strong share within 0.05 of that reference.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import django
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
django.setup()  # the router's code imports the registry's models (no query is made)

from routing.router.evaluation import evaluate, online_replay  # noqa: E402
from routing.router.training import OUTCOME_DATA, Outcomes, load_outcomes, train  # noqa: E402

DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "routing_adaptation.json"
GSM8K = OUTCOME_DATA / "gsm8k_responses.csv"
MODES = {
    "static": (False, False, False),
    "learning": (True, False, False),
    "adaptive": (True, True, False),
    "adaptive+ranking": (True, True, True),
}


def subset(outcomes: Outcomes, rows: list[int]) -> Outcomes:
    return Outcomes(
        [outcomes.prompts[row] for row in rows],
        outcomes.weak[rows],
        outcomes.strong[rows],
        [outcomes.sources[row] for row in rows],
    )


def joined(first: Outcomes, second: Outcomes) -> Outcomes:
    return Outcomes(
        first.prompts + second.prompts,
        np.concatenate([first.weak, second.weak]),
        np.concatenate([first.strong, second.strong]),
        first.sources + second.sources,
    )


def other_files() -> list[Path]:
    return sorted((OUTCOME_DATA / "mmlu").glob("*.csv"))


def in_domain_need(gsm8k: Outcomes, others: Outcomes, folds: int, target: float) -> list[float]:
    """Per fold: the strong share a router trained with the other GSM8K folds needs."""
    rows = list(range(len(gsm8k)))
    random.Random(0).shuffle(rows)
    shares = []
    for fold in range(folds):
        held_out = rows[fold::folds]
        kept = sorted(set(rows) - set(held_out))
        training = joined(others, subset(gsm8k, kept))
        router = train(training, name=f"gsm8k-fold-{fold}")
        report = evaluate(router, training, subset(gsm8k, sorted(held_out)), target)
        shares.append(float(report["strong_share_at_target"]))
        print(f"  fold {fold}: strong share {shares[-1]:.3f}", flush=True)
    return shares


def run(seeds: int, folds: int, target: float) -> dict[str, Any]:
    gsm8k, others = load_outcomes([GSM8K]), load_outcomes(other_files())
    started = time.perf_counter()
    router = train(others, name="without-gsm8k")
    ranking = evaluate(router, others, gsm8k, target)
    print(f"trained without GSM8K in {time.perf_counter() - started:.0f} s", flush=True)
    replays: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for seed in range(seeds):
        for mode, (learn, adapt, rank) in MODES.items():
            replay = online_replay(router, gsm8k, target, learn=learn, adapt=adapt, rank=rank, seed=seed)
            replays[mode].append(replay["second_half"])
    print("in-domain reference:", flush=True)
    need = in_domain_need(gsm8k, others, folds, target)
    summary = {
        mode: {
            "strong_share": statistics.median(r["strong_share"] for r in rows),
            "quality": statistics.median(r["quality"] for r in rows),
        }
        for mode, rows in replays.items()
    }
    return {
        "target": target,
        "seeds": seeds,
        "without_gsm8k_ranking": {
            key: ranking[key]
            for key in (
                "strong_share_at_target",
                "random_strong_share_at_target",
                "oracle_strong_share_at_target",
            )
        },
        "in_domain_need": {"folds": need, "median": statistics.median(need)},
        "replays": replays,
        "summary": summary,
    }


def print_table(report: dict[str, Any]) -> None:
    need = report["in_domain_need"]["median"]
    ranking = report["without_gsm8k_ranking"]
    print(f"\nGSM8K as a new tenant, target {report['target']:.2f}, medians over {report['seeds']} orders")
    share, random_share = ranking["strong_share_at_target"], ranking["random_strong_share_at_target"]
    oracle = ranking["oracle_strong_share_at_target"]
    print(
        f"ranking of the router trained without GSM8K: strong share {share:.3f} "
        f"(random {random_share:.3f}, oracle {oracle:.3f})"
    )
    print(f"a router trained on GSM8K itself needs: {need:.3f} (median of folds)\n")
    print(f"| {'policy':<16} | strong share | quality | share - in-domain need |")
    print("| --- | --- | --- | --- |")
    for mode, figures in report["summary"].items():
        print(
            f"| {mode:<16} | {figures['strong_share']:.3f} | {figures['quality']:.3f} | "
            f"{figures['strong_share'] - need:+.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    options = parser.parse_args()
    report = run(options.seeds, options.folds, options.target)
    report["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print_table(report)
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {options.json}")


if __name__ == "__main__":
    main()
