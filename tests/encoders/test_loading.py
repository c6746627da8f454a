"""load_encoder on saved stand-ins, missing paths and an offline hub."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants
from safetensors.torch import load_file, save_file

from encoders.clap import ClapEncoder
from encoders.clip import ClipEncoder
from encoders.errors import ModelLoadError
from encoders.hashing import HashEncoder
from encoders.loading import load_encoder
from encoders.modality import Modality
from encoders.sentence import SentenceEncoder
from encoders.standins import build_tiny_clip


def test_tests_run_with_hub_offline() -> None:
    # Every other test here relies on this: a hub id must never reach the network.
    assert hub_constants.is_offline_mode()


def test_load_encoder_rejects_missing_local_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"

    with pytest.raises(ModelLoadError) as caught:
        load_encoder(str(missing))

    assert str(missing) in str(caught.value)
    assert "not found" in str(caught.value)


def test_load_encoder_rejects_uncached_hub_id() -> None:
    model = "openai/clip-vit-base-patch32-not-cached"

    with pytest.raises(ModelLoadError) as caught:
        load_encoder(model)

    message = str(caught.value)
    assert model in message
    assert "HF_HUB_OFFLINE=1" in message
    assert "Pass a local directory" in message
    assert isinstance(caught.value.__cause__, OSError)


def test_load_encoder_rejects_uncached_hub_id_local_only() -> None:
    with pytest.raises(ModelLoadError, match="local_files_only=True"):
        load_encoder("laion/clap-htsat-unfused-not-cached", local_files_only=True)


def test_load_encoder_rejects_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_encoder(str(tmp_path))

    assert str(tmp_path) in str(caught.value)
    assert "no config.json" in str(caught.value)


def test_load_encoder_rejects_config_without_model_type(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")

    with pytest.raises(ModelLoadError) as caught:
        load_encoder(str(tmp_path))

    assert str(tmp_path) in str(caught.value)
    assert caught.value.__cause__ is not None


def test_load_encoder_round_trips_tiny_clip(tiny_clip_dir: Path) -> None:
    encoder = load_encoder(str(tiny_clip_dir), family="clip", device="cpu", dtype="fp32")
    try:
        assert isinstance(encoder, ClipEncoder)
        assert encoder.model_name == str(tiny_clip_dir)
        assert encoder.dim == 32
        assert encoder.device == torch.device("cpu")
        assert encoder.dtype == torch.float32
        assert encoder.encode(Modality.TEXT, ["a cat"]).shape == (1, 32)
    finally:
        encoder.close()


def test_load_encoder_round_trips_tiny_clap(tiny_clap_dir: Path) -> None:
    encoder = load_encoder(str(tiny_clap_dir))
    try:
        assert isinstance(encoder, ClapEncoder)
        assert encoder.family == "clap"
        assert encoder.sampling_rate == 16_000
        assert encoder.encode(Modality.TEXT, ["rain"]).shape == (1, 32)
    finally:
        encoder.close()


def test_load_encoder_detects_sentence_family(minilm_path: Path) -> None:
    encoder = load_encoder(str(minilm_path), family="sentence")
    try:
        assert isinstance(encoder, SentenceEncoder)
    finally:
        encoder.close()


def test_load_encoder_rejects_family_mismatch(tiny_clip_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="model_type 'clip'"):
        load_encoder(str(tiny_clip_dir), family="clap")


def test_load_encoder_rejects_fp16_on_cpu(tiny_clip_dir: Path) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_encoder(str(tiny_clip_dir), device="cpu", dtype="fp16")

    assert str(tiny_clip_dir) in str(caught.value)
    assert "fp16" in str(caught.value)


def test_load_encoder_rejects_missing_weights(tiny_clip_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-clip"
    shutil.copytree(tiny_clip_dir, broken)
    weights = load_file(broken / "model.safetensors")
    del weights["text_projection.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})

    with pytest.raises(ModelLoadError, match="no weights for 1 parameters"):
        load_encoder(str(broken))


def test_load_encoder_logs_start_and_finish(tiny_clip_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="encoders.loading"):
        load_encoder(str(tiny_clip_dir)).close()

    messages = [record.getMessage() for record in caplog.records if record.name == "encoders.loading"]
    assert any(message.startswith("loading encoder") for message in messages)
    finished = [message for message in messages if message.startswith("loaded encoder")]
    assert len(finished) == 1
    assert "family=clip" in finished[0]
    assert "dim=32" in finished[0]
    assert "seconds=" in finished[0]


def test_build_tiny_clip_repeats_for_seed(tmp_path: Path) -> None:
    first = load_encoder(str(build_tiny_clip(tmp_path / "first", seed=3)))
    second = load_encoder(str(build_tiny_clip(tmp_path / "second", seed=3)))
    other = load_encoder(str(build_tiny_clip(tmp_path / "other", seed=4)))
    try:
        texts = ["a cat", "a dog"]
        assert np.array_equal(first.encode(Modality.TEXT, texts), second.encode(Modality.TEXT, texts))
        assert not np.allclose(first.encode(Modality.TEXT, texts), other.encode(Modality.TEXT, texts))
    finally:
        for encoder in (first, second, other):
            encoder.close()


def test_build_tiny_clip_keeps_global_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)

    build_tiny_clip(tmp_path / "clip", seed=0)

    assert torch.equal(torch.rand(3), expected)


def test_load_encoder_builds_hash_encoder() -> None:
    encoder = load_encoder("hash:16")

    assert isinstance(encoder, HashEncoder)
    assert encoder.model_name == "hash:16"
    assert encoder.dim == 16


@pytest.mark.parametrize("name", ["hash:", "hash:abc", "hash:0", "hash:-4"])
def test_load_encoder_rejects_invalid_hash_name(name: str) -> None:
    with pytest.raises(ModelLoadError, match="hash:DIM"):
        load_encoder(name)
