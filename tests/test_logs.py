"""Log formats and rate-limited warnings."""

import logging
import sys

import orjson

from streams.logs import JsonFormatter, RateLimitedLog


def test_rate_limit_suppresses_and_counts():
    now = [100.0]
    limiter = RateLimitedLog(interval_s=10, clock=lambda: now[0])
    assert limiter.allow("invalid_json") == 0
    assert limiter.allow("invalid_json") is None
    assert limiter.allow("invalid_json") is None
    assert limiter.allow("missing_id") == 0
    now[0] += 10
    assert limiter.allow("invalid_json") == 2


def test_json_format_one_object_per_line():
    record = logging.LogRecord(
        "streams.lane", logging.WARNING, __file__, 1, "batch failed lane=%s", ("text/text",), None
    )
    record.event_id = "e-1"
    line = JsonFormatter().format(record)
    document = orjson.loads(line)
    assert "\n" not in line
    assert document["level"] == "WARNING"
    assert document["logger"] == "streams.lane"
    assert document["message"] == "batch failed lane=text/text"
    assert document["event_id"] == "e-1"
    assert document["time"].endswith("Z")


def test_json_format_includes_exception():
    try:
        raise ValueError("broken input")
    except ValueError:
        record = logging.LogRecord("streams", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    document = orjson.loads(JsonFormatter().format(record))
    assert "ValueError: broken input" in document["error"]


def test_repeat_filter_holds_back_repeats():
    from streams.logs import RepeatFilter

    repeats = RepeatFilter(interval_s=60)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, message, ("127.0.0.1:9",), None)

    assert repeats.filter(record('Unable connect to "%s"'))
    assert not repeats.filter(record('Unable connect to "%s"'))
    assert repeats.filter(record("another message %s"))
