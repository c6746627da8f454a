"""The encoder interface: preprocessing on the CPU, then a batched forward pass on the device."""

import copy
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import PreTrainedTokenizerBase

from encoders.audio_decoding import Waveform
from encoders.errors import EncoderError
from encoders.modality import Modality
from encoders.tokenizing import TokenCount, TokenCounter, count_tokens

logger = logging.getLogger(__name__)

_INPUT_TYPES: dict[Modality, type] = {
    Modality.TEXT: str,
    Modality.IMAGE: Image.Image,
    Modality.AUDIO: Waveform,
}


@dataclass(frozen=True)
class Prepared:
    """A preprocessed batch of `count` inputs of one modality, as CPU tensors."""

    modality: Modality
    count: int
    tensors: dict[str, torch.Tensor]


class Encoder(ABC):
    """A model that turns batches of inputs into L2-normalised float32 vectors.

    Threading: `preprocess` and `forward` may run in different threads, so the
    CPU can prepare batch N+1 while the device runs batch N. Calls to
    `preprocess` on one encoder are serialised by a lock, because a Hugging Face
    fast tokenizer raises "Already borrowed" when two threads call one instance
    at once. One encoder must not run two forwards concurrently, so a second
    concurrent `forward` raises EncoderError; run forwards through one
    single-thread executor per encoder.
    """

    def __init__(
        self,
        *,
        model_name: str,
        family: str,
        modalities: frozenset[Modality],
        dim: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.model_name = model_name
        self.family = family
        self.modalities = modalities
        self.dim = dim
        self.device = device
        self.dtype = dtype
        self._preprocess_lock = threading.Lock()
        self._forward_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model_name={self.model_name!r}, dim={self.dim}, "
            f"device={self.device}, dtype={self.dtype})"
        )

    def preprocess(self, modality: Modality, inputs: Sequence[object]) -> Prepared:
        """Turn raw inputs into model tensors on the CPU.

        Inputs are str for text, PIL images for image and Waveform for audio.
        Texts are truncated to the model's window and audio is resampled to the
        model's sampling rate.
        """
        modality = self._check_usable(modality)
        if not inputs:
            raise EncoderError(f"empty {modality} batch for {self.model_name}: pass at least one input")

        expected = _INPUT_TYPES[modality]
        for index, item in enumerate(inputs):
            if not isinstance(item, expected):
                raise EncoderError(
                    f"{modality} input at index {index} is a {type(item).__name__}, expected {expected.__name__}"
                )

        with self._preprocess_lock:
            tensors = self._preprocess(modality, inputs)
        return Prepared(modality=modality, count=len(inputs), tensors=tensors)

    def count_text_tokens(self, text: str) -> TokenCount | None:
        """Count the tokens of `text` against the model's text window; None if the model has no window.

        Takes the preprocessing lock, because the tokenizer is the one `preprocess` uses.
        """
        if Modality.TEXT not in self.modalities:
            return None
        with self._preprocess_lock:
            return self._count_text_tokens(text)

    def forward(self, prepared: Prepared) -> np.ndarray:
        """Run the model on a prepared batch and return float32 unit vectors, shape [count, dim]."""
        self._check_usable(prepared.modality)
        if not self._forward_lock.acquire(blocking=False):
            raise EncoderError(
                f"concurrent forward on {self.model_name}: one encoder runs one batch at a time, "
                "so submit forwards through a single-thread executor"
            )
        try:
            started = time.perf_counter()
            tensors = {name: self._to_device(tensor) for name, tensor in prepared.tensors.items()}
            with torch.inference_mode():
                features = self._embed(prepared.modality, tensors)
                # Normalising in float32 avoids float16 overflow in the squared norm.
                vectors = F.normalize(features.float(), dim=-1).cpu().numpy()
        finally:
            self._forward_lock.release()

        if vectors.shape != (prepared.count, self.dim):
            raise EncoderError(
                f"{self.model_name} returned vectors of shape {vectors.shape} for a "
                f"{prepared.modality} batch of {prepared.count}, expected ({prepared.count}, {self.dim})"
            )
        logger.debug(
            "forward model=%s modality=%s batch=%d seconds=%.4f",
            self.model_name,
            prepared.modality,
            prepared.count,
            time.perf_counter() - started,
        )
        return vectors

    def encode(self, modality: Modality, inputs: Sequence[object]) -> np.ndarray:
        """Preprocess and run one batch: float32 unit vectors, shape [len(inputs), dim]."""
        return self.forward(self.preprocess(modality, inputs))

    def close(self) -> None:
        """Free the model, and the CUDA cache when it ran on CUDA. Later calls raise EncoderError."""
        if self._closed:
            return
        self._closed = True
        self._release()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        logger.info("closed encoder model=%s family=%s", self.model_name, self.family)

    @abstractmethod
    def _preprocess(self, modality: Modality, inputs: Sequence[object]) -> dict[str, torch.Tensor]:
        """Build CPU tensors for a non-empty batch whose input types are already checked."""

    def _text_tokenizer(self) -> tuple[PreTrainedTokenizerBase, int] | None:
        """Return the tokenizer and the token window of text input; encoders that never truncate text return None."""
        return None

    def _count_text_tokens(self, text: str) -> TokenCount | None:
        tokenizer = self._text_tokenizer()
        if tokenizer is None:
            return None
        return count_tokens(tokenizer[0], text, tokenizer[1])

    def token_counter(self) -> TokenCounter | None:
        """Return a counter of text tokens with a copy of the tokenizer, for one thread's own use.

        It needs no lock, so the event loop can count a short text in place instead of
        waiting for `count_text_tokens` behind a batch's preprocessing. None if the model
        has no text window.
        """
        tokenizer = self._text_tokenizer()
        if Modality.TEXT not in self.modalities or tokenizer is None:
            return None
        return TokenCounter(copy.deepcopy(tokenizer[0]), tokenizer[1])

    @abstractmethod
    def _embed(self, modality: Modality, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run the model on tensors already on the device: unnormalised features [n, dim]."""

    @abstractmethod
    def _release(self) -> None:
        """Drop references to the model so that its memory can be freed."""

    def _check_usable(self, modality: Modality) -> Modality:
        if self._closed:
            raise EncoderError(f"encoder for {self.model_name} is closed: load a new one")
        try:
            # Accept the plain strings as well, since Modality is a StrEnum.
            modality = Modality(modality)
        except ValueError as exc:
            raise EncoderError(f"unknown modality {modality!r}: use one of {', '.join(Modality)}") from exc
        if modality not in self.modalities:
            supported = ", ".join(sorted(self.modalities))
            raise EncoderError(
                f"{self.family} model {self.model_name} does not embed {modality} (it embeds {supported})"
            )
        return modality

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        # NOTE: the CUDA branch (pinned memory, non_blocking, float16 inputs) has not
        # run on a GPU yet, because the test machines have none.
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            # Pinned host memory lets the copy run asynchronously with non_blocking.
            tensor = tensor.pin_memory()
        dtype = self.dtype if tensor.is_floating_point() else tensor.dtype
        return tensor.to(self.device, dtype=dtype, non_blocking=on_cuda)
