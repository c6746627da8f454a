"""The hash encoder's fault options: slow, oversize and poisoned forward passes."""

import time

import numpy as np
import pytest
from PIL import Image

from encoders.errors import ModelLoadError
from encoders.hashing import FaultOptions, HashEncoder
from encoders.loading import load_encoder
from encoders.modality import Modality


def test_plain_name_has_no_faults() -> None:
    encoder = HashEncoder.from_name("hash:16")

    assert encoder.model_name == "hash:16"
    assert encoder.faults == FaultOptions()
    assert not encoder.faults.active


def test_options_parsed_from_name() -> None:
    encoder = HashEncoder.from_name("hash:16?delay_ms=40&fail_batch_over=8&fail_on=POISON")

    assert encoder.dim == 16
    assert encoder.faults == FaultOptions(delay_ms=40.0, fail_batch_over=8, fail_on="POISON")
    assert encoder.model_name == "hash:16?delay_ms=40&fail_batch_over=8&fail_on=POISON"


def test_load_encoder_passes_options() -> None:
    encoder = load_encoder("hash:8?fail_on=BAD")

    assert isinstance(encoder, HashEncoder)
    assert encoder.faults.fail_on == "BAD"


def test_options_keep_vectors_unchanged() -> None:
    texts = ["first", "second", "third"]

    plain = HashEncoder.from_name("hash:16").encode(Modality.TEXT, texts)
    faulty = HashEncoder.from_name("hash:16?delay_ms=1&fail_batch_over=3&fail_on=POISON").encode(Modality.TEXT, texts)

    assert np.array_equal(plain, faulty)


def test_delay_slows_each_forward_pass() -> None:
    encoder = HashEncoder.from_name("hash:8?delay_ms=50")

    started = time.perf_counter()
    encoder.encode(Modality.TEXT, ["one"])
    encoder.encode(Modality.TEXT, ["two", "three"])
    elapsed = time.perf_counter() - started

    assert elapsed >= 0.1, f"two passes took {elapsed:.3f} s, expected at least 2 x 50 ms"


def test_batch_over_limit_raises_out_of_memory() -> None:
    encoder = HashEncoder.from_name("hash:8?fail_batch_over=8")
    texts = [f"text {number}" for number in range(9)]

    with pytest.raises(RuntimeError, match=r"^CUDA out of memory \(simulated\): batch of 9 over 8$"):
        encoder.encode(Modality.TEXT, texts)
    vectors = encoder.encode(Modality.TEXT, texts[:8])

    assert vectors.shape == (8, 8)


def test_marked_input_fails_its_batch() -> None:
    encoder = HashEncoder.from_name("hash:8?fail_on=POISON")

    with pytest.raises(RuntimeError, match=r"batch positions \[1\] contain 'POISON'"):
        encoder.encode(Modality.TEXT, ["fine", "a POISONed text", "also fine"])
    with pytest.raises(RuntimeError, match=r"batch positions \[0\]"):
        encoder.encode(Modality.TEXT, ["POISON"])
    vectors = encoder.encode(Modality.TEXT, ["fine", "also fine"])

    assert vectors.shape == (2, 8)


def test_marker_never_matches_images() -> None:
    encoder = HashEncoder.from_name("hash:8?fail_on=RGB")
    image = Image.new("RGB", (4, 4), (10, 20, 30))

    vectors = encoder.encode(Modality.IMAGE, [image])

    assert vectors.shape == (1, 8)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("hash:x?delay_ms=1", "invalid hash encoder name"),
        ("hash:0?delay_ms=1", "invalid hash encoder name"),
        ("hash:16?delay_ms=abc", "invalid delay_ms='abc'"),
        ("hash:16?delay_ms=-1", "invalid delay_ms='-1'"),
        ("hash:16?delay_ms=nan", "invalid delay_ms='nan'"),
        ("hash:16?delay_ms=3600000", "invalid delay_ms='3600000'"),
        ("hash:16?fail_batch_over=0", "invalid fail_batch_over='0'"),
        ("hash:16?fail_batch_over=2.5", "invalid fail_batch_over='2.5'"),
        ("hash:16?fail_on=", "empty fail_on"),
        ("hash:16?colour=red", "unknown options \\['colour'\\]"),
        ("hash:16?delay_ms", "invalid options"),
    ],
)
def test_invalid_option_raises(name: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        HashEncoder.from_name(name)
