"""Exceptions raised by the encoders package, all under `EncoderError`."""

from typing import Any


class EncoderError(Exception):
    """Root of every error that the encoders package raises on purpose."""


class ModelLoadError(EncoderError):
    """A model, its tokenizer or its processor could not be loaded."""


class InputRejected(EncoderError):
    """One input cannot be embedded, so the caller should drop or dead-letter it.

    `reason` is a stable snake_case code for metrics and dead-letter records
    (for example "image_truncated"). `detail` names the offending value and the
    limit it broke.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce passes only the formatted message back to __init__,
        # which needs two arguments, so the error could not cross a process pool.
        return (type(self), (self.reason, self.detail))
