"""PromQL's counter increase and histogram_quantile, applied to two scrapes of one worker.

The dashboard and ``embedstream top`` compute their figures from the worker's own
metrics with the functions that a Prometheus server applies to the same series. A
figure here matches its Grafana panel except for Prometheus' extrapolation of rates
to the window edges, which these functions leave out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# A cumulative bucket: (upper bound, observations at or below it).
Bucket = tuple[float, float]


def counter_increase(before: float, after: float) -> float:
    """Return how much a counter grew between two readings.

    A reading below the earlier one means the counter was reset (the worker
    restarted), so, as Prometheus' ``increase`` does, the whole later value counts
    as growth since the reset.
    """
    return after - before if after >= before else after


def histogram_increase(before: Iterable[Bucket], after: Iterable[Bucket]) -> list[Bucket]:
    """Return the observations per cumulative bucket added between two readings.

    Buckets missing from ``before`` count as empty, because a labelled histogram
    appears on its first observation. A smaller total (+Inf bucket) in ``after``
    means a reset, and then ``after`` is the increase.
    """
    earlier = dict(before)
    later = sorted(after)
    if later and earlier and later[-1][1] < earlier.get(math.inf, 0.0):
        return later
    return [(bound, max(0.0, count - earlier.get(bound, 0.0))) for bound, count in later]


def histogram_quantile(quantile: float, buckets: Iterable[Bucket]) -> float:
    """Estimate a quantile from cumulative buckets as PromQL's histogram_quantile does.

    The rules follow ``bucketQuantile`` in Prometheus' promql/quantile.go: values are
    spread linearly inside the bucket holding the quantile's rank, and the lowest
    bucket starts at 0 unless its upper bound is 0 or below, in which case that bound
    is returned. A rank in the +Inf bucket returns the highest finite bound. The
    result is NaN without observations, without a +Inf bucket or with fewer than two
    buckets. It is -Inf for a quantile below 0 and +Inf for one above 1.
    """
    if math.isnan(quantile):
        return math.nan
    if quantile < 0:
        return -math.inf
    if quantile > 1:
        return math.inf

    merged = _monotonic(_merge_equal_bounds(sorted(buckets)))
    if len(merged) < 2 or merged[-1][0] != math.inf:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan

    rank = quantile * observations
    # The search leaves out the +Inf bucket, so an index past the finite ones means
    # the rank lies above every finite bound.
    index = next((i for i, (_, count) in enumerate(merged[:-1]) if count >= rank), len(merged) - 1)
    if index == len(merged) - 1:
        return merged[-2][0]
    upper, count = merged[index]
    if index == 0:
        if upper <= 0:
            return upper
        return upper * rank / count
    lower, below = merged[index - 1]
    return lower + (upper - lower) * (rank - below) / (count - below)


def _merge_equal_bounds(buckets: list[Bucket]) -> list[Bucket]:
    """Sum the counts of buckets that share an upper bound (sorted input)."""
    merged: list[Bucket] = []
    for bound, count in buckets:
        if merged and merged[-1][0] == bound:
            merged[-1] = (bound, merged[-1][1] + count)
        else:
            merged.append((bound, count))
    return merged


def _monotonic(buckets: list[Bucket]) -> list[Bucket]:
    """Raise each count to at least the count of the bucket below.

    Counts from one reading never fall as the bound grows, but the quantile search
    depends on that order, so inputs that break it are corrected the way Prometheus'
    ``ensureMonotonic`` does.
    """
    highest = -math.inf
    result: list[Bucket] = []
    for bound, count in buckets:
        highest = max(highest, count)
        result.append((bound, highest))
    return result
