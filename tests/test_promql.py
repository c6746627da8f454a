"""The PromQL math behind the dashboard: counter increases and histogram_quantile."""

from __future__ import annotations

import math

import pytest

from streams.promql import counter_increase, histogram_increase, histogram_quantile

INF = math.inf

# Cumulative buckets with 19 observations: 6 at or below 0, 11 at or below 0.5, 14
# at or below 1. ClickHouse documents 0.35 as PromQL's median of these buckets.
SIGNED_BUCKETS = [(0.0, 6.0), (0.5, 11.0), (1.0, 14.0), (INF, 19.0)]

# Ten observations: 4 in (0, 0.1], 4 in (0.1, 0.5], 2 in (0.5, 1].
LATENCY_BUCKETS = [(0.1, 4.0), (0.5, 8.0), (1.0, 10.0), (INF, 10.0)]


def test_quantile_interpolates_inside_bucket() -> None:
    assert histogram_quantile(0.5, SIGNED_BUCKETS) == pytest.approx(0.35)


def test_quantile_lowest_bucket_starts_at_zero() -> None:
    # Rank 2 of 4 in (0, 0.1] lies halfway.
    assert histogram_quantile(0.2, LATENCY_BUCKETS) == pytest.approx(0.05)


def test_quantile_nonpositive_lowest_bucket_returns_bound() -> None:
    assert histogram_quantile(0.1, SIGNED_BUCKETS) == 0.0


@pytest.mark.parametrize(
    ("quantile", "expected"),
    [(0.6, 0.3), (0.8, 0.5), (0.9, 0.75), (0.99, 0.975), (1.0, 1.0)],
)
def test_quantile_matches_hand_computed_values(quantile: float, expected: float) -> None:
    assert histogram_quantile(quantile, LATENCY_BUCKETS) == pytest.approx(expected)


def test_quantile_in_inf_bucket_returns_highest_finite_bound() -> None:
    buckets = [(0.1, 1.0), (0.5, 2.0), (INF, 10.0)]

    assert histogram_quantile(0.99, buckets) == 0.5


def test_quantile_sorts_and_merges_buckets() -> None:
    shuffled = [(1.0, 10.0), (INF, 10.0), (0.1, 2.0), (0.5, 8.0), (0.1, 2.0)]

    assert histogram_quantile(0.2, shuffled) == pytest.approx(0.05)


def test_quantile_forces_monotonic_counts() -> None:
    # The 0.5 bucket's 3 is below the 0.1 bucket's 4, so it counts as 4.
    buckets = [(0.1, 4.0), (0.5, 3.0), (1.0, 8.0), (INF, 8.0)]

    assert histogram_quantile(0.75, buckets) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("quantile", "buckets", "case"),
    [
        (0.5, [(0.1, 0.0), (INF, 0.0)], "no observations"),
        (0.5, [(0.1, 3.0), (1.0, 5.0)], "no +Inf bucket"),
        (0.5, [(INF, 5.0)], "fewer than two buckets"),
        (0.5, [], "no buckets"),
        (math.nan, LATENCY_BUCKETS, "NaN quantile"),
    ],
)
def test_quantile_undefined_returns_nan(quantile: float, buckets: list[tuple[float, float]], case: str) -> None:
    assert math.isnan(histogram_quantile(quantile, buckets)), case


def test_quantile_outside_zero_to_one_returns_infinity() -> None:
    assert histogram_quantile(-0.1, LATENCY_BUCKETS) == -INF
    assert histogram_quantile(1.1, LATENCY_BUCKETS) == INF


def test_counter_increase_subtracts_readings() -> None:
    assert counter_increase(10.0, 25.0) == 15.0


def test_counter_increase_after_reset_counts_whole_value() -> None:
    assert counter_increase(100.0, 7.0) == 7.0


def test_histogram_increase_subtracts_each_bucket() -> None:
    before = [(0.1, 1.0), (0.5, 2.0), (INF, 3.0)]
    after = [(0.1, 4.0), (0.5, 6.0), (INF, 9.0)]

    assert histogram_increase(before, after) == [(0.1, 3.0), (0.5, 4.0), (INF, 6.0)]


def test_histogram_increase_without_baseline_is_whole_reading() -> None:
    after = [(0.1, 4.0), (INF, 9.0)]

    assert histogram_increase([], after) == after


def test_histogram_increase_after_reset_is_later_reading() -> None:
    before = [(0.1, 50.0), (INF, 80.0)]
    after = [(0.1, 2.0), (INF, 3.0)]

    assert histogram_increase(before, after) == after
