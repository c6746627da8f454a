"""Every Prometheus metric of a worker, declared in one place.

Names follow the Prometheus conventions (base units, ``_total`` for counters,
``_seconds`` and ``_bytes`` suffixes). Labels take values from small fixed sets:
topic, partition, space, modality, rejection reason, lane stage. Never an event id.
Each worker owns a registry of its own, so tests and several pipelines in one
process do not share counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Batch sizes are counts of inputs, from one to the largest max_batch_size in use.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# Per-batch stage times on CPU and GPU range from a millisecond (a Redis pipeline)
# to seconds (a CPU forward pass of a large image batch).
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# End-to-end latency: tens of milliseconds on an idle GPU worker, up to minutes
# while a backlog drains after an outage.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class WorkerMetrics:
    """The metrics of one worker, registered in ``registry``."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        registry = self.registry
        self.events_consumed = Counter(
            "embedstream_events_consumed_total",
            "Input records taken from a topic, valid or not.",
            ["topic"], registry=registry,
        )
        self.events_embedded = Counter(
            "embedstream_events_embedded_total",
            "Inputs embedded and stored, per space and modality.",
            ["space", "modality"], registry=registry,
        )
        self.events_deadlettered = Counter(
            "embedstream_events_deadlettered_total",
            "Input records sent to the dead-letter topic, per rejection reason.",
            ["reason"], registry=registry,
        )
        self.texts_truncated = Counter(
            "embedstream_texts_truncated_total",
            "Texts longer than a space's token window, embedded from their first window of tokens.",
            ["space"], registry=registry,
        )
        self.match_events = Counter(
            "embedstream_match_events_total",
            "Match events sent, per space and source modality.",
            ["space", "modality"], registry=registry,
        )
        self.batch_size = Histogram(
            "embedstream_batch_size",
            "Inputs per forward pass.",
            ["space", "modality"], buckets=BATCH_SIZE_BUCKETS, registry=registry,
        )
        self.batch_fill_wait = Histogram(
            "embedstream_batch_fill_wait_seconds",
            "Time the oldest input of a batch waited in the batcher before its batch closed.",
            ["space", "modality"], buckets=STAGE_BUCKETS, registry=registry,
        )
        self.stage_duration = Histogram(
            "embedstream_stage_duration_seconds",
            "Time per batch spent in a stage: preprocess, forward, redis_write, redis_search, produce.",
            ["space", "modality", "stage"], buckets=STAGE_BUCKETS, registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "embedstream_end_to_end_latency_seconds",
            "Time from an input record's Kafka timestamp until its vector is stored and its match "
            "event sent.",
            ["space", "modality"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.consumer_lag = Gauge(
            "embedstream_consumer_lag_records",
            "Records in a partition after the last one this worker finished (high watermark minus "
            "next offset to finish).",
            ["topic", "partition"], registry=registry,
        )
        self.index_documents = Gauge(
            "embedstream_index_documents",
            "Documents in a space's vector index, read with FT.INFO.",
            ["space"], registry=registry,
        )
        self.cuda_memory_allocated = Gauge(
            "embedstream_cuda_memory_allocated_bytes",
            "Device memory that torch has allocated, per CUDA device; absent without CUDA.",
            ["device"], registry=registry,
        )
        self.retries = Counter(
            "embedstream_retries_total",
            "Failed attempts of an operation that is retried until it succeeds.",
            ["operation"], registry=registry,
        )
