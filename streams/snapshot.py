"""The figures of the dashboard and of ``embedstream top``, computed from a window of readings.

Rates and quantiles cover the window between the window's oldest and newest
reading. They are None until there are two readings, and quantiles and means are
None when nothing was observed in the window. Totals and gauges are the newest
reading's values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from streams.promql import Bucket, counter_increase, histogram_increase, histogram_quantile
from streams.scrapes import Labels, Scrape, ScrapeWindow

# Sample names as the exposition format writes them. streams/metrics.py declares the metrics.
CONSUMED = "embedstream_events_consumed_total"
EMBEDDED = "embedstream_events_embedded_total"
DEADLETTERED = "embedstream_events_deadlettered_total"
MATCH_EVENTS = "embedstream_match_events_total"
RETRIES = "embedstream_retries_total"
BATCH_SIZE = "embedstream_batch_size"
BATCH_FILL_WAIT = "embedstream_batch_fill_wait_seconds"
STAGE_DURATION = "embedstream_stage_duration_seconds"
END_TO_END_LATENCY = "embedstream_end_to_end_latency_seconds"
CONSUMER_LAG = "embedstream_consumer_lag_records"
INDEX_DOCUMENTS = "embedstream_index_documents"
CUDA_MEMORY = "embedstream_cuda_memory_allocated_bytes"

# Rates and quantiles cover this many seconds: long enough to smooth the bursts of
# batch-by-batch processing, short enough that a change shows within a few updates.
RATE_WINDOW_S = 10.0

# Stages in the order a batch passes them, for a stable display order.
STAGE_ORDER = ("preprocess", "forward", "redis_write", "redis_search", "produce")


@dataclass(frozen=True, slots=True)
class Throughput:
    """Inputs embedded and match events sent for one space and modality."""

    space: str
    modality: str
    embedded_total: float
    embedded_per_s: float | None
    matches_total: float
    matches_per_s: float | None


@dataclass(frozen=True, slots=True)
class Count:
    """A counter series named by its one label value (a topic, reason or operation)."""

    label: str
    total: float
    per_s: float | None


@dataclass(frozen=True, slots=True)
class Latency:
    """End-to-end latency quantiles of one space and modality over the window, seconds."""

    space: str
    modality: str
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    observations: float


@dataclass(frozen=True, slots=True)
class Lag:
    """Records behind the high watermark in one partition."""

    topic: str
    partition: str
    records: float


@dataclass(frozen=True, slots=True)
class Batches:
    """Forward passes of one space and modality over the window."""

    space: str
    modality: str
    batches_per_s: float | None
    mean_size: float | None
    mean_fill_wait_s: float | None
    p95_fill_wait_s: float | None


@dataclass(frozen=True, slots=True)
class StageTime:
    """Per-batch time of one stage in one space and modality over the window, seconds."""

    space: str
    modality: str
    stage: str
    mean_s: float | None
    p95_s: float | None


@dataclass(frozen=True, slots=True)
class Gauge:
    """A gauge series named by its one label value (a space or device)."""

    label: str
    value: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every dashboard figure at one moment."""

    taken_at: float
    window_s: float | None
    throughput: list[Throughput]
    consumed: list[Count]
    latency: list[Latency]
    lag: list[Lag]
    batches: list[Batches]
    stages: list[StageTime]
    deadletters: list[Count]
    retries: list[Count]
    index_documents: list[Gauge]
    cuda_memory_bytes: list[Gauge]


def build_snapshot(window: ScrapeWindow) -> Snapshot:
    """Return the figures of the window's newest reading and the rates since its oldest."""
    latest = window.latest
    if latest is None:
        raise ValueError("the window contains no reading yet: add one before building a snapshot")
    figures = _Figures(latest, window.baseline)
    return Snapshot(
        taken_at=latest.wall_s,
        window_s=figures.elapsed_s,
        throughput=figures.throughput(),
        consumed=figures.counts(CONSUMED, "topic"),
        latency=figures.latency(),
        lag=figures.lag(),
        batches=figures.batches(),
        stages=figures.stages(),
        deadletters=figures.counts(DEADLETTERED, "reason"),
        retries=figures.counts(RETRIES, "operation"),
        index_documents=figures.gauges(INDEX_DOCUMENTS, "space"),
        cuda_memory_bytes=figures.gauges(CUDA_MEMORY, "device"),
    )


class _Figures:
    """Rates, totals and windowed histograms of two readings."""

    def __init__(self, latest: Scrape, baseline: Scrape | None) -> None:
        self.latest = latest
        self.baseline = baseline
        elapsed = None if baseline is None else latest.monotonic_s - baseline.monotonic_s
        self.elapsed_s = elapsed if elapsed is not None and elapsed > 0 else None

    def rate(self, name: str, labels: Labels) -> float | None:
        if self.baseline is None or self.elapsed_s is None:
            return None
        value = self.latest.series(name).get(labels, 0.0)
        # A series missing from the baseline was created since, at 0.
        before = self.baseline.series(name).get(labels, 0.0)
        return counter_increase(before, value) / self.elapsed_s

    def window_histograms(self, name: str) -> dict[Labels, tuple[list[Bucket], float]]:
        """Return each series' bucket increases and sum increase over the window."""
        if self.baseline is None:
            return {}
        before = self.baseline.histograms(name)
        sums_before = self.baseline.series(f"{name}_sum")
        sums_after = self.latest.series(f"{name}_sum")
        result = {}
        for labels, buckets in self.latest.histograms(name).items():
            increase = histogram_increase(before.get(labels, []), buckets)
            total = counter_increase(sums_before.get(labels, 0.0), sums_after.get(labels, 0.0))
            result[labels] = (increase, total)
        return result

    def counts(self, name: str, label: str) -> list[Count]:
        rows = [
            Count(dict(labels).get(label, ""), total, self.rate(name, labels))
            for labels, total in self.latest.series(name).items()
        ]
        return sorted(rows, key=lambda row: row.label)

    def gauges(self, name: str, label: str) -> list[Gauge]:
        rows = [Gauge(dict(labels).get(label, ""), value) for labels, value in self.latest.series(name).items()]
        return sorted(rows, key=lambda row: row.label)

    def throughput(self) -> list[Throughput]:
        embedded = self.latest.series(EMBEDDED)
        matches = self.latest.series(MATCH_EVENTS)
        rows = []
        for labels in set(embedded) | set(matches):
            names = dict(labels)
            rows.append(
                Throughput(
                    space=names.get("space", ""),
                    modality=names.get("modality", ""),
                    embedded_total=embedded.get(labels, 0.0),
                    embedded_per_s=self.rate(EMBEDDED, labels),
                    matches_total=matches.get(labels, 0.0),
                    matches_per_s=self.rate(MATCH_EVENTS, labels),
                )
            )
        return sorted(rows, key=lambda row: (row.modality, row.space))

    def latency(self) -> list[Latency]:
        rows = []
        for labels, (buckets, _) in self.window_histograms(END_TO_END_LATENCY).items():
            names = dict(labels)
            rows.append(
                Latency(
                    space=names.get("space", ""),
                    modality=names.get("modality", ""),
                    p50_s=_quantile(0.5, buckets),
                    p95_s=_quantile(0.95, buckets),
                    p99_s=_quantile(0.99, buckets),
                    observations=_observations(buckets),
                )
            )
        return sorted(rows, key=lambda row: (row.modality, row.space))

    def lag(self) -> list[Lag]:
        rows = []
        for labels, records in self.latest.series(CONSUMER_LAG).items():
            names = dict(labels)
            rows.append(Lag(names.get("topic", ""), names.get("partition", ""), records))
        return sorted(rows, key=lambda row: (row.topic, _partition_order(row.partition)))

    def batches(self) -> list[Batches]:
        sizes = self.window_histograms(BATCH_SIZE)
        waits = self.window_histograms(BATCH_FILL_WAIT)
        rows = []
        for labels in set(sizes) | set(waits):
            names = dict(labels)
            size_buckets, size_sum = sizes.get(labels, ([], 0.0))
            wait_buckets, wait_sum = waits.get(labels, ([], 0.0))
            count = _observations(size_buckets)
            rows.append(
                Batches(
                    space=names.get("space", ""),
                    modality=names.get("modality", ""),
                    batches_per_s=None if self.elapsed_s is None else count / self.elapsed_s,
                    mean_size=_mean(size_sum, count),
                    mean_fill_wait_s=_mean(wait_sum, _observations(wait_buckets)),
                    p95_fill_wait_s=_quantile(0.95, wait_buckets),
                )
            )
        return sorted(rows, key=lambda row: (row.modality, row.space))

    def stages(self) -> list[StageTime]:
        rows = []
        for labels, (buckets, total) in self.window_histograms(STAGE_DURATION).items():
            names = dict(labels)
            rows.append(
                StageTime(
                    space=names.get("space", ""),
                    modality=names.get("modality", ""),
                    stage=names.get("stage", ""),
                    mean_s=_mean(total, _observations(buckets)),
                    p95_s=_quantile(0.95, buckets),
                )
            )
        return sorted(rows, key=lambda row: (row.modality, row.space, _stage_order(row.stage)))


def _observations(buckets: Iterable[Bucket]) -> float:
    """Return the count of the +Inf bucket, which counts every observation."""
    return next((count for bound, count in buckets if bound == math.inf), 0.0)


def _quantile(quantile: float, buckets: list[Bucket]) -> float | None:
    value = histogram_quantile(quantile, buckets)
    return None if math.isnan(value) else value


def _mean(total: float, count: float) -> float | None:
    return total / count if count > 0 else None


def _partition_order(partition: str) -> tuple[int, str]:
    return (int(partition), "") if partition.isdigit() else (-1, partition)


def _stage_order(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
