"""CLAP: text and audio embedded into one space (transformers ClapModel)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoFeatureExtractor,
    AutoTokenizer,
    ClapFeatureExtractor,
    ClapModel,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
)

from encoders.audio_decoding import Waveform, resample
from encoders.base import Encoder
from encoders.errors import EncoderError, InputRejected, ModelLoadError
from encoders.modality import Modality
from encoders.pretrained import config_int, load_processor, load_weights, pooled_features, sub_config
from encoders.tokenizing import text_window, tokenize


class ClapEncoder(Encoder):
    """CLAP text and audio encoder. Vectors come from the projection heads.

    Audio is resampled to the feature extractor's sampling_rate. A clip longer
    than the extractor's max_length_s is cut to its first max_length_s seconds.
    """

    def __init__(
        self,
        *,
        model_name: str,
        model: ClapModel,
        tokenizer: PreTrainedTokenizerBase,
        feature_extractor: ClapFeatureExtractor,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        config = model.config
        super().__init__(
            model_name=model_name,
            family="clap",
            modalities=frozenset({Modality.TEXT, Modality.AUDIO}),
            dim=config_int(config, "projection_dim"),
            device=device,
            dtype=dtype,
        )
        self._model: ClapModel | None = model
        self._tokenizer = tokenizer
        self._feature_extractor = feature_extractor

        # The text tower numbers positions RoBERTa-style, starting after the
        # padding index, so pad_token_id + 1 positions are never used by tokens.
        text_config = sub_config(config, "text_config")
        pad_token_id = getattr(text_config, "pad_token_id", None) or 0
        positions = config_int(text_config, "max_position_embeddings")
        self._max_tokens = text_window(tokenizer, positions - pad_token_id - 1)
        self.sampling_rate: int = feature_extractor.sampling_rate
        self._max_samples = int(feature_extractor.max_length_s * self.sampling_rate)

        # ClapFeatureExtractor stacks four mel copies per clip for truncation="fusion",
        # which only a model built with enable_fusion accepts. Unfused models take
        # the single mel of "rand_trunc".
        fused = bool(getattr(sub_config(config, "audio_config"), "enable_fusion", False))
        self._truncation = "fusion" if fused else "rand_trunc"

    @classmethod
    def load(
        cls,
        model_name: str,
        *,
        config: PreTrainedConfig,
        device: torch.device,
        dtype: torch.dtype,
        hub_options: dict[str, Any],
    ) -> "ClapEncoder":
        """Load the model, its tokenizer and its audio feature extractor from a hub id or directory."""
        model = load_weights(
            ClapModel,
            model_name,
            config=config,
            device=device,
            dtype=dtype,
            hub_options=hub_options,
        )
        if not isinstance(model, ClapModel):
            raise ModelLoadError(f"cannot load {model_name!r}: expected a ClapModel checkpoint")
        tokenizer = AutoTokenizer.from_pretrained(model_name, **hub_options)
        feature_extractor = load_processor(
            AutoFeatureExtractor, ClapFeatureExtractor, "feature extractor", model_name, hub_options
        )
        return cls(
            model_name=model_name,
            model=model,
            tokenizer=tokenizer,
            feature_extractor=feature_extractor,
            device=device,
            dtype=dtype,
        )

    def _preprocess(self, modality: Modality, inputs: Sequence[object]) -> dict[str, torch.Tensor]:
        if modality is Modality.TEXT:
            return tokenize(self._tokenizer, inputs, self._max_tokens, ("input_ids", "attention_mask"))

        clips = [self._fit_window(index, wave) for index, wave in enumerate(inputs)]
        features = self._feature_extractor(
            clips,
            sampling_rate=self.sampling_rate,
            truncation=self._truncation,
            return_tensors="pt",
        )
        # For truncation="fusion" the extractor marks one random clip of each batch
        # as longer than the window (a training-time trick), and a fused model then
        # embeds that clip differently depending on its batch. No clip reaches the
        # extractor longer than the window, so every flag is False.
        is_longer = torch.zeros((len(clips), 1), dtype=torch.bool)
        return {"input_features": features["input_features"], "is_longer": is_longer}

    def _fit_window(self, index: int, wave: object) -> np.ndarray:
        if not isinstance(wave, Waveform):
            raise EncoderError(f"audio input at index {index} is a {type(wave).__name__}")
        if wave.samples.shape[0] == 0:
            raise InputRejected("audio_empty", f"audio input at index {index} has no samples")

        samples = resample(wave, self.sampling_rate)
        # Cutting here keeps vectors deterministic: for a longer clip the extractor
        # would take a random crop ("rand_trunc") or random fusion chunks ("fusion").
        # NOTE: a fused model therefore receives at most its first window, so its
        # fusion branch for long clips stays unused.
        return samples[: self._max_samples]

    def _text_tokenizer(self) -> tuple[PreTrainedTokenizerBase, int]:
        return self._tokenizer, self._max_tokens

    def _embed(self, modality: Modality, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        model = self._model
        if model is None:
            raise EncoderError(f"encoder for {self.model_name} was closed during forward")
        if modality is Modality.TEXT:
            output = model.get_text_features(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"])
        else:
            output = model.get_audio_features(input_features=tensors["input_features"], is_longer=tensors["is_longer"])
        return pooled_features(output)

    def _release(self) -> None:
        self._model = None
