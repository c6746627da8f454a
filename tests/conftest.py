"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.devstack import EmbeddedStack, StackEndpoints

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
