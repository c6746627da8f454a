"""Loading of Hugging Face weights and configs, and reading their feature outputs."""

from typing import Any, TypeVar

import torch
from transformers import PreTrainedConfig, PreTrainedModel

from encoders.errors import EncoderError, ModelLoadError

ProcessorT = TypeVar("ProcessorT")

# How many missing parameter names an error message lists before it stops.
_MISSING_KEYS_SHOWN = 5


def load_weights(
    model_class: Any,
    model_name: str,
    *,
    config: PreTrainedConfig,
    device: torch.device,
    dtype: torch.dtype,
    hub_options: dict[str, Any],
    optional_prefixes: tuple[str, ...] = (),
) -> PreTrainedModel:
    """Load weights with `model_class.from_pretrained` in eval mode on `device`.

    `model_class` is a PreTrainedModel subclass or an Auto class. from_pretrained
    only logs a warning when the checkpoint lacks weights for some parameters
    and leaves them randomly initialised, which would produce meaningless
    vectors, so missing parameters outside `optional_prefixes` raise
    ModelLoadError here.
    """
    loaded = model_class.from_pretrained(
        model_name,
        config=config,
        dtype=dtype,
        output_loading_info=True,
        **hub_options,
    )
    model, info = loaded
    if not isinstance(model, PreTrainedModel):
        raise ModelLoadError(
            f"cannot load {model_name!r}: {model_class.__name__}.from_pretrained returned "
            f"{type(model).__name__}, not a PreTrainedModel"
        )

    missing = sorted(key for key in info["missing_keys"] if not key.startswith(optional_prefixes))
    if missing:
        shown = ", ".join(missing[:_MISSING_KEYS_SHOWN])
        raise ModelLoadError(
            f"cannot load {model_name!r} as {type(model).__name__}: the checkpoint has no "
            f"weights for {len(missing)} parameters ({shown}, ...), so they would stay random. "
            "Check that the checkpoint matches the requested family"
        )
    # Called through nn.Module because transformers 5.17 wraps PreTrainedModel.to
    # and leaves eval unannotated, which strict mypy rejects.
    module: torch.nn.Module = model
    module.eval()
    module.to(device)
    return model


def load_processor(
    auto_class: Any, expected_class: type[ProcessorT], kind: str, model_name: str, hub_options: dict[str, Any]
) -> ProcessorT:
    """Load an image processor or feature extractor with `auto_class` and check its class.

    `kind` names it in the error, for example "image processor".
    """
    processor = auto_class.from_pretrained(model_name, **hub_options)
    if not isinstance(processor, expected_class):
        raise ModelLoadError(
            f"cannot load {model_name!r}: its {kind} is a {type(processor).__name__}, "
            f"expected a {expected_class.__name__}"
        )
    return processor


def sub_config(config: PreTrainedConfig, name: str) -> PreTrainedConfig:
    """Return the nested config `name` (for example "text_config") of a two-tower model."""
    nested = getattr(config, name, None)
    if not isinstance(nested, PreTrainedConfig):
        raise EncoderError(f"{type(config).__name__} has no {name} section")
    return nested


def config_int(config: PreTrainedConfig, name: str) -> int:
    """Return the integer setting `name` of `config`, or raise EncoderError."""
    value = getattr(config, name, None)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncoderError(f"{type(config).__name__}.{name} is {value!r}, expected an integer")
    return value


def pooled_features(output: object) -> torch.Tensor:
    """Return the projected features from a get_*_features result.

    transformers 4 returned the tensor itself. transformers 5 returns a
    BaseModelOutputWithPooling whose pooler_output contains the projected features.
    """
    if isinstance(output, torch.Tensor):
        return output
    features = getattr(output, "pooler_output", None)
    if not isinstance(features, torch.Tensor):
        raise EncoderError(
            f"{type(output).__name__} from get_*_features has no pooler_output tensor: "
            "this transformers version is not supported"
        )
    return features
