"""Fixtures of the fault tests: a per-test embedded stack, and the figures each test records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from streams.devstack import EmbeddedStack

# Every FAULT-FIGURES line of the session, repeated in the terminal summary, because
# pytest shows a passing test's output only with -s or -rP.
_FIGURES_KEY = pytest.StashKey[list[str]]()

FIGURES_PREFIX = "FAULT-FIGURES"


@pytest.fixture
def fault_figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Return a function that prints one FAULT-FIGURES JSON line of this test's measurements."""

    def record(**figures: object) -> None:
        line = f"{FIGURES_PREFIX} " + orjson.dumps({"test": request.node.name, **figures}).decode()
        print(line)
        request.config.stash.setdefault(_FIGURES_KEY, []).append(line)

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(_FIGURES_KEY, [])
    if lines:
        terminalreporter.section("fault test figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def persistent_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """An embedded stack of this test alone whose Redis keeps its data across a restart."""
    with EmbeddedStack(tmp_path / "stack", redis_persistence=True) as embedded:
        yield embedded
