"""``embedstream top`` in a pseudo-terminal against a live worker, and against no worker."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

import pytest

from streams.devstack import StackEndpoints
from streams.topics import create_topics
from tests.monitoring_support import Publisher, base_url, fetch, free_port, monitoring_settings
from tests.support import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WAIT_S = 60.0
# Seconds top runs against the worker. With --interval 0.5 that is about ten refreshes.
TOP_RUN_S = 5.0
TERMINAL_ROWS, TERMINAL_COLUMNS = 60, 160

# Terminal control sequences (colours, cursor moves) that rich writes between the text.
CONTROL_SEQUENCE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")

# A row of the throughput table: modality, space, embedded/s, matches/s, embedded, matches.
THROUGHPUT_ROW = re.compile(r"^\s*text\s+hashed\s+(\d+\.\d+)\s+(\d+\.\d+)\s+([\d,]+)\s+([\d,]+)", re.MULTILINE)


def top_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", "top", *arguments]


def child_environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("EMBEDSTREAM_")}
    env["TERM"] = "xterm-256color"
    env.pop("NO_COLOR", None)
    return env


def run_in_terminal(command: list[str], run_s: float) -> tuple[int, str]:
    """Run ``command`` on a pseudo-terminal for ``run_s``, then send Ctrl-C; return (status, screen text)."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0))
    process = subprocess.Popen(
        command, stdin=terminal, stdout=terminal, stderr=terminal, env=child_environment(), start_new_session=True
    )
    os.close(terminal)
    output = bytearray()
    try:
        deadline = time.monotonic() + run_s
        while time.monotonic() < deadline:
            output += _read_available(controller, 0.2)
        os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            output += _read_available(controller, 0.2)
        output += _read_available(controller, 0.2)
        status = process.wait(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return status, CONTROL_SEQUENCE.sub(b"", bytes(output)).decode("utf-8", errors="replace")


def _read_available(controller: int, wait_s: float) -> bytes:
    readable, _, _ = select.select([controller], [], [], wait_s)
    if not readable:
        return b""
    try:
        return os.read(controller, 65536)
    except OSError:  # the terminal side closed: the process exited
        return b""


def test_top_shows_throughput_of_live_worker(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = monitoring_settings(stack)
    asyncio.run(create_topics(settings))
    worker = start_worker(settings)

    async def run() -> tuple[int, str]:
        publisher = Publisher(settings)
        publisher.start()
        try:

            async def embedding() -> bool:
                try:
                    return b"embedstream_events_embedded_total{" in fetch(f"{base_url(settings)}/metrics")
                except OSError:
                    return False

            await worker.wait_for(embedding, WAIT_S, "the first embedded events")
            return await asyncio.to_thread(
                run_in_terminal, top_command("--url", base_url(settings), "--interval", "0.5"), TOP_RUN_S
            )
        finally:
            await publisher.stop()

    status, screen = asyncio.run(run())

    rows = THROUGHPUT_ROW.findall(screen)
    assert status == 0, f"top exited with {status} on Ctrl-C:\n{screen[-3000:]}"
    assert "Throughput per modality" in screen
    assert rows, f"no throughput row for text/hashed on screen:\n{screen[-3000:]}"
    assert max(float(embedded_per_s) for embedded_per_s, *_ in rows) > 0, f"throughput stayed at 0: {rows}"
    assert int(rows[-1][2].replace(",", "")) > int(rows[0][2].replace(",", "")), "the embedded total never grew"
    assert "End-to-end latency" in screen
    assert "Consumer lag" in screen


def test_top_unreachable_endpoint_exits_1_with_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = subprocess.run(
        top_command("--url", url), env=child_environment(), capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 1
    assert f"cannot read metrics from {url}/metrics" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
