"""Device and dtype choice. This machine has no GPU, so availability is patched."""

import pytest
import torch

from encoders.devices import resolve_device, resolve_dtype
from encoders.errors import EncoderError


def fake_accelerators(monkeypatch: pytest.MonkeyPatch, *, cuda: int = 0, mps: bool = False) -> None:
    """Report `cuda` CUDA devices and MPS availability as given."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_resolve_device_auto_prefers_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_accelerators(monkeypatch, cuda=1, mps=True)

    assert resolve_device("auto") == torch.device("cuda")


def test_resolve_device_auto_falls_back_to_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_accelerators(monkeypatch, cuda=0, mps=True)

    assert resolve_device() == torch.device("mps")


def test_resolve_device_auto_falls_back_to_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_accelerators(monkeypatch, cuda=0, mps=False)

    assert resolve_device("auto") == torch.device("cpu")


def test_resolve_device_accepts_cpu_without_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_accelerators(monkeypatch)

    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("requested", ["cuda", "cuda:0"])
def test_resolve_device_rejects_missing_cuda(monkeypatch: pytest.MonkeyPatch, requested: str) -> None:
    fake_accelerators(monkeypatch, cuda=0)

    with pytest.raises(EncoderError, match="CUDA is not available"):
        resolve_device(requested)


def test_resolve_device_accepts_visible_cuda_index(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_accelerators(monkeypatch, cuda=2)

    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_resolve_device_rejects_cuda_index_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_accelerators(monkeypatch, cuda=1)

    with pytest.raises(EncoderError, match="only 1 CUDA device"):
        resolve_device("cuda:1")


def test_resolve_device_rejects_missing_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_accelerators(monkeypatch, mps=False)

    with pytest.raises(EncoderError, match="MPS is not available"):
        resolve_device("mps")


def test_resolve_device_accepts_available_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_accelerators(monkeypatch, mps=True)

    assert resolve_device("mps") == torch.device("mps")


@pytest.mark.parametrize("requested", ["gpu", "tpu:0", "meta", ""])
def test_resolve_device_rejects_unknown_name(requested: str) -> None:
    with pytest.raises(EncoderError):
        resolve_device(requested)


@pytest.mark.parametrize(
    ("device", "expected"),
    [("cuda", torch.float16), ("cuda:1", torch.float16), ("cpu", torch.float32), ("mps", torch.float32)],
)
def test_resolve_dtype_auto_per_device(device: str, expected: torch.dtype) -> None:
    assert resolve_dtype("auto", torch.device(device)) == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16), ("BF16", torch.bfloat16)],
)
def test_resolve_dtype_explicit_on_cuda(requested: str, expected: torch.dtype) -> None:
    assert resolve_dtype(requested, torch.device("cuda")) == expected


def test_resolve_dtype_rejects_fp16_on_cpu() -> None:
    with pytest.raises(EncoderError, match="'fp16' is rejected on the CPU"):
        resolve_dtype("fp16", torch.device("cpu"))


def test_resolve_dtype_allows_bf16_on_cpu() -> None:
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_resolve_dtype_rejects_unknown_name() -> None:
    with pytest.raises(EncoderError, match="invalid dtype 'int8'"):
        resolve_dtype("int8", torch.device("cpu"))
