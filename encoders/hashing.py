"""A deterministic fake encoder for flow tests: vectors derive from a hash of the input.

Equal inputs get equal vectors and different inputs get unrelated ones, so
tests of the streaming code can check routing, batching and storage without
loading a model. The vectors carry no meaning.
"""

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from encoders.audio_decoding import Waveform
from encoders.base import Encoder
from encoders.errors import EncoderError, ModelLoadError
from encoders.modality import Modality

NAME_PREFIX = "hash:"


class HashEncoder(Encoder):
    """Fake encoder named "hash:DIM" that embeds text, images and audio on the CPU.

    Each vector is a standard normal draw seeded with the SHA-256 of the
    input's bytes, then L2-normalised. An image hashes its mode, size and
    pixels. An audio clip hashes its sample rate and float32 samples.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(
            model_name=f"{NAME_PREFIX}{dim}",
            family="hash",
            modalities=frozenset(Modality),
            dim=dim,
            device=torch.device("cpu"),
            dtype=torch.float32,
        )

    @classmethod
    def from_name(cls, model_name: str) -> "HashEncoder":
        """Build the encoder for a name such as "hash:64"."""
        text = model_name.removeprefix(NAME_PREFIX)
        if not model_name.startswith(NAME_PREFIX) or not text.isdigit() or int(text) <= 0:
            raise ModelLoadError(
                f"invalid hash encoder name {model_name!r}: use 'hash:DIM' with a positive "
                "integer DIM, for example 'hash:64'"
            )
        return cls(int(text))

    def _preprocess(self, modality: Modality, inputs: Sequence[object]) -> dict[str, torch.Tensor]:
        digests = [hashlib.sha256(_input_bytes(item)).digest() for item in inputs]
        rows = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), -1)
        return {"digests": torch.from_numpy(rows.copy())}

    def _embed(self, modality: Modality, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        vectors = [
            np.random.default_rng(int.from_bytes(bytes(row.tolist()), "big"))
            .standard_normal(self.dim)
            .astype(np.float32)
            for row in tensors["digests"].cpu()
        ]
        return torch.from_numpy(np.stack(vectors))

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
