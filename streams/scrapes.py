"""Readings of a worker's metrics, and the sliding window that rates are computed over.

A reading comes either from the worker's own registry (the dashboard) or from the
text of its /metrics endpoint (``embedstream top``). Both yield prometheus_client
metric families, so everything after this module works the same for both.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from streams.promql import Bucket

# Label pairs of one series, sorted by name.
Labels = tuple[tuple[str, str], ...]

# The label that contains a histogram bucket's upper bound.
BUCKET_LABEL = "le"


@dataclass(frozen=True)
class Scrape:
    """The value of every sample of one reading, by sample name and labels.

    ``monotonic_s`` (time.monotonic) measures the time between readings, and
    ``wall_s`` (Unix time) is what a display shows.
    """

    monotonic_s: float
    wall_s: float
    values: dict[str, dict[Labels, float]] = field(default_factory=dict)

    @classmethod
    def from_families(
        cls, families: Iterable[Metric], monotonic_s: float | None = None, wall_s: float | None = None
    ) -> Scrape:
        values: dict[str, dict[Labels, float]] = {}
        for family in families:
            for sample in family.samples:
                values.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return cls(
            time.monotonic() if monotonic_s is None else monotonic_s,
            time.time() if wall_s is None else wall_s,
            values,
        )

    def series(self, name: str) -> dict[Labels, float]:
        """Return the samples called ``name`` (with its suffix, such as ``_total``) by labels."""
        return self.values.get(name, {})

    def histograms(self, name: str) -> dict[Labels, list[Bucket]]:
        """Return the cumulative buckets of histogram ``name`` for each label set without ``le``."""
        histograms: dict[Labels, list[Bucket]] = {}
        for labels, count in self.series(f"{name}_bucket").items():
            bound = next((value for key, value in labels if key == BUCKET_LABEL), None)
            if bound is None:
                continue
            rest = tuple((key, value) for key, value in labels if key != BUCKET_LABEL)
            histograms.setdefault(rest, []).append((_bound(bound), count))
        return {labels: sorted(buckets) for labels, buckets in histograms.items()}


def _bound(text: str) -> float:
    """Parse a bucket bound as the exposition format writes it ("0.5", "+Inf")."""
    return math.inf if text == "+Inf" else float(text)


class ScrapeWindow:
    """The readings of the last ``window_s`` seconds, plus one older reading as the baseline.

    Keeping the newest reading at or before the window's start means rates always
    span at least ``window_s`` once that much time has passed, even when readings
    are further apart than the window.
    """

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"invalid window {window_s} s: it must be positive")
        self.window_s = window_s
        self._scrapes: deque[Scrape] = deque()

    def add(self, scrape: Scrape) -> None:
        self._scrapes.append(scrape)
        start = scrape.monotonic_s - self.window_s
        while len(self._scrapes) > 2 and self._scrapes[1].monotonic_s <= start:
            self._scrapes.popleft()

    @property
    def latest(self) -> Scrape | None:
        return self._scrapes[-1] if self._scrapes else None

    @property
    def baseline(self) -> Scrape | None:
        """The oldest kept reading, or None while there is only one."""
        return self._scrapes[0] if len(self._scrapes) > 1 else None
