"""Bare encoder throughput: the forward-pass limit the pipeline is measured against."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from encoders.base import Encoder
from encoders.modality import Modality


@dataclass(frozen=True)
class EncoderFigure:
    """Inputs per second of preprocess + forward at one batch size."""

    batch_size: int
    inputs: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.inputs / self.seconds


def measure_encoder(
    encoder: Encoder, modality: Modality, inputs: Sequence[object], batch_size: int, min_seconds: float = 3.0
) -> EncoderFigure:
    """Encode ``inputs`` in batches of ``batch_size`` for at least ``min_seconds``, after one warm-up batch."""
    encoder.encode(modality, list(inputs[:batch_size]))
    done = 0
    started = time.perf_counter()
    while True:
        start = done % max(1, len(inputs) - batch_size)
        encoder.encode(modality, list(inputs[start : start + batch_size]))
        done += batch_size
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return EncoderFigure(batch_size, done, elapsed)


def measure_encoder_rounds(
    encoder: Encoder, modality: Modality, inputs: Sequence[object], batch_sizes: Sequence[int], rounds: int = 3,
    min_seconds: float = 2.0,
) -> dict[int, EncoderFigure]:
    """Measure every batch size ``rounds`` times, interleaved, and return each one's median round.

    On the shared 2-core machine the benchmarks were written on, one batch size's
    figure differed by up to 15% between runs minutes apart. Interleaving spreads such
    drift over all batch sizes, and the median drops a round that hit a slow spell.
    """
    figures: dict[int, list[EncoderFigure]] = {size: [] for size in batch_sizes}
    for _ in range(rounds):
        for size in batch_sizes:
            figures[size].append(measure_encoder(encoder, modality, inputs, size, min_seconds))
    return {
        size: sorted(runs, key=lambda figure: figure.per_second)[len(runs) // 2] for size, runs in figures.items()
    }
