"""The gateway's counters in this process, in Prometheus' text format. Requests
that reached no model (refused before admission: no key, limits, validation;
or served without one: the model list, feedback, stream tokens) are counted
here, not written to the ledger: a flood of them must cost no row each."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class GatewayMetrics:
    # (status, error type) -> /v1 requests that reached no model.
    unmetered: Counter[tuple[int, str]] = field(default_factory=Counter)

    def count_unmetered(self, status: int, error_type: str) -> None:
        self.unmetered[(status, error_type or "none")] += 1

    def exposition(self) -> str:
        lines = [
            "# HELP gateway_unmetered_requests_total /v1 requests that reached no model "
            "(refused before admission, or served without one).\n",
            "# TYPE gateway_unmetered_requests_total counter\n",
        ]
        lines += [
            f'gateway_unmetered_requests_total{{status="{status}",error_type="{error_type}"}} {count}\n'
            for (status, error_type), count in sorted(self.unmetered.items())
        ]
        return "".join(lines)


METRICS = GatewayMetrics()
