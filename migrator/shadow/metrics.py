"""The read-side counts of one legacy app process: reads by mode and by what served them, shadow outcomes,
fallbacks to legacy. Prometheus counters for `/metrics`, and the shadow outcomes not yet flushed to the
migration stream (`take_shadow`)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, generate_latest

# what can happen to one sampled shadow read; `compared` counts every candidate compared (lagged and
# mismatched ones too), `mismatched` only real differences, `lagged` differences the key's lag explains
OUTCOMES = ("compared", "mismatched", "lagged", "timeouts", "errors", "skipped")


class ReadMetrics:
    """Returns the counters of one process's reads; thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._reads = Counter("legacy_api_reads", "Reads of the legacy API by reads mode and by what served them",
                              ["mode", "served"], registry=self.registry)
        self._shadow = Counter("legacy_api_shadow_reads", "Sampled shadow reads by outcome", ["outcome"],
                               registry=self.registry)
        self._fallbacks = Counter("legacy_api_read_fallbacks",
                                  "New-mode reads served by legacy because the read model was behind",
                                  ["read"], registry=self.registry)
        for outcome in OUTCOMES:
            self._shadow.labels(outcome)
        self._lock = threading.Lock()
        self._pending = dict.fromkeys(OUTCOMES, 0)
        self._totals = dict.fromkeys(OUTCOMES, 0)

    def read(self, mode: str, served: str) -> None:
        self._reads.labels(mode, served).inc()

    def shadow(self, outcome: str, n: int = 1) -> None:
        """Counts `n` shadow reads of `outcome` (one of OUTCOMES)."""
        self._shadow.labels(outcome).inc(n)
        with self._lock:
            self._pending[outcome] += n
            self._totals[outcome] += n

    def fallback(self, read: str) -> None:
        self._fallbacks.labels(read).inc()

    def take_shadow(self) -> dict[str, int]:
        """Returns the shadow outcomes counted since the last call (all zero: nothing new), and forgets them."""
        with self._lock:
            taken, self._pending = self._pending, dict.fromkeys(OUTCOMES, 0)
        return taken

    def give_back(self, counts: dict[str, int]) -> None:
        """Adds counts that could not be flushed back to the pending ones."""
        with self._lock:
            for outcome, n in counts.items():
                self._pending[outcome] += n

    def totals(self) -> dict[str, int]:
        """Returns the shadow outcomes counted since the process started."""
        with self._lock:
            return dict(self._totals)

    def render(self) -> bytes:
        """Returns the Prometheus text exposition of the counters."""
        return generate_latest(self.registry)
