"""Validation of input records: every rejection reason and the accepted shapes."""

import base64
import os

import orjson
import pytest

from encoders.modality import Modality
from streams.events import EventLimits, InvalidEvent, SourcePosition, parse_record
from streams.settings import ENV_PREFIX, Settings

POSITION = SourcePosition("embed.text", 2, 41)
LIMITS = EventLimits(
    max_record_bytes=1000,
    max_text_chars=50,
    max_metadata_fields=3,
    max_id_chars=20,
    max_metadata_bytes=60,
    max_metadata_key_chars=8,
)


def parse(value: bytes, modality: Modality = Modality.TEXT, key: bytes | None = None):
    return parse_record(modality, key, value, POSITION, 1_700_000_000.0, LIMITS)


def reason_of(value: bytes, modality: Modality = Modality.TEXT, key: bytes | None = None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse(value, modality, key)
    return caught.value.reason


def test_parse_text_event_with_metadata_and_ts():
    event = parse(b'{"id": "a1", "text": "hello", "metadata": {"source": "x", "n": 2}, "ts": 1700000123.5}')
    assert event.id == "a1"
    assert event.payload == "hello"
    assert event.metadata == {"source": "x", "n": 2}
    assert event.event_time == 1700000123.5
    assert event.position == POSITION


def test_parse_ts_in_milliseconds():
    assert parse(b'{"id": "a", "text": "t", "ts": 1700000123500}').event_time == 1700000123.5


def test_parse_defaults_to_record_timestamp():
    assert parse(b'{"id": "a", "text": "t"}').event_time == 1_700_000_000.0


def test_parse_image_json_and_raw():
    png = b"\x89PNG\r\n\x1a\n rest"
    document = orjson.dumps({"id": "img", "data": base64.b64encode(png).decode()})
    assert parse(document, Modality.IMAGE).payload == png
    raw = parse(png, Modality.IMAGE, key=b"photo-1")
    assert raw.id == "photo-1"
    assert raw.payload == png


@pytest.mark.parametrize(
    ("value", "modality", "key", "reason"),
    [
        (b"", Modality.TEXT, None, "empty_record"),
        (b"x" * 1001, Modality.TEXT, None, "record_too_large"),
        (b"{not json", Modality.TEXT, None, "invalid_json"),
        (b"plain words", Modality.TEXT, None, "invalid_json"),
        (b"[1, 2]", Modality.TEXT, None, "not_an_object"),
        (b'{"text": "no id"}', Modality.TEXT, None, "missing_id"),
        (b'{"id": 5, "text": "numeric id"}', Modality.TEXT, None, "invalid_id"),
        (b'{"id": "  ", "text": "blank id"}', Modality.TEXT, None, "invalid_id"),
        (b'{"id": "' + b"i" * 21 + b'", "text": "long id"}', Modality.TEXT, None, "invalid_id"),
        (b'{"id": "a"}', Modality.TEXT, None, "missing_payload"),
        (b'{"id": "a", "text": 3}', Modality.TEXT, None, "invalid_payload"),
        (b'{"id": "a", "text": "   "}', Modality.TEXT, None, "empty_text"),
        (b'{"id": "a", "text": "' + b"w" * 51 + b'"}', Modality.TEXT, None, "text_too_long"),
        (b'{"id": "a", "text": "t", "metadata": [1]}', Modality.TEXT, None, "invalid_metadata"),
        (b'{"id": "a", "text": "t", "metadata": {"a": {"b": 1}}}', Modality.TEXT, None, "invalid_metadata"),
        (b'{"id": "a", "text": "t", "metadata": {"a": true}}', Modality.TEXT, None, "invalid_metadata"),
        (b'{"id": "a", "text": "t", "metadata": {"a": 1, "b": 2, "c": 3, "d": 4}}', Modality.TEXT, None,
         "invalid_metadata"),
        (b'{"id": "a", "text": "t", "metadata": {"k": "' + b"v" * 60 + b'"}}', Modality.TEXT, None,
         "invalid_metadata"),
        (b'{"id": "a", "text": "t", "metadata": {"' + b"k" * 9 + b'": 1}}', Modality.TEXT, None, "invalid_metadata"),
        (b'{"id": "a", "text": "t", "metadata": {"n": 1e400}}', Modality.TEXT, None, "invalid_json"),
        (b'{"id": "a", "text": "t", "ts": "yesterday"}', Modality.TEXT, None, "invalid_timestamp"),
        (b'{"id": "a", "text": "t", "ts": NaN}', Modality.TEXT, None, "invalid_json"),
        (b'{"id": "a", "text": "t", "ts": -1e400}', Modality.TEXT, None, "invalid_json"),
        (b'{"id": "a", "text": "t", "ts": -5}', Modality.TEXT, None, "invalid_timestamp"),
        (b'{"id": "a", "data": "%%%not base64"}', Modality.IMAGE, None, "invalid_base64"),
        (b'{"id": "a", "data": 12}', Modality.IMAGE, None, "invalid_payload"),
        (b'{"id": "a"}', Modality.AUDIO, None, "missing_payload"),
        (b"RIFF....WAVE", Modality.AUDIO, None, "missing_id"),
        (b"RIFF....WAVE", Modality.AUDIO, b"\xff\xfe", "invalid_id"),
    ],
)
def test_parse_rejects_with_reason(value, modality, key, reason):
    assert reason_of(value, modality, key) == reason


def test_rejection_keeps_event_id():
    with pytest.raises(InvalidEvent) as caught:
        parse(b'{"id": "keep-me", "text": ""}')
    assert caught.value.event_id == "keep-me"
    assert caught.value.reason == "empty_text"


def test_metadata_at_limits_accepted():
    # {"kkkkkkkk":"v...v"} with a 45-character value is 60 bytes of compact JSON.
    metadata = {"k" * 8: "v" * 45}
    assert len(orjson.dumps(metadata)) == LIMITS.max_metadata_bytes

    event = parse(orjson.dumps({"id": "a", "text": "t", "metadata": metadata}))

    assert event.metadata == metadata


def test_metadata_size_detail_names_limit():
    with pytest.raises(InvalidEvent) as caught:
        parse(b'{"id": "a", "text": "t", "metadata": {"k": "' + b"v" * 60 + b'"}}')

    assert "68 bytes" in caught.value.detail
    assert "60" in caught.value.detail


def test_metadata_huge_numbers_stay_finite():
    event = parse(b'{"id": "a", "text": "t", "metadata": {"big": 18446744073709551616, "max": 1.7e308}}')

    assert event.metadata == {"big": 18446744073709551616.0, "max": 1.7e308}


def test_limits_from_settings_copy_each_field():
    settings = Settings(
        max_record_bytes=11, max_text_chars=12, max_metadata_fields=13, max_id_chars=14,
        max_metadata_bytes=15, max_metadata_key_chars=16, text_over_window="reject",
    )

    limits = EventLimits.from_settings(settings)

    assert limits == EventLimits(11, 12, 13, 14, 15, 16, "reject")


def test_limits_default_to_settings_defaults(monkeypatch):
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)

    assert EventLimits() == EventLimits.from_settings(Settings())
