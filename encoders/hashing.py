"""A deterministic fake encoder for flow tests: vectors derive from a hash of the input.

Equal inputs get equal vectors and different inputs get unrelated ones, so
tests of the streaming code can check routing, batching and storage without
loading a model. The vectors carry no meaning.

Fault options for tests follow the dimension as a URL query, for example
``hash:16?delay_ms=40&fail_batch_over=8&fail_on=POISON``. They act on the
forward pass, so a worker meets them on its real code path:

``delay_ms``
    Milliseconds each forward pass sleeps (on the encoder's thread), whatever
    the batch size, so that a batch stays in flight long enough to kill a worker
    or cut a connection during it.
``fail_batch_over``
    A forward pass of more inputs than this raises
    ``RuntimeError("CUDA out of memory (simulated): batch of N over LIMIT")``,
    as a model does on a GPU too small for the batch.
``fail_on``
    A forward pass raises RuntimeError if any text input of the batch contains
    this marker, as a model does for one input that breaks it. Image and audio
    inputs never match.

A pass with several options sleeps first, then checks the batch size, then the
marker. Unknown options or invalid values raise ModelLoadError. Options may
repeat in any order, and the last value of a repeated option wins.
"""

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import numpy as np
import torch
from PIL import Image

from encoders.audio_decoding import Waveform
from encoders.base import Encoder
from encoders.errors import EncoderError, ModelLoadError
from encoders.modality import Modality

logger = logging.getLogger(__name__)

NAME_PREFIX = "hash:"

# Maximum delay_ms accepted. A slow batch in a test takes a second at most, so a
# larger value is more likely seconds given as milliseconds than intended.
MAX_DELAY_MS = 60_000.0

_NAME_HINT = "use 'hash:DIM' with a positive integer DIM, for example 'hash:64'"
_OPTIONS_HINT = (
    "use delay_ms=MS, fail_batch_over=N and fail_on=MARKER, for example 'hash:16?delay_ms=40&fail_on=POISON'"
)


@dataclass(frozen=True)
class FaultOptions:
    """Failures and delays that a hash encoder's forward pass simulates for tests."""

    delay_ms: float = 0.0
    fail_batch_over: int | None = None
    fail_on: str | None = None

    @property
    def active(self) -> bool:
        return self.delay_ms > 0 or self.fail_batch_over is not None or self.fail_on is not None

    def query(self) -> str:
        """Return the options as the query part of a model name, empty when none is set."""
        values: dict[str, str] = {}
        if self.delay_ms > 0:
            values["delay_ms"] = f"{self.delay_ms:g}"
        if self.fail_batch_over is not None:
            values["fail_batch_over"] = str(self.fail_batch_over)
        if self.fail_on is not None:
            values["fail_on"] = self.fail_on
        return urlencode(values)


def parse_fault_options(model_name: str, query: str) -> FaultOptions:
    """Parse the query of a hash model name; raise ModelLoadError naming a bad option."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise ModelLoadError(f"invalid options in hash encoder name {model_name!r}: {exc}; {_OPTIONS_HINT}") from exc
    options = dict(pairs)
    unknown = sorted(set(options) - {"delay_ms", "fail_batch_over", "fail_on"})
    if unknown:
        raise ModelLoadError(f"unknown options {unknown} in hash encoder name {model_name!r}; {_OPTIONS_HINT}")

    delay_ms = 0.0
    if "delay_ms" in options:
        try:
            delay_ms = float(options["delay_ms"])
        except ValueError:
            delay_ms = -1.0
        if not 0.0 <= delay_ms <= MAX_DELAY_MS:
            raise ModelLoadError(
                f"invalid delay_ms={options['delay_ms']!r} in hash encoder name {model_name!r}: "
                f"use a number of milliseconds from 0 to {MAX_DELAY_MS:g}"
            )

    fail_batch_over = None
    if "fail_batch_over" in options:
        text = options["fail_batch_over"]
        if not text.isdigit() or int(text) <= 0:
            raise ModelLoadError(
                f"invalid fail_batch_over={text!r} in hash encoder name {model_name!r}: use a positive integer"
            )
        fail_batch_over = int(text)

    fail_on = options.get("fail_on")
    if fail_on is not None and not fail_on:
        raise ModelLoadError(f"empty fail_on in hash encoder name {model_name!r}: give the marker text")
    return FaultOptions(delay_ms, fail_batch_over, fail_on)


class HashEncoder(Encoder):
    """Fake encoder named "hash:DIM" that embeds text, images and audio on the CPU.

    Each vector is a standard normal draw seeded with the SHA-256 of the
    input's bytes, then L2-normalised. An image hashes its mode, size and
    pixels. An audio clip hashes its sample rate and float32 samples.
    ``faults`` makes the forward pass slow or failing, as the module docstring
    describes.
    """

    def __init__(self, dim: int, faults: FaultOptions | None = None) -> None:
        self.faults = faults if faults is not None else FaultOptions()
        name = f"{NAME_PREFIX}{dim}"
        if self.faults.active:
            name = f"{name}?{self.faults.query()}"
        super().__init__(
            model_name=name,
            family="hash",
            modalities=frozenset(Modality),
            dim=dim,
            device=torch.device("cpu"),
            dtype=torch.float32,
        )

    @classmethod
    def from_name(cls, model_name: str) -> "HashEncoder":
        """Build the encoder for a name such as "hash:64" or "hash:16?delay_ms=40"."""
        if not model_name.startswith(NAME_PREFIX):
            raise ModelLoadError(f"invalid hash encoder name {model_name!r}: {_NAME_HINT}")
        text, _, query = model_name.removeprefix(NAME_PREFIX).partition("?")
        if not text.isdigit() or int(text) <= 0:
            raise ModelLoadError(f"invalid hash encoder name {model_name!r}: {_NAME_HINT}")
        faults = parse_fault_options(model_name, query) if query else None
        return cls(int(text), faults)

    def _preprocess(self, modality: Modality, inputs: Sequence[object]) -> dict[str, torch.Tensor]:
        digests = [hashlib.sha256(_input_bytes(item)).digest() for item in inputs]
        rows = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), -1)
        tensors = {"digests": torch.from_numpy(rows.copy())}
        marker = self.faults.fail_on
        if marker is not None:
            # The forward pass receives only tensors, so the marked inputs travel as a mask.
            marked = [isinstance(item, str) and marker in item for item in inputs]
            tensors["marked"] = torch.tensor(marked, dtype=torch.bool)
        return tensors

    def _embed(self, modality: Modality, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        digests = tensors["digests"]
        self._simulate_faults(len(digests), tensors.get("marked"))
        vectors = [
            np.random.default_rng(int.from_bytes(bytes(row.tolist()), "big"))
            .standard_normal(self.dim)
            .astype(np.float32)
            for row in digests.cpu()
        ]
        if self.faults.active:
            logger.debug("hash forward finished model=%s batch=%d", self.model_name, len(digests))
        return torch.from_numpy(np.stack(vectors))

    def _simulate_faults(self, count: int, marked: torch.Tensor | None) -> None:
        """Sleep and raise as the fault options set, on the thread that calls forward.

        With any option set, each pass logs its start here and its end in _embed at
        DEBUG, so a test can tell from a worker's log whether a pass was in flight.
        """
        faults = self.faults
        if not faults.active:
            return
        logger.debug("hash forward started model=%s batch=%d", self.model_name, count)
        if faults.delay_ms > 0:
            # A real forward pass occupies its thread for as long, so this sleep blocks too.
            time.sleep(faults.delay_ms / 1000.0)
        if faults.fail_batch_over is not None and count > faults.fail_batch_over:
            raise RuntimeError(f"CUDA out of memory (simulated): batch of {count} over {faults.fail_batch_over}")
        if marked is not None and bool(marked.any()):
            positions = [int(position) for position in torch.nonzero(marked).flatten()]
            raise RuntimeError(
                f"simulated forward failure: inputs at batch positions {positions} contain {faults.fail_on!r}"
            )

    def _release(self) -> None:
        """Do nothing: the hash encoder has no model to free."""


def _input_bytes(item: object) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, Image.Image):
        header = f"{item.mode}:{item.size[0]}x{item.size[1]}:".encode()
        return header + item.tobytes()
    if isinstance(item, Waveform):
        header = f"{item.sample_rate}:".encode()
        return header + np.ascontiguousarray(item.samples, dtype=np.float32).tobytes()
    raise EncoderError(f"cannot hash an input of type {type(item).__name__}")
