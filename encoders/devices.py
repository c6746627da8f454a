"""Choice and validation of the torch device and dtype an encoder runs on."""

import torch

from encoders.errors import EncoderError

_DTYPE_NAMES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(requested: str = "auto") -> torch.device:
    """Return the device for `requested`: "auto", "cpu", "mps", "cuda" or "cuda:N".

    "auto" picks CUDA, then MPS, then the CPU. An explicit device that is not
    available raises EncoderError.
    """
    name = requested.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise EncoderError(f"invalid device {requested!r}: use 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'") from exc

    if device.type == "cpu":
        return device
    if device.type == "cuda":
        _check_cuda(device, requested)
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise EncoderError(
                f"device {requested!r} requested but MPS is not available "
                "(it needs Apple silicon and a torch build with MPS): use 'cpu' or 'auto'"
            )
        return device
    raise EncoderError(f"device type {device.type!r} is not supported: use 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'")


def _check_cuda(device: torch.device, requested: str) -> None:
    if not torch.cuda.is_available():
        raise EncoderError(
            f"device {requested!r} requested but CUDA is not available "
            "(no GPU visible, or torch is a CPU-only build): use 'cpu' or 'auto'"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise EncoderError(
            f"device {requested!r} requested but only {count} CUDA device(s) are visible "
            f"(indexes 0..{count - 1}): check CUDA_VISIBLE_DEVICES"
        )


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    """Return the parameter dtype for `requested` ("auto", "fp32", "fp16", "bf16") on `device`.

    "auto" is float16 on CUDA and float32 on the CPU and MPS. bfloat16 is used
    only when requested. float16 on the CPU raises EncoderError.
    """
    name = requested.strip().lower()
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32

    dtype = _DTYPE_NAMES.get(name)
    if dtype is None:
        raise EncoderError(f"invalid dtype {requested!r}: use 'auto', 'fp32', 'fp16' or 'bf16'")
    if dtype == torch.float16 and device.type == "cpu":
        raise EncoderError(
            "dtype 'fp16' is rejected on the CPU: CPUs without native float16 arithmetic "
            "run it slower than float32, and some torch CPU kernels do not implement it. "
            "Use 'fp32', or 'bf16' on a CPU with bfloat16 support"
        )
    return dtype
