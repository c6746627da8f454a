"""A live worker's /metrics: valid for promtool, every declared metric present, no event id in a label."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.devstack import StackEndpoints
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.topics import create_topics
from tests.monitoring_support import EVENT_ID_PREFIX, Publisher, base_url, fetch, monitoring_settings, require_tool
from tests.support import WorkerProcess, send_records

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WAIT_S = 60.0
TEXTS = 12
IMAGES = 2

# The labels of each family as streams/metrics.py declares them, plus "le" on every bucket.
EXPECTED_LABELS = {
    "embedstream_events_consumed_total": {"topic"},
    "embedstream_events_embedded_total": {"space", "modality"},
    "embedstream_events_deadlettered_total": {"reason"},
    "embedstream_match_events_total": {"space", "modality"},
    "embedstream_batch_size_bucket": {"space", "modality", "le"},
    "embedstream_batch_fill_wait_seconds_bucket": {"space", "modality", "le"},
    "embedstream_stage_duration_seconds_bucket": {"space", "modality", "stage", "le"},
    "embedstream_end_to_end_latency_seconds_bucket": {"space", "modality", "le"},
    "embedstream_consumer_lag_records": {"topic", "partition"},
    "embedstream_index_documents": {"space"},
}

# Families with no sample in a healthy CPU run: nothing was retried, and there is no CUDA device.
WITHOUT_SAMPLES = {"embedstream_retries", "embedstream_cuda_memory_allocated_bytes"}


def samples_by_name(text: str) -> dict[str, list[dict[str, str]]]:
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    return samples


@dataclass(frozen=True)
class LoadedWorker:
    settings: Settings
    event_ids: frozenset[str]
    metrics_text: str


@pytest.fixture(scope="module")
def loaded_worker(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedWorker]:
    """Start a worker, publish texts, images and one invalid record, and read its settled /metrics."""
    settings = monitoring_settings(stack)
    asyncio.run(create_topics(settings))
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("metrics") / "worker.log").start()
    try:
        ids, text = asyncio.run(_load(settings, worker))
        yield LoadedWorker(settings, ids, text)
    finally:
        worker.stop()


async def _load(settings: Settings, worker: WorkerProcess) -> tuple[frozenset[str], str]:
    publisher = Publisher(settings)
    try:
        await publisher.send_batch(TEXTS, IMAGES)
    finally:
        await publisher.stop()
    broken_id = f"{EVENT_ID_PREFIX}broken"
    await send_records(settings, settings.topic_text, [(broken_id.encode(), b"{not json")])
    metrics_url = f"{base_url(settings)}/metrics"
    latest: list[str] = []

    async def settled() -> bool:
        try:
            text = fetch(metrics_url).decode()
        except OSError:
            return False
        latest[:] = [text]
        samples = samples_by_name(text)
        return (
            _total(text, "embedstream_events_embedded_total") >= TEXTS + IMAGES
            and "embedstream_events_deadlettered_total" in samples
            and "embedstream_consumer_lag_records" in samples
            and "embedstream_index_documents" in samples
        )

    await worker.wait_for(settled, WAIT_S, "every published event in the worker's /metrics")
    return frozenset([*publisher.ids, broken_id]), latest[0]


def _total(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_metrics_pass_promtool_check(loaded_worker: LoadedWorker) -> None:
    promtool = require_tool("promtool")
    text = loaded_worker.metrics_text

    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
    )

    assert checked.returncode == 0, f"promtool check metrics failed:\n{checked.stdout}{checked.stderr}"
    assert not checked.stdout.strip(), f"promtool reported problems:\n{checked.stdout}"


def test_metrics_have_declared_names_and_labels(
    loaded_worker: LoadedWorker,
) -> None:
    settings, text = loaded_worker.settings, loaded_worker.metrics_text
    families = {family.name for family in text_string_to_metric_families(text)}
    samples = samples_by_name(text)

    for family in WorkerMetrics().registry.collect():
        assert family.name in families, f"family {family.name} missing from /metrics"
    for name, labels in EXPECTED_LABELS.items():
        assert name in samples, f"no {name} sample after events flowed"
        for sample_labels in samples[name]:
            assert set(sample_labels) == labels, f"{name} has labels {sorted(sample_labels)}, expected {sorted(labels)}"
    assert {labels["topic"] for labels in samples["embedstream_events_consumed_total"]} == {
        settings.topic_text, settings.topic_image
    }
    assert {labels["modality"] for labels in samples["embedstream_events_embedded_total"]} == {"text", "image"}
    assert {labels["space"] for labels in samples["embedstream_index_documents"]} == {"hashed"}
    for name in WITHOUT_SAMPLES:
        assert name in families, f"family {name} missing from /metrics"


def test_metrics_label_values_exclude_event_ids(
    loaded_worker: LoadedWorker,
) -> None:
    ids = loaded_worker.event_ids

    values = {
        value
        for samples in samples_by_name(loaded_worker.metrics_text).values()
        for labels in samples
        for value in labels.values()
    }

    assert ids, "the test published no events"
    assert not values & ids, f"label values that are event ids: {sorted(values & ids)}"
    assert not [value for value in values if EVENT_ID_PREFIX in value], "a label value contains an event id"
