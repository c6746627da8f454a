"""A running embedding space: its settings, loaded encoder, index and forward-pass thread."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from encoders.base import Encoder, Prepared
from encoders.modality import Modality
from streams.errors import ConfigError
from streams.index import SpaceIndex
from streams.settings import SpaceSettings

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")


@dataclass(frozen=True, slots=True)
class EncodeResult:
    """A batch's vectors and the seconds its preprocessing and forward pass took."""

    vectors: np.ndarray
    preprocess_s: float
    forward_s: float


@dataclass
class Space:
    """One space at run time, with one thread for preprocessing and one for forward passes.

    The threads keep the event loop free while the model runs. The forward thread
    runs one forward pass of the model at a time, and the preprocessing thread
    prepares the next batch meanwhile.
    """

    settings: SpaceSettings
    encoder: Encoder
    index: SpaceIndex
    modalities: frozenset[Modality]
    preprocess_executor: ThreadPoolExecutor = field(init=False)
    forward_executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        name = self.settings.name
        self.preprocess_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"preprocess-{name}")
        self.forward_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"forward-{name}")

    @property
    def name(self) -> str:
        return self.settings.name

    async def preprocess(self, modality: Modality, contents: Sequence[object]) -> tuple[Prepared, float]:
        """Prepare a batch on the preprocessing thread; return it and the seconds taken."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.preprocess_executor, _timed, self.encoder.preprocess, modality, contents)

    async def forward(self, prepared: Prepared) -> tuple[np.ndarray, float]:
        """Run a prepared batch on the forward thread; return its vectors and the seconds taken."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.forward_executor, _timed, self.encoder.forward, prepared)

    async def encode(self, modality: Modality, contents: Sequence[object]) -> EncodeResult:
        """Preprocess, then embed ``contents``, timing both stages."""
        prepared, preprocess_s = await self.preprocess(modality, contents)
        vectors, forward_s = await self.forward(prepared)
        return EncodeResult(vectors, preprocess_s, forward_s)

    def close(self) -> None:
        """Stop the encoder threads and free the model."""
        self.preprocess_executor.shutdown(wait=True, cancel_futures=True)
        self.forward_executor.shutdown(wait=True, cancel_futures=True)
        self.encoder.close()


def _timed(function: Callable[..., ResultT], *arguments: object) -> tuple[ResultT, float]:
    started = time.perf_counter()
    result = function(*arguments)
    return result, time.perf_counter() - started


def space_modalities(settings: SpaceSettings, encoder: Encoder) -> frozenset[Modality]:
    """Return the modalities a space embeds: those configured, or all that its model maps."""
    if not settings.modalities:
        return encoder.modalities
    unsupported = set(settings.modalities) - encoder.modalities
    if unsupported:
        raise ConfigError(
            f"space {settings.name!r} lists modalities {sorted(unsupported)} that model "
            f"{settings.model!r} ({encoder.family}) cannot embed; it maps "
            f"{sorted(encoder.modalities)}"
        )
    return frozenset(settings.modalities)
