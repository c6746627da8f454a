import pickle

import pytest

from encoders.decoding import decode_text
from encoders.errors import EncoderError, InputRejected


def test_decode_text_strips_whitespace() -> None:
    assert decode_text("  a photo of a cat \n", max_chars=100) == "a photo of a cat"


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n"])
def test_decode_text_rejects_empty(text: str) -> None:
    with pytest.raises(InputRejected) as caught:
        decode_text(text, max_chars=100)

    assert caught.value.reason == "empty_text"


def test_decode_text_rejects_too_long() -> None:
    with pytest.raises(InputRejected) as caught:
        decode_text("x" * 11, max_chars=10)

    assert caught.value.reason == "text_too_long"
    assert "11" in caught.value.detail
    assert "10" in caught.value.detail


def test_decode_text_accepts_limit_after_strip() -> None:
    assert decode_text("  " + "x" * 10 + "  ", max_chars=10) == "x" * 10


def test_decode_text_rejects_nonpositive_limit() -> None:
    with pytest.raises(EncoderError):
        decode_text("hello", max_chars=0)


def test_input_rejected_message_and_pickle() -> None:
    error = InputRejected("image_too_large", "4000x4000 image has 16000000 pixels, limit is 1000")

    assert str(error) == "image_too_large: 4000x4000 image has 16000000 pixels, limit is 1000"
    copied = pickle.loads(pickle.dumps(error))
    assert isinstance(copied, InputRejected)
    assert copied.reason == error.reason
    assert copied.detail == error.detail
