"""Input events: the JSON schema producers publish, and its validation.

An input record is a JSON object ``{"id": str, "text" | "data": ..., "metadata": {...},
"ts": number}``. Image and audio topics also take raw media bytes as the record value
with the id in the record key. Every way a record can be unusable raises
``InvalidEvent`` with a stable reason code, which becomes a dead-letter record.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from dataclasses import dataclass, field
from typing import Any, Self

import orjson

from encoders.modality import Modality
from streams.settings import Settings, TextOverWindow

MetadataValue = str | int | float

# Leading bytes of a JSON object, after optional whitespace. Media formats never
# start with "{" (JPEG FF D8, PNG 89 50, WAV "RIFF", FLAC "fLaC", Ogg "OggS").
_JSON_START = b"{"
_WHITESPACE = b" \t\r\n"

# Timestamps beyond this are taken for milliseconds, not seconds: 1e11 s is the
# year 5138, while 1e11 ms is 1973.
_MILLISECONDS_THRESHOLD = 1e11

# Maximum metadata value stored, in characters. The TAG index and match events carry
# every value, so a bound keeps both small.
MAX_METADATA_VALUE_CHARS = 1024


class InvalidEvent(ValueError):
    """A record that cannot become an embedding; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str, event_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.event_id = event_id


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """A record's position: topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def _setting_default(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Bounds checked before any payload is decoded, and what to do with text past a token window.

    Each field defaults to the Settings field of the same name.
    """

    max_record_bytes: int = _setting_default("max_record_bytes")
    max_text_chars: int = _setting_default("max_text_chars")
    max_metadata_fields: int = _setting_default("max_metadata_fields")
    max_id_chars: int = _setting_default("max_id_chars")
    max_metadata_bytes: int = _setting_default("max_metadata_bytes")
    max_metadata_key_chars: int = _setting_default("max_metadata_key_chars")
    # Admission applies this per space after decoding, because each encoder has a window of its own.
    # RUF009 cannot tell that the Literal alias is an immutable str.
    text_over_window: TextOverWindow = _setting_default("text_over_window")  # noqa: RUF009

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Return the limits that ``settings`` configure."""
        return cls(
            max_record_bytes=settings.max_record_bytes,
            max_text_chars=settings.max_text_chars,
            max_metadata_fields=settings.max_metadata_fields,
            max_id_chars=settings.max_id_chars,
            max_metadata_bytes=settings.max_metadata_bytes,
            max_metadata_key_chars=settings.max_metadata_key_chars,
            text_over_window=settings.text_over_window,
        )


@dataclass(slots=True)
class InputEvent:
    """A validated input event; ``payload`` is text or undecoded media bytes."""

    id: str
    modality: Modality
    payload: str | bytes
    position: SourcePosition
    event_time: float
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


def parse_record(
    modality: Modality,
    key: bytes | None,
    value: bytes | None,
    position: SourcePosition,
    record_timestamp_s: float | None,
    limits: EventLimits,
) -> InputEvent:
    """Validate one input record and return its event; raise InvalidEvent if unusable."""
    if not value:
        raise InvalidEvent("empty_record", f"record at {position} has no value")
    if len(value) > limits.max_record_bytes:
        raise InvalidEvent(
            "record_too_large",
            f"record at {position} is {len(value)} bytes, over the limit of "
            f"{limits.max_record_bytes} bytes",
        )
    default_time = record_timestamp_s if record_timestamp_s is not None else time.time()

    if modality is not Modality.TEXT and not _looks_like_json(value):
        event_id = _parse_key_id(key, position, limits)
        return InputEvent(event_id, modality, value, position, default_time)

    document = _parse_json_object(value, position)
    event_id = _parse_id(document.get("id"), position, limits)
    try:
        payload = _parse_payload(modality, document, limits)
        metadata = _parse_metadata(document.get("metadata"), limits)
        event_time = _parse_timestamp(document.get("ts"), default_time)
    except InvalidEvent as exc:
        exc.event_id = event_id
        raise
    return InputEvent(event_id, modality, payload, position, event_time, metadata)


def _looks_like_json(value: bytes) -> bool:
    return value.lstrip(_WHITESPACE)[:1] == _JSON_START


def _parse_json_object(value: bytes, position: SourcePosition) -> dict[str, object]:
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", f"record at {position} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidEvent(
            "not_an_object",
            f"record at {position} is JSON {type(document).__name__}, expected an object",
        )
    return document


def _parse_id(raw: object, position: SourcePosition, limits: EventLimits) -> str:
    if raw is None:
        raise InvalidEvent("missing_id", f"record at {position} has no \"id\" field")
    if not isinstance(raw, str):
        raise InvalidEvent(
            "invalid_id",
            f"record at {position} has an \"id\" of type {type(raw).__name__}, expected a string",
        )
    return _check_id(raw, position, limits)


def _parse_key_id(key: bytes | None, position: SourcePosition, limits: EventLimits) -> str:
    if not key:
        raise InvalidEvent(
            "missing_id",
            f"binary record at {position} has no key; raw media records carry the id in the key",
        )
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("invalid_id", f"record key at {position} is not UTF-8: {exc}") from exc
    return _check_id(text, position, limits)


def _check_id(event_id: str, position: SourcePosition, limits: EventLimits) -> str:
    if not event_id.strip():
        raise InvalidEvent("invalid_id", f"record at {position} has an empty id")
    if len(event_id) > limits.max_id_chars:
        raise InvalidEvent(
            "invalid_id",
            f"record at {position} has an id of {len(event_id)} characters, over the limit of "
            f"{limits.max_id_chars}",
        )
    # RediSearch 2.10.5, the module of the embedded stack, returns a hit whose key contains
    # NUL without its fields, so such an item could be stored but never read back from a search.
    if "\x00" in event_id:
        raise InvalidEvent("invalid_id", f"record at {position} has a NUL character in its id")
    return event_id


def _parse_payload(
    modality: Modality, document: dict[str, object], limits: EventLimits
) -> str | bytes:
    if modality is Modality.TEXT:
        text = document.get("text")
        if text is None:
            raise InvalidEvent("missing_payload", "text event has no \"text\" field")
        if not isinstance(text, str):
            raise InvalidEvent(
                "invalid_payload", f"\"text\" is {type(text).__name__}, expected a string"
            )
        if not text.strip():
            raise InvalidEvent("empty_text", "\"text\" is empty or only whitespace")
        if len(text) > limits.max_text_chars:
            raise InvalidEvent(
                "text_too_long",
                f"\"text\" has {len(text)} characters, over the limit of {limits.max_text_chars}",
            )
        return text

    data = document.get("data")
    if data is None:
        raise InvalidEvent("missing_payload", f"{modality} event has no \"data\" field")
    if not isinstance(data, str):
        raise InvalidEvent(
            "invalid_payload", f"\"data\" is {type(data).__name__}, expected a base64 string"
        )
    # The decoded size needs no check of its own: base64 is 4/3 of it, and the
    # whole record already passed the record size limit.
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent("invalid_base64", f"\"data\" is not valid base64: {exc}") from exc
    if not decoded:
        raise InvalidEvent("missing_payload", f"{modality} event has an empty \"data\" field")
    return decoded


def _parse_metadata(raw: object, limits: EventLimits) -> dict[str, MetadataValue]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidEvent(
            "invalid_metadata", f"\"metadata\" is {type(raw).__name__}, expected an object"
        )
    if len(raw) > limits.max_metadata_fields:
        raise InvalidEvent(
            "invalid_metadata",
            f"\"metadata\" has {len(raw)} fields, over the limit of {limits.max_metadata_fields}",
        )
    metadata: dict[str, MetadataValue] = {}
    for name, value in raw.items():
        if len(name) > limits.max_metadata_key_chars:
            raise InvalidEvent(
                "invalid_metadata",
                f"metadata key starting {name[:40]!r} has {len(name)} characters, over the limit of "
                f"{limits.max_metadata_key_chars}",
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidEvent(
                "invalid_metadata",
                f"metadata field {name!r} is {type(value).__name__}, expected a string or number",
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent("invalid_metadata", f"metadata field {name!r} is not finite")
        if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidEvent(
                "invalid_metadata",
                f"metadata field {name!r} has {len(value)} characters, over the limit of "
                f"{MAX_METADATA_VALUE_CHARS}",
            )
        metadata[name] = value

    # The size counts as the metadata is stored: the JSON blob in Redis and the
    # object in each match event.
    size = len(orjson.dumps(metadata))
    if size > limits.max_metadata_bytes:
        raise InvalidEvent(
            "invalid_metadata",
            f"\"metadata\" is {size} bytes as JSON, over the limit of {limits.max_metadata_bytes}",
        )
    return metadata


def _parse_timestamp(raw: object, default: float) -> float:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidEvent(
            "invalid_timestamp", f"\"ts\" is {raw!r}, expected seconds since the Unix epoch"
        )
    seconds = raw / 1000.0 if raw > _MILLISECONDS_THRESHOLD else float(raw)
    if seconds < 0:
        raise InvalidEvent("invalid_timestamp", f"\"ts\" is {raw!r}, before the Unix epoch")
    return seconds
