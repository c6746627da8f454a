"""Sentence embeddings from a transformer encoder: mean pooling over the attention mask."""

import json
from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils.hub import cached_file

from encoders.base import Encoder
from encoders.errors import EncoderError
from encoders.modality import Modality
from encoders.pretrained import config_int, load_weights
from encoders.tokenizing import text_window, tokenize

# sentence-transformers stores the window the model was trained with in this file.
# Its max_seq_length is often shorter than max_position_embeddings (256 against
# 512 for all-MiniLM-L6-v2).
_SENTENCE_CONFIG_FILE = "sentence_bert_config.json"

# Mean pooling reads only the token states, so a checkpoint without the
# BERT-style pooler head still loads.
_UNUSED_PREFIXES = ("pooler.",)


class SentenceEncoder(Encoder):
    """Text encoder in the sentence-transformers style.

    The vector is the mean of the last hidden states over the real tokens,
    L2-normalised, as sentence-transformers/all-MiniLM-L6-v2 computes it.
    """

    def __init__(
        self,
        *,
        model_name: str,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_seq_length: int | None,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        config = model.config
        super().__init__(
            model_name=model_name,
            family="sentence",
            modalities=frozenset({Modality.TEXT}),
            dim=config_int(config, "hidden_size"),
            device=device,
            dtype=dtype,
        )
        self._model: PreTrainedModel | None = model
        self._tokenizer = tokenizer
        self._max_tokens = text_window(tokenizer, max_seq_length, getattr(config, "max_position_embeddings", None))
        self._input_names = tuple(tokenizer.model_input_names)

    @classmethod
    def load(
        cls,
        model_name: str,
        *,
        config: PreTrainedConfig,
        device: torch.device,
        dtype: torch.dtype,
        hub_options: dict[str, Any],
    ) -> "SentenceEncoder":
        """Load the model, its tokenizer and the sentence-transformers window, if any."""
        model = load_weights(
            AutoModel,
            model_name,
            config=config,
            device=device,
            dtype=dtype,
            hub_options=hub_options,
            optional_prefixes=_UNUSED_PREFIXES,
        )
        tokenizer = AutoTokenizer.from_pretrained(model_name, **hub_options)
        return cls(
            model_name=model_name,
            model=model,
            tokenizer=tokenizer,
            max_seq_length=_read_max_seq_length(model_name, hub_options),
            device=device,
            dtype=dtype,
        )

    def _preprocess(self, modality: Modality, inputs: Sequence[object]) -> dict[str, torch.Tensor]:
        return tokenize(self._tokenizer, inputs, self._max_tokens, self._input_names)

    def _text_tokenizer(self) -> tuple[PreTrainedTokenizerBase, int]:
        return self._tokenizer, self._max_tokens

    def _embed(self, modality: Modality, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        model = self._model
        if model is None:
            raise EncoderError(f"encoder for {self.model_name} was closed during forward")

        hidden: torch.Tensor = model(**tensors).last_hidden_state.float()
        mask = tensors["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        # The clamp only guards against division by zero, because every tokenised
        # text has at least its special tokens.
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return summed / counts

    def _release(self) -> None:
        self._model = None


def _read_max_seq_length(model_name: str, hub_options: dict[str, Any]) -> int | None:
    path = cached_file(
        model_name,
        _SENTENCE_CONFIG_FILE,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_options,
    )
    if path is None:
        return None
    with open(path, encoding="utf-8") as file:
        settings = json.load(file)
    value = settings.get("max_seq_length")
    if value is None:
        return None
    if not isinstance(value, int) or value <= 0:
        raise EncoderError(
            f"{_SENTENCE_CONFIG_FILE} of {model_name!r} has max_seq_length={value!r}, expected a positive integer"
        )
    return value
