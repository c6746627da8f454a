"""Rate-limited warnings count what they suppress."""

from streams.logs import RateLimitedLog


def test_rate_limit_suppresses_and_counts():
    now = [100.0]
    limiter = RateLimitedLog(interval_s=10, clock=lambda: now[0])
    assert limiter.allow("invalid_json") == 0
    assert limiter.allow("invalid_json") is None
    assert limiter.allow("invalid_json") is None
    assert limiter.allow("missing_id") == 0
    now[0] += 10
    assert limiter.allow("invalid_json") == 2
