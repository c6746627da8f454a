"""The main job end to end: a worker on the embedded stack, from input topics to matches.

One worker serves the whole module, with three spaces: the real all-MiniLM-L6-v2
("text"), a tiny CLIP ("clip", text and image) and a tiny CLAP ("clap", text and
audio). Each test uses ids of its own, so the tests share the worker's indexes.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.resources
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile
from PIL import Image

from encoders.base import Encoder
from encoders.decoding import decode_audio, decode_image
from encoders.modality import Modality
from streams.deadletter import parse_deadletter_headers
from streams.devstack import StackEndpoints
from streams.index import FIELD_VECTOR
from streams.settings import Settings, SpaceSettings
from streams.topics import create_topics
from tests.support import (
    WorkerProcess,
    isolated_settings,
    read_records,
    redis_client,
    send_records,
    stored_keys,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SKIMAGE_DATA = Path(str(importlib.resources.files("skimage") / "data"))

# Seconds a test waits for the worker to store or emit what it published.
WAIT_S = 60.0
# Largest record the module's worker accepts, bytes.
MAX_RECORD_BYTES = 1_500_000
# Largest image the module's worker accepts, pixels.
MAX_IMAGE_PIXELS = 30_000_000


@pytest.fixture(scope="module")
def settings(
    stack: StackEndpoints, minilm_path: Path, tiny_clip_dir: Path, tiny_clap_dir: Path
) -> Settings:
    spaces = (
        # Two replicas: batches of the text lane run on two copies of MiniLM at once.
        SpaceSettings(
            name="text", model=str(minilm_path), min_similarity=0.7, max_batch_size=16, max_wait_ms=100, replicas=2
        ),
        SpaceSettings(name="clip", model=str(tiny_clip_dir), min_similarity=0.999),
        SpaceSettings(name="clap", model=str(tiny_clap_dir), min_similarity=0.999),
    )
    return isolated_settings(
        stack,
        spaces,
        kafka_session_timeout_s=2.0,
        kafka_heartbeat_interval_s=0.5,
        max_record_bytes=MAX_RECORD_BYTES,
        max_image_pixels=MAX_IMAGE_PIXELS,
        # Not the default, so that the worker log shows the setting reached its consumer.
        kafka_fetch_max_wait_ms=60,
        log_level="DEBUG",
    )


@pytest.fixture(scope="module")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    asyncio.run(create_topics(settings))
    process = WorkerProcess(settings, tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield process
    process.stop()


def new_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def text_record(event_id: str, text: str, **metadata: str) -> tuple[bytes, bytes]:
    document: dict[str, object] = {"id": event_id, "text": text}
    if metadata:
        document["metadata"] = metadata
    return event_id.encode(), orjson.dumps(document)


def media_record(event_id: str, data: bytes) -> tuple[bytes, bytes]:
    return event_id.encode(), orjson.dumps({"id": event_id, "data": base64.b64encode(data).decode()})


def wav_bytes(seconds: float, rate: int = 22_050, frequency: float = 440.0) -> bytes:
    times = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * frequency * times)).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


async def stored_vector(settings: Settings, space: str, modality: Modality, event_id: str) -> np.ndarray | None:
    client = redis_client(settings)
    try:
        raw = await client.hget(f"{settings.key_prefix}:{space}:{modality}:{event_id}", FIELD_VECTOR)
    finally:
        await client.aclose()
    return None if raw is None else np.frombuffer(raw, dtype="<f4")


async def wait_stored(
    worker: WorkerProcess, settings: Settings, space: str, modality: Modality, event_ids: list[str]
) -> None:
    async def all_stored() -> bool:
        vectors = [await stored_vector(settings, space, modality, event_id) for event_id in event_ids]
        return all(vector is not None for vector in vectors)

    await worker.wait_for(all_stored, WAIT_S, f"{len(event_ids)} {modality} vectors in space {space}")


def assert_close(stored: np.ndarray | None, expected: np.ndarray, what: str) -> None:
    assert stored is not None, f"{what}: no vector stored"
    assert stored.dtype == np.float32
    difference = float(np.max(np.abs(stored - expected)))
    assert difference <= 1e-5, f"{what}: stored vector differs from one-at-a-time by {difference}"


def test_text_event_embedded_in_every_text_space(
    worker: WorkerProcess, settings: Settings, minilm_encoder: Encoder, tiny_clip_encoder: Encoder
) -> None:
    event_id = new_id("text")
    text = "A lighthouse stands on a rocky coast."
    asyncio.run(send_records(settings, settings.topic_text, [text_record(event_id, text)]))

    for space in ("text", "clip", "clap"):
        asyncio.run(wait_stored(worker, settings, space, Modality.TEXT, [event_id]))
    assert_close(
        asyncio.run(stored_vector(settings, "text", Modality.TEXT, event_id)),
        minilm_encoder.encode(Modality.TEXT, [text])[0],
        "MiniLM text",
    )
    assert_close(
        asyncio.run(stored_vector(settings, "clip", Modality.TEXT, event_id)),
        tiny_clip_encoder.encode(Modality.TEXT, [text])[0],
        "CLIP text",
    )


def test_image_event_json_and_raw_embedded(
    worker: WorkerProcess, settings: Settings, tiny_clip_encoder: Encoder
) -> None:
    rocket = (SKIMAGE_DATA / "rocket.jpg").read_bytes()
    coffee = (SKIMAGE_DATA / "coffee.png").read_bytes()
    json_id, raw_id = new_id("rocket"), new_id("coffee")
    asyncio.run(
        send_records(settings, settings.topic_image, [media_record(json_id, rocket), (raw_id.encode(), coffee)])
    )

    asyncio.run(wait_stored(worker, settings, "clip", Modality.IMAGE, [json_id, raw_id]))
    for event_id, data in ((json_id, rocket), (raw_id, coffee)):
        expected = tiny_clip_encoder.encode(Modality.IMAGE, [decode_image(data, MAX_IMAGE_PIXELS)])[0]
        assert_close(asyncio.run(stored_vector(settings, "clip", Modality.IMAGE, event_id)), expected, event_id)


def test_audio_event_json_and_raw_embedded(
    worker: WorkerProcess, settings: Settings, tiny_clap_encoder: Encoder
) -> None:
    tone, low_tone = wav_bytes(1.5), wav_bytes(0.5, rate=48_000, frequency=220.0)
    json_id, raw_id = new_id("tone"), new_id("low-tone")
    asyncio.run(
        send_records(settings, settings.topic_audio, [media_record(json_id, tone), (raw_id.encode(), low_tone)])
    )

    asyncio.run(wait_stored(worker, settings, "clap", Modality.AUDIO, [json_id, raw_id]))
    for event_id, data in ((json_id, tone), (raw_id, low_tone)):
        expected = tiny_clap_encoder.encode(Modality.AUDIO, [decode_audio(data, 600.0)])[0]
        assert_close(asyncio.run(stored_vector(settings, "clap", Modality.AUDIO, event_id)), expected, event_id)


def test_batched_vectors_equal_one_at_a_time(
    worker: WorkerProcess, settings: Settings, minilm_encoder: Encoder
) -> None:
    words = "the quick brown fox jumps over a lazy dog near the quiet river bank at dawn".split()
    texts = [" ".join(words[: 1 + i % len(words)]) + f" ({i})" for i in range(40)]
    ids = [new_id(f"batch{i}") for i in range(len(texts))]
    asyncio.run(
        send_records(settings, settings.topic_text, [text_record(i, t) for i, t in zip(ids, texts, strict=True)])
    )

    asyncio.run(wait_stored(worker, settings, "text", Modality.TEXT, ids))
    for event_id, text in zip(ids, texts, strict=True):
        expected = minilm_encoder.encode(Modality.TEXT, [text])[0]
        assert_close(asyncio.run(stored_vector(settings, "text", Modality.TEXT, event_id)), expected, text)
    log = worker.log_text()
    sizes = [int(size) for size in re.findall(r"batch done lane=text/text size=(\d+)", log)]
    assert max(sizes) > 1, f"the text lane never formed a batch of more than one: {sizes}"
    assert re.search(r"space ready space=text .* replicas=2 ", log), "the text space did not load two replicas"


def test_worker_consumer_uses_fetch_wait(worker: WorkerProcess, settings: Settings) -> None:
    async def consumer_created() -> bool:
        return "kafka consumer created" in worker.log_text()

    asyncio.run(worker.wait_for(consumer_created, WAIT_S, "the worker's Kafka consumer"))

    wait = settings.kafka_fetch_max_wait_ms
    assert re.search(rf"kafka consumer created .*fetch_max_wait_ms={wait}$", worker.log_text(), re.MULTILINE)


def test_replayed_event_leaves_one_vector(
    worker: WorkerProcess, settings: Settings, minilm_encoder: Encoder
) -> None:
    event_id = new_id("replay")
    first, second = "An old version of the post.", "The corrected version of the post."
    asyncio.run(send_records(settings, settings.topic_text, [text_record(event_id, first)]))
    asyncio.run(wait_stored(worker, settings, "text", Modality.TEXT, [event_id]))
    asyncio.run(send_records(settings, settings.topic_text, [text_record(event_id, second)]))

    expected = minilm_encoder.encode(Modality.TEXT, [second])[0]

    async def replaced() -> bool:
        vector = await stored_vector(settings, "text", Modality.TEXT, event_id)
        return vector is not None and float(np.max(np.abs(vector - expected))) <= 1e-5

    asyncio.run(worker.wait_for(replaced, WAIT_S, "the replayed event's vector"))
    keys = [key for key in asyncio.run(stored_keys(settings, "text")) if event_id in key]
    assert keys == [f"{settings.key_prefix}:text:text:{event_id}"]


def bomb_png() -> bytes:
    """Return a small PNG whose header declares 40 million pixels."""
    buffer = io.BytesIO()
    Image.new("1", (8000, 5000)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_inputs_dead_lettered_with_reason(worker: WorkerProcess, settings: Settings) -> None:
    rocket = (SKIMAGE_DATA / "rocket.jpg").read_bytes()
    bad = {
        "invalid_json": (settings.topic_text, b"k1", b'{"id": "x", "text": '),
        "missing_id": (settings.topic_text, b"k2", b'{"text": "no id here"}'),
        "invalid_id": (settings.topic_text, b"k3", b'{"id": 42, "text": "numeric id"}'),
        "empty_text": (settings.topic_text, b"k4", b'{"id": "empty", "text": "  "}'),
        "image_undecodable": (settings.topic_image, b"not-an-image", b"\x00\x01 definitely not an image"),
        "image_truncated": (settings.topic_image, *media_record("half-rocket", rocket[: len(rocket) // 2])),
        "image_too_large": (settings.topic_image, *media_record("bomb", bomb_png())),
        "audio_undecodable": (settings.topic_audio, b"noise", b"RIFF but no wave at all"),
        "record_too_large": (settings.topic_text, b"big", orjson.dumps({"id": "big", "text": "w" * MAX_RECORD_BYTES})),
    }
    for topic, key, value in bad.values():
        asyncio.run(send_records(settings, topic, [(key, value)]))
    good_id = new_id("after-bad")
    asyncio.run(send_records(settings, settings.topic_text, [text_record(good_id, "A good event after the bad ones.")]))

    asyncio.run(wait_stored(worker, settings, "text", Modality.TEXT, [good_id]))
    letters = asyncio.run(read_records(settings, settings.topic_deadletter, len(bad) + 50, 10))
    by_key = {bytes(letter.key): letter for letter in letters}
    for reason, (topic, key, value) in bad.items():
        letter = by_key.get(key)
        assert letter is not None, f"no dead-letter record for {reason}"
        headers = parse_deadletter_headers(list(letter.headers))
        assert headers["reason"] == reason, f"{reason}: got {headers['reason']} ({headers['detail']})"
        if reason == "record_too_large":
            assert int(headers["original_size"]) == len(value)
            assert len(letter.value) == settings.max_deadletter_bytes
            assert value.startswith(letter.value), f"{reason}: the kept bytes are not the original's start"
        else:
            assert letter.value == value, f"{reason}: original bytes not kept"
        assert headers["source.topic"] == topic
        assert int(headers["source.offset"]) >= 0
        assert int(headers["source.partition"]) >= 0
        assert headers["detail"], f"{reason}: no detail"


def test_matches_above_threshold_never_self(worker: WorkerProcess, settings: Settings) -> None:
    first, second, loner = new_id("para-a"), new_id("para-b"), new_id("loner")
    records = [
        text_record(first, "The ferry to the island was cancelled because of the storm.", source="news"),
        text_record(second, "Because of the storm, the island ferry did not sail.", source="news"),
        text_record(loner, "Quantum chromodynamics describes the strong interaction.", source="physics"),
    ]
    asyncio.run(send_records(settings, settings.topic_text, records))
    asyncio.run(wait_stored(worker, settings, "text", Modality.TEXT, [first, second, loner]))

    async def events_for_pair() -> list[dict[str, object]]:
        records = await read_records(settings, settings.topic_matches, 10_000, 3)
        return [orjson.loads(record.value) for record in records]

    async def pair_matched() -> bool:
        sources = {event["source"]["id"] for event in await events_for_pair() if event["space"] == "text"}
        return {first, second} <= sources

    asyncio.run(worker.wait_for(pair_matched, WAIT_S, "match events of the paraphrase pair"))
    events = asyncio.run(events_for_pair())
    text_events = {event["source"]["id"]: event for event in events if event["space"] == "text"}
    first_matches = {match["id"]: match for match in text_events[first]["matches"]}
    assert second in first_matches
    assert first_matches[second]["similarity"] >= 0.7
    assert first_matches[second]["modality"] == "text"
    assert first_matches[second]["metadata"] == {"source": "news"}
    assert text_events[first]["source"]["modality"] == "text"
    assert loner not in text_events, "an unrelated sentence got a match above the threshold"
    for event in events:
        for match in event["matches"]:
            assert match["id"] != event["source"]["id"] or match["modality"] != event["source"]["modality"], (
                f"event {event['source']['id']} matched itself"
            )
            minimum = settings.space(event["space"]).min_similarity
            assert match["similarity"] >= minimum, f"{match} is under the threshold of {event['space']}"
