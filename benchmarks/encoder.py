"""Bare encoder throughput: the forward-pass limit the pipeline is measured against."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from encoders.base import Encoder
from encoders.modality import Modality
from streams.worker import threads_per_replica


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
    figure differed by up to 25% between runs minutes apart. Interleaving spreads such
    drift over all batch sizes, and the median drops a round that hit a slow spell.
    """
    figures: dict[int, list[EncoderFigure]] = {size: [] for size in batch_sizes}
    for _ in range(rounds):
        for size in batch_sizes:
            figures[size].append(measure_encoder(encoder, modality, inputs, size, min_seconds))
    return {size: median_figure(runs) for size, runs in figures.items()}


def median_figure(figures: Sequence[EncoderFigure]) -> EncoderFigure:
    """Return the figure with the median throughput (the upper one of an even count)."""
    return sorted(figures, key=lambda figure: figure.per_second)[len(figures) // 2]


def measure_encoder_copies(
    encoders: Sequence[Encoder], modality: Modality, inputs: Sequence[object], batch_size: int,
    min_seconds: float = 2.0,
) -> EncoderFigure:
    """Encode with every copy at once, each on its own thread with an equal share of torch's threads.

    This is the limit of a worker whose space has as many replicas as ``encoders``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_replica(len(encoders)))
    try:
        with ThreadPoolExecutor(max_workers=len(encoders)) as pool:
            figures = list(pool.map(
                lambda encoder: measure_encoder(encoder, modality, inputs, batch_size, min_seconds), encoders
            ))
    finally:
        torch.set_num_threads(threads)
    return EncoderFigure(
        batch_size, sum(figure.inputs for figure in figures), max(figure.seconds for figure in figures)
    )
