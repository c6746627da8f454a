"""Errors of the streaming side, under one root so callers can catch them together."""


class EmbedstreamError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(EmbedstreamError):
    """The settings cannot work: a value is invalid or contradicts the running system."""


class IndexDimensionMismatch(ConfigError):
    """An existing vector index has another dimension than the space's model."""

    def __init__(self, index: str, index_dim: int, model_dim: int, model: str) -> None:
        super().__init__(
            f"vector index {index!r} stores {index_dim}-dimensional vectors but model {model!r} "
            f"produces {model_dim}-dimensional ones; drop the index (FT.DROPINDEX {index}) or "
            f"give the space another name or key prefix"
        )
        self.index = index
        self.index_dim = index_dim
        self.model_dim = model_dim


class StackError(EmbedstreamError):
    """The embedded development stack failed to start, respond or stop."""
