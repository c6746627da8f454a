"""Validation of one text input before tokenisation, and the rejection of a text past a token window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from encoders.errors import EncoderError, InputRejected

if TYPE_CHECKING:
    from encoders.tokenizing import TokenCount


def decode_text(text: str, max_chars: int) -> str:
    """Strip `text` and check it against `max_chars` (counted after stripping).

    Raises InputRejected with reason "empty_text" or "text_too_long".
    """
    if max_chars <= 0:
        raise EncoderError(f"max_chars must be positive, got {max_chars}")

    stripped = text.strip()
    if not stripped:
        raise InputRejected("empty_text", f"text is empty after stripping ({len(text)} chars)")
    if len(stripped) > max_chars:
        raise InputRejected(
            "text_too_long",
            f"text has {len(stripped)} chars after stripping, limit is {max_chars}",
        )
    return stripped


def over_window_rejection(count: TokenCount) -> InputRejected:
    """Return the rejection of a text with more tokens than its model's window, naming both counts."""
    return InputRejected(
        "text_over_window",
        f"text has {count.tokens} tokens, over the model's window of {count.window} tokens",
    )
