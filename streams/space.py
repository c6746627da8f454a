"""A running embedding space: its settings, model replicas, index and encoder threads."""

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


@dataclass(frozen=True, slots=True)
class Replica:
    """One copy of a space's model with its own forward-pass thread."""

    encoder: Encoder
    executor: ThreadPoolExecutor

    async def forward(self, prepared: Prepared) -> tuple[np.ndarray, float]:
        """Run a prepared batch on this copy's thread; return its vectors and the seconds taken."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, _timed, self.encoder.forward, prepared)


@dataclass
class Space:
    """One space at run time: a preprocessing thread and one or more model replicas.

    The threads keep the event loop free while the models run. Each replica runs
    one forward pass at a time on its own thread. Meanwhile the preprocessing
    thread prepares the next batch with the first replica's tokenizer or
    processor, because its output fits every replica.
    """

    settings: SpaceSettings
    encoders: Sequence[Encoder]
    index: SpaceIndex
    modalities: frozenset[Modality]
    preprocess_executor: ThreadPoolExecutor = field(init=False)
    replicas: list[Replica] = field(init=False)
    _free: asyncio.Queue[Replica] = field(init=False)

    def __post_init__(self) -> None:
        if not self.encoders:
            raise ValueError(f"space {self.settings.name!r} needs at least one encoder")
        name = self.settings.name
        self.preprocess_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"preprocess-{name}")
        self.replicas = [
            Replica(encoder, ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"forward-{name}-{number}"))
            for number, encoder in enumerate(self.encoders)
        ]
        self._free = asyncio.Queue()
        for replica in self.replicas:
            self._free.put_nowait(replica)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def encoder(self) -> Encoder:
        """The first replica's encoder, which preprocesses and counts tokens for all of them."""
        return self.encoders[0]

    async def preprocess(self, modality: Modality, contents: Sequence[object]) -> tuple[Prepared, float]:
        """Prepare a batch on the preprocessing thread; return it and the seconds taken."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.preprocess_executor, _timed, self.encoder.preprocess, modality, contents)

    async def reserve(self) -> Replica:
        """Wait for a replica with no forward pass running and take it; give it back with :meth:`release`."""
        return await self._free.get()

    def release(self, replica: Replica) -> None:
        """Give back a replica taken with :meth:`reserve`."""
        self._free.put_nowait(replica)

    async def forward(self, prepared: Prepared) -> tuple[np.ndarray, float]:
        """Run a prepared batch on the next free replica; return its vectors and the seconds taken."""
        replica = await self.reserve()
        try:
            return await replica.forward(prepared)
        finally:
            self.release(replica)

    async def encode(self, modality: Modality, contents: Sequence[object]) -> EncodeResult:
        """Preprocess, then embed ``contents``, timing both stages."""
        prepared, preprocess_s = await self.preprocess(modality, contents)
        vectors, forward_s = await self.forward(prepared)
        return EncodeResult(vectors, preprocess_s, forward_s)

    def close(self) -> None:
        """Stop the encoder threads and free the models."""
        self.preprocess_executor.shutdown(wait=True, cancel_futures=True)
        for replica in self.replicas:
            replica.executor.shutdown(wait=True, cancel_futures=True)
            replica.encoder.close()


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
