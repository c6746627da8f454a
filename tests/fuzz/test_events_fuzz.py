"""Fuzzing of input record validation: parse_record raises only InvalidEvent, and what it accepts can be stored."""

from __future__ import annotations

import math

import orjson
from hypothesis import given
from hypothesis import strategies as st

from encoders.modality import Modality
from streams.events import MAX_METADATA_VALUE_CHARS, EventLimits, InputEvent, InvalidEvent, SourcePosition, parse_record
from tests.fuzz.strategies import FUZZ_SETTINGS, hostile_records, json_documents, malformed_json

POSITION = SourcePosition("fuzz", 0, 7)
# Small limits, so that generated records cross each of them in both directions.
LIMITS = EventLimits(
    max_record_bytes=64 * 1024,
    max_text_chars=2_000,
    max_metadata_fields=32,
    max_id_chars=64,
    max_metadata_bytes=16_384,
    max_metadata_key_chars=64,
)

modalities = st.sampled_from(list(Modality))
record_timestamps = st.none() | st.floats(0, 4e9)


def parse_or_reject(modality: Modality, key: bytes | None, value: bytes, timestamp: float | None) -> InputEvent | None:
    """Return the parsed event, or None when the record is rejected with InvalidEvent."""
    try:
        return parse_record(modality, key, value, POSITION, timestamp, LIMITS)
    except InvalidEvent as exc:
        assert exc.reason.isidentifier(), f"reason {exc.reason!r} is not a snake_case code"
        assert exc.detail, f"{exc.reason}: empty detail"
        return None


def assert_storable(event: InputEvent) -> None:
    """Check that an accepted event fits every limit and can be written to Redis and Kafka."""
    assert event.id.strip(), "blank id accepted"
    assert len(event.id) <= LIMITS.max_id_chars
    assert "\x00" not in event.id
    event.id.encode("utf-8")
    assert math.isfinite(event.event_time)
    assert event.event_time >= 0
    assert len(event.metadata) <= LIMITS.max_metadata_fields
    assert len(orjson.dumps(event.metadata)) <= LIMITS.max_metadata_bytes
    for name, value in event.metadata.items():
        assert len(name) <= LIMITS.max_metadata_key_chars
        assert not isinstance(value, bool)
        assert isinstance(value, str | int | float)
        if isinstance(value, float):
            assert math.isfinite(value)
        if isinstance(value, str):
            assert len(value) <= MAX_METADATA_VALUE_CHARS
    if event.modality is Modality.TEXT:
        assert isinstance(event.payload, str)
        assert event.payload.strip()
        assert len(event.payload) <= LIMITS.max_text_chars
        event.payload.encode("utf-8")
    else:
        assert isinstance(event.payload, bytes)
        assert event.payload


@FUZZ_SETTINGS
@given(modality=modalities, key=st.none() | st.binary(max_size=40), value=st.binary(max_size=4096),
       timestamp=record_timestamps)
def test_parse_random_bytes_raises_only_invalid_event(
    modality: Modality, key: bytes | None, value: bytes, timestamp: float | None
) -> None:
    event = parse_or_reject(modality, key, value, timestamp)

    if event is not None:
        assert_storable(event)


@FUZZ_SETTINGS
@given(modality=modalities, data=st.data())
def test_parse_hostile_documents_raises_only_invalid_event(modality: Modality, data: st.DataObject) -> None:
    record = data.draw(json_documents(modality))
    key, value = record.render()

    event = parse_or_reject(modality, key, value, 1_700_000_000.0)

    if event is not None:
        assert_storable(event)


@FUZZ_SETTINGS
@given(modality=modalities, data=st.data())
def test_parse_malformed_json_raises_only_invalid_event(modality: Modality, data: st.DataObject) -> None:
    record = data.draw(malformed_json(modality))
    key, value = record.render()

    event = parse_or_reject(modality, key, value, None)

    if event is not None:
        assert_storable(event)


@FUZZ_SETTINGS
@given(modality=modalities, data=st.data())
def test_parse_any_topic_record_raises_only_invalid_event(modality: Modality, data: st.DataObject) -> None:
    record = data.draw(hostile_records(modality))
    key, value = record.render_keyed("p-")

    event = parse_or_reject(modality, key, value, None)

    if event is not None:
        assert_storable(event)
        assert event.id.startswith("p-"), "a rendered id or key lost its prefix"
