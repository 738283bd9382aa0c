"""The gateway's counters in this process, in Prometheus' text format: requests
refused before admission are counted here, not written to the ledger (a flood
of them must cost no row each)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class GatewayMetrics:
    # (status, error type) -> requests refused before admission (bad key, limits, validation).
    refused: Counter[tuple[int, str]] = field(default_factory=Counter)

    def count_refused(self, status: int, error_type: str) -> None:
        self.refused[(status, error_type or "none")] += 1

    def exposition(self) -> str:
        lines = [
            "# HELP gateway_refused_requests_total /v1 requests refused before admission.\n",
            "# TYPE gateway_refused_requests_total counter\n",
        ]
        lines += [
            f'gateway_refused_requests_total{{status="{status}",error_type="{error_type}"}} {count}\n'
            for (status, error_type), count in sorted(self.refused.items())
        ]
        return "".join(lines)


METRICS = GatewayMetrics()
