"""A running embedding space: its settings, loaded encoder, index and forward-pass thread."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from encoders.base import Encoder
from encoders.modality import Modality
from streams.errors import ConfigError
from streams.index import SpaceIndex
from streams.settings import SpaceSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EncodeResult:
    """A batch's vectors and the seconds its preprocessing and forward pass took."""

    vectors: np.ndarray
    preprocess_s: float
    forward_s: float


@dataclass
class Space:
    """One space at run time; its encoder runs on a single thread of its own.

    One thread per encoder keeps the event loop free while the model runs, and
    never runs two forward passes of one model at once.
    """

    settings: SpaceSettings
    encoder: Encoder
    index: SpaceIndex
    modalities: frozenset[Modality]
    executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"encoder-{self.settings.name}"
        )

    @property
    def name(self) -> str:
        return self.settings.name

    async def encode(self, modality: Modality, contents: Sequence[object]) -> EncodeResult:
        """Preprocess and embed ``contents`` on the encoder's thread, timing both stages."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._encode_timed, modality, contents)

    def _encode_timed(self, modality: Modality, contents: Sequence[object]) -> EncodeResult:
        started = time.perf_counter()
        prepared = self.encoder.preprocess(modality, contents)
        preprocessed = time.perf_counter()
        vectors = self.encoder.forward(prepared)
        return EncodeResult(vectors, preprocessed - started, time.perf_counter() - preprocessed)

    def close(self) -> None:
        """Stop the encoder thread and free the model."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.encoder.close()


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
