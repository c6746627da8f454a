"""CLIP: text and images embedded into one space (transformers CLIPModel)."""

from collections.abc import Sequence
from typing import Any, cast

import torch
from PIL import Image
from transformers import AutoTokenizer, CLIPModel, PreTrainedConfig, PreTrainedTokenizerBase
from transformers.image_processing_utils import BaseImageProcessor

# NOTE: `from transformers import AutoImageProcessor` yields a placeholder that
# demands torchvision in transformers 5.17, because the lazy importer flags the
# whole image_processing_auto module for mentioning TorchvisionBackend. The
# submodule import works with Pillow alone.
from transformers.models.auto.image_processing_auto import AutoImageProcessor

from encoders.base import Encoder
from encoders.errors import EncoderError, ModelLoadError
from encoders.modality import Modality
from encoders.pretrained import config_int, load_processor, load_weights, pooled_features, sub_config
from encoders.tokenizing import text_window, tokenize


class ClipEncoder(Encoder):
    """CLIP text and image encoder. Vectors come from the projection heads."""

    def __init__(
        self,
        *,
        model_name: str,
        model: CLIPModel,
        tokenizer: PreTrainedTokenizerBase,
        image_processor: BaseImageProcessor,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        config = model.config
        super().__init__(
            model_name=model_name,
            family="clip",
            modalities=frozenset({Modality.TEXT, Modality.IMAGE}),
            dim=config_int(config, "projection_dim"),
            device=device,
            dtype=dtype,
        )
        self._model: CLIPModel | None = model
        self._tokenizer = tokenizer
        self._image_processor = image_processor
        text_config = sub_config(config, "text_config")
        self._max_tokens = text_window(tokenizer, config_int(text_config, "max_position_embeddings"))

    @classmethod
    def load(
        cls,
        model_name: str,
        *,
        config: PreTrainedConfig,
        device: torch.device,
        dtype: torch.dtype,
        hub_options: dict[str, Any],
    ) -> "ClipEncoder":
        """Load the model, its tokenizer and its image processor from a hub id or directory."""
        model = load_weights(
            CLIPModel,
            model_name,
            config=config,
            device=device,
            dtype=dtype,
            hub_options=hub_options,
        )
        if not isinstance(model, CLIPModel):
            raise ModelLoadError(f"cannot load {model_name!r}: expected a CLIPModel checkpoint")
        tokenizer = AutoTokenizer.from_pretrained(model_name, **hub_options)
        image_processor = load_processor(
            AutoImageProcessor, BaseImageProcessor, "image processor", model_name, hub_options
        )
        return cls(
            model_name=model_name,
            model=model,
            tokenizer=tokenizer,
            image_processor=image_processor,
            device=device,
            dtype=dtype,
        )

    def _preprocess(self, modality: Modality, inputs: Sequence[object]) -> dict[str, torch.Tensor]:
        if modality is Modality.TEXT:
            return tokenize(self._tokenizer, inputs, self._max_tokens, ("input_ids", "attention_mask"))

        # Encoder.preprocess has checked that every input is a PIL image.
        images = cast(list[Image.Image], list(inputs))
        pixels = self._image_processor(images=images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels}

    def _text_tokenizer(self) -> tuple[PreTrainedTokenizerBase, int]:
        return self._tokenizer, self._max_tokens

    def _embed(self, modality: Modality, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        model = self._model
        if model is None:
            raise EncoderError(f"encoder for {self.model_name} was closed during forward")
        if modality is Modality.TEXT:
            output = model.get_text_features(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"])
        else:
            output = model.get_image_features(pixel_values=tensors["pixel_values"])
        return pooled_features(output)

    def _release(self) -> None:
        self._model = None
