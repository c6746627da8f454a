"""Loading of an encoder by hub id, local directory or "hash:DIM" name."""

import logging
import time
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub import constants as hub_constants
from transformers import AutoConfig, PreTrainedConfig

from encoders.base import Encoder
from encoders.clap import ClapEncoder
from encoders.clip import ClipEncoder
from encoders.devices import resolve_device, resolve_dtype
from encoders.errors import EncoderError, ModelLoadError
from encoders.hashing import NAME_PREFIX, HashEncoder
from encoders.sentence import SentenceEncoder

logger = logging.getLogger(__name__)

Family = Literal["auto", "clip", "clap", "sentence", "hash"]

# config.model_type values with a dedicated encoder. Any other type is loaded
# as a sentence encoder.
_MULTIMODAL_TYPES = {"clip": "clip", "clap": "clap"}


def load_encoder(
    model: str,
    *,
    family: Family = "auto",
    device: str = "auto",
    dtype: str = "auto",
    local_files_only: bool | None = None,
) -> Encoder:
    """Load `model` (a hub id, a local directory or "hash:DIM") as an encoder.

    family "auto" picks clip or clap from config.model_type and sentence for
    any other type. local_files_only=None keeps the Hugging Face default,
    which also honours HF_HUB_OFFLINE. The hash encoder always runs on the CPU
    and ignores device and dtype. Every failure raises ModelLoadError naming
    the model, with the original error as its cause.
    """
    started = time.perf_counter()
    if family == "hash" or (family == "auto" and model.startswith(NAME_PREFIX)):
        encoder: Encoder = HashEncoder.from_name(model)
        _log_loaded(encoder, started)
        return encoder

    try:
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
    except EncoderError as exc:
        raise ModelLoadError(f"cannot load {model!r}: {exc}") from exc

    _check_local_path(model)
    hub_options: dict[str, Any] = {}
    if local_files_only is not None:
        hub_options["local_files_only"] = local_files_only

    logger.info(
        "loading encoder model=%s family=%s device=%s dtype=%s",
        model,
        family,
        torch_device,
        torch_dtype,
    )
    try:
        config = AutoConfig.from_pretrained(model, **hub_options)
        chosen = _choose_family(model, family, config)
        encoder = _load_family(chosen, model, config, torch_device, torch_dtype, hub_options)
    except ModelLoadError:
        raise
    except Exception as exc:
        # from_pretrained reports failures as OSError, ValueError, KeyError,
        # RuntimeError (including CUDA out of memory) or ImportError depending on
        # the cause, and callers need one type that names the model.
        raise ModelLoadError(_describe_failure(model, family, exc, hub_options)) from exc

    _log_loaded(encoder, started)
    return encoder


def _load_family(
    family: str,
    model: str,
    config: PreTrainedConfig,
    device: torch.device,
    dtype: torch.dtype,
    hub_options: dict[str, Any],
) -> Encoder:
    encoder_class: type[ClipEncoder] | type[ClapEncoder] | type[SentenceEncoder]
    if family == "clip":
        encoder_class = ClipEncoder
    elif family == "clap":
        encoder_class = ClapEncoder
    else:
        encoder_class = SentenceEncoder
    return encoder_class.load(model, config=config, device=device, dtype=dtype, hub_options=hub_options)


def _check_local_path(model: str) -> None:
    """Reject a missing or incomplete directory before transformers reads the name as a hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"cannot load {model!r}: the directory has no config.json. Pass a directory written by save_pretrained"
            )
        return

    looks_local = model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
    if looks_local:
        raise ModelLoadError(
            f"cannot load {model!r}: local directory not found. Pass an existing directory "
            "written by save_pretrained (it contains config.json), or a hub id such as "
            "'sentence-transformers/all-MiniLM-L6-v2'"
        )


def _choose_family(model: str, family: Family, config: PreTrainedConfig) -> str:
    model_type = str(getattr(config, "model_type", ""))
    detected = _MULTIMODAL_TYPES.get(model_type, "sentence")
    if family == "auto" or family == detected:
        return detected
    raise ModelLoadError(
        f"cannot load {model!r} as family {family!r}: its config has model_type "
        f"{model_type!r}, which is a {detected} model. Pass family='auto' or a matching checkpoint"
    )


def _describe_failure(model: str, family: Family, exc: Exception, hub_options: dict[str, Any]) -> str:
    cause = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, OSError) or Path(model).expanduser().is_dir():
        return f"cannot load {model!r} (family {family}): {cause}"

    if hub_options.get("local_files_only"):
        hint = "it is not in the local Hugging Face cache and local_files_only=True"
    elif hub_constants.is_offline_mode():
        hint = "it is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 blocks downloads"
    else:
        hint = "it is not in the local Hugging Face cache and the hub is unreachable or has no such repository"
    return (
        f"cannot load {model!r} (family {family}): {hint}. Pass a local directory, or "
        f"pre-download it (for example `hf download {model}`). Cause: {cause}"
    )


def _log_loaded(encoder: Encoder, started: float) -> None:
    logger.info(
        "loaded encoder model=%s family=%s device=%s dtype=%s dim=%d seconds=%.2f",
        encoder.model_name,
        encoder.family,
        encoder.device,
        encoder.dtype,
        encoder.dim,
        time.perf_counter() - started,
    )
