"""The WebSocket counters of this process, in Prometheus' text format: plain
in-process numbers (one uvicorn process = one set), served with the gateway's
at `GET /metrics` (aiaas/metrics.py), which carries no tenant data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RealtimeMetrics:
    active_connections: int = 0  # accepted WebSockets not yet closed
    backpressure_coalesced: int = 0  # chunk events merged into the one before them
    send_errors: int = 0  # sends that failed or stalled past REALTIME_STALLED_READER_SECONDS

    def exposition(self) -> str:
        return "".join(
            [
                "# HELP ws_active_connections Accepted WebSocket connections not yet closed.\n",
                "# TYPE ws_active_connections gauge\n",
                f"ws_active_connections {self.active_connections}\n",
                "# HELP ws_backpressure_coalesced Chunk events merged into the one before them.\n",
                "# TYPE ws_backpressure_coalesced counter\n",
                f"ws_backpressure_coalesced {self.backpressure_coalesced}\n",
                "# HELP ws_send_errors WebSocket sends that failed or stalled.\n",
                "# TYPE ws_send_errors counter\n",
                f"ws_send_errors {self.send_errors}\n",
            ]
        )


METRICS = RealtimeMetrics()
