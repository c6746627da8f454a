"""Dashboard snapshots from a worker's registry and from its /metrics text, over a window of readings."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams import snapshot as snapshot_module
from streams.metrics import WorkerMetrics
from streams.scrapes import Scrape, ScrapeWindow
from streams.snapshot import Snapshot, build_snapshot

WINDOW_S = 10.0


def registry_scrape(metrics: WorkerMetrics, at_s: float) -> Scrape:
    return Scrape.from_families(metrics.registry.collect(), monotonic_s=at_s, wall_s=1_700_000_000.0 + at_s)


def text_scrape(metrics: WorkerMetrics, at_s: float) -> Scrape:
    text = generate_latest(metrics.registry).decode()
    return Scrape.from_families(text_string_to_metric_families(text), monotonic_s=at_s, wall_s=1_700_000_000.0 + at_s)


def record_batch(metrics: WorkerMetrics, size: int, latency_s: float) -> None:
    """Record one batch of ``size`` text inputs in space "text", as a lane does."""
    metrics.events_consumed.labels("embed.text").inc(size)
    metrics.events_embedded.labels("text", "text").inc(size)
    metrics.match_events.labels("text", "text").inc(size)
    metrics.batch_size.labels("text", "text").observe(size)
    metrics.batch_fill_wait.labels("text", "text").observe(0.02)
    metrics.stage_duration.labels("text", "text", "forward").observe(0.03)
    metrics.stage_duration.labels("text", "text", "preprocess").observe(0.004)
    for _ in range(size):
        metrics.end_to_end_latency.labels("text", "text").observe(latency_s)


@pytest.fixture
def metrics() -> WorkerMetrics:
    metrics = WorkerMetrics()
    record_batch(metrics, 4, 0.2)
    metrics.consumer_lag.labels("embed.text", "10").set(3)
    metrics.consumer_lag.labels("embed.text", "2").set(7)
    metrics.index_documents.labels("text").set(4)
    return metrics


def test_snapshot_one_reading_has_totals_without_rates(metrics: WorkerMetrics) -> None:
    window = ScrapeWindow(WINDOW_S)
    window.add(registry_scrape(metrics, 0.0))

    snapshot = build_snapshot(window)

    assert snapshot.window_s is None
    assert [(row.modality, row.embedded_total, row.embedded_per_s) for row in snapshot.throughput] == [
        ("text", 4.0, None)
    ]
    assert snapshot.latency == []
    assert [(row.topic, row.partition, row.records) for row in snapshot.lag] == [
        ("embed.text", "2", 7.0), ("embed.text", "10", 3.0)
    ]
    assert [(row.label, row.value) for row in snapshot.index_documents] == [("text", 4.0)]


def test_snapshot_rates_cover_window(metrics: WorkerMetrics) -> None:
    window = ScrapeWindow(WINDOW_S)
    window.add(registry_scrape(metrics, 0.0))
    for _ in range(5):
        record_batch(metrics, 8, 0.6)
    window.add(registry_scrape(metrics, 4.0))

    snapshot = build_snapshot(window)

    assert snapshot.window_s == pytest.approx(4.0)
    (throughput,) = snapshot.throughput
    assert throughput.embedded_per_s == pytest.approx(40 / 4.0)
    assert throughput.matches_per_s == pytest.approx(40 / 4.0)
    assert throughput.embedded_total == 44.0
    (consumed,) = snapshot.consumed
    assert (consumed.label, consumed.per_s) == ("embed.text", pytest.approx(10.0))


def test_snapshot_latency_counts_only_window(metrics: WorkerMetrics) -> None:
    window = ScrapeWindow(WINDOW_S)
    window.add(registry_scrape(metrics, 0.0))
    for _ in range(5):
        record_batch(metrics, 8, 0.6)
    window.add(registry_scrape(metrics, 4.0))

    (latency,) = build_snapshot(window).latency

    # All 40 inputs of the window fall in (0.5, 1.0], and the 4 earlier ones at 0.2 s do not count.
    assert latency.observations == 40.0
    assert latency.p50_s == pytest.approx(0.75)
    assert latency.p99_s == pytest.approx(0.995)


def test_snapshot_batches_and_stages_average_window(metrics: WorkerMetrics) -> None:
    window = ScrapeWindow(WINDOW_S)
    window.add(registry_scrape(metrics, 0.0))
    record_batch(metrics, 8, 0.6)
    record_batch(metrics, 16, 0.6)
    window.add(registry_scrape(metrics, 2.0))

    snapshot = build_snapshot(window)

    (batches,) = snapshot.batches
    assert batches.batches_per_s == pytest.approx(1.0)
    assert batches.mean_size == pytest.approx(12.0)
    assert batches.mean_fill_wait_s == pytest.approx(0.02)
    assert [row.stage for row in snapshot.stages] == ["preprocess", "forward"]
    assert snapshot.stages[1].mean_s == pytest.approx(0.03)


def test_snapshot_idle_window_has_no_quantiles(metrics: WorkerMetrics) -> None:
    window = ScrapeWindow(WINDOW_S)
    window.add(registry_scrape(metrics, 0.0))
    window.add(registry_scrape(metrics, 2.0))

    snapshot = build_snapshot(window)

    (latency,) = snapshot.latency
    assert latency.observations == 0.0
    assert latency.p50_s is None
    assert snapshot.throughput[0].embedded_per_s == 0.0
    assert snapshot.batches[0].mean_size is None


def test_snapshot_after_reset_rates_from_new_counts(metrics: WorkerMetrics) -> None:
    window = ScrapeWindow(WINDOW_S)
    window.add(registry_scrape(metrics, 0.0))
    restarted = WorkerMetrics()
    record_batch(restarted, 2, 0.2)
    window.add(registry_scrape(restarted, 2.0))

    snapshot = build_snapshot(window)

    assert snapshot.throughput[0].embedded_per_s == pytest.approx(1.0)
    assert snapshot.latency[0].observations == 2.0


def test_snapshot_new_series_counts_from_zero(metrics: WorkerMetrics) -> None:
    window = ScrapeWindow(WINDOW_S)
    window.add(registry_scrape(metrics, 0.0))
    metrics.events_deadlettered.labels("invalid_json").inc(6)
    metrics.retries.labels("redis_write").inc(2)
    window.add(registry_scrape(metrics, 2.0))

    snapshot = build_snapshot(window)

    assert [(row.label, row.total, row.per_s) for row in snapshot.deadletters] == [("invalid_json", 6.0, 3.0)]
    assert [(row.label, row.total, row.per_s) for row in snapshot.retries] == [("redis_write", 2.0, 1.0)]


def test_snapshot_from_text_equals_snapshot_from_registry(metrics: WorkerMetrics) -> None:
    from_registry, from_text = ScrapeWindow(WINDOW_S), ScrapeWindow(WINDOW_S)
    from_registry.add(registry_scrape(metrics, 0.0))
    from_text.add(text_scrape(metrics, 0.0))
    record_batch(metrics, 8, 0.6)
    metrics.events_deadlettered.labels("invalid_json").inc()
    from_registry.add(registry_scrape(metrics, 3.0))
    from_text.add(text_scrape(metrics, 3.0))

    assert build_snapshot(from_text) == build_snapshot(from_registry)


def test_snapshot_sections_all_filled_by_worker_metrics(metrics: WorkerMetrics) -> None:
    window = ScrapeWindow(WINDOW_S)
    window.add(registry_scrape(metrics, 0.0))
    record_batch(metrics, 8, 0.6)
    metrics.events_deadlettered.labels("invalid_json").inc()
    metrics.retries.labels("produce").inc()
    metrics.cuda_memory_allocated.labels("cuda:0").set(2**20)
    window.add(registry_scrape(metrics, 1.0))

    snapshot = build_snapshot(window)

    for field in dataclasses.fields(Snapshot):
        value = getattr(snapshot, field.name)
        if isinstance(value, list):
            assert value, f"snapshot section {field.name} is empty: its metric name may not match streams/metrics.py"


def test_snapshot_metric_names_exist_in_worker_metrics() -> None:
    families = {family.name: family.type for family in WorkerMetrics().registry.collect()}
    suffixes = {"counter": "_total", "histogram": "", "gauge": ""}
    declared = {f"{name}{suffixes[kind]}" for name, kind in families.items()}
    used = {
        value
        for name, value in vars(snapshot_module).items()
        if name.isupper() and isinstance(value, str) and value.startswith("embedstream_")
    }

    assert used, "streams.snapshot names no metric"
    assert used <= declared, f"streams.snapshot reads metrics that WorkerMetrics lacks: {sorted(used - declared)}"


def test_window_keeps_newest_reading_before_start_as_baseline() -> None:
    window = ScrapeWindow(WINDOW_S)
    for at_s in (0.0, 3.0, 6.0, 9.0, 12.0, 15.0):
        window.add(Scrape(at_s, at_s))

    assert window.baseline is not None
    assert window.baseline.monotonic_s == 3.0
    assert window.latest is not None
    assert window.latest.monotonic_s == 15.0


def test_window_wider_than_readings_keeps_two() -> None:
    window = ScrapeWindow(1.0)
    for at_s in (0.0, 30.0, 60.0):
        window.add(Scrape(at_s, at_s))

    assert window.baseline is not None
    assert window.baseline.monotonic_s == 30.0


def test_window_rejects_non_positive_length() -> None:
    with pytest.raises(ValueError, match="invalid window"):
        ScrapeWindow(0.0)
