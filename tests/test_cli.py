"""The embedstream command as users run it: publish, search, tail, dev, and its errors."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.devstack import StackEndpoints
from streams.settings import Settings, SpaceSettings
from streams.topics import create_topics
from tests.support import WorkerProcess, isolated_settings, stored_keys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SENTENCES = [
    "A man is playing a guitar on stage.",
    "The recipe needs two eggs and a cup of flour.",
    "Glaciers are melting faster every decade.",
]


def run_cli(settings: Settings | None, *arguments: str, extra_env: dict[str, str] | None = None,
            timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("EMBEDSTREAM_")}
    if settings is not None:
        env.update(settings.environment())
    env.update(extra_env or {})
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *arguments],
        env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
    )


@pytest.fixture(scope="module")
def text_settings(stack: StackEndpoints, minilm_path: Path) -> Settings:
    space = SpaceSettings(
        name="text", model=str(minilm_path), min_similarity=-1.0, match_k=1, metadata_fields=("source",)
    )
    return isolated_settings(stack, [space], kafka_session_timeout_s=2.0, kafka_heartbeat_interval_s=0.5)


@pytest.fixture(scope="module")
def text_worker(text_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    asyncio.run(create_topics(text_settings))
    worker = WorkerProcess(text_settings, tmp_path_factory.mktemp("cli") / "worker.log").start()
    yield worker
    worker.stop()


def test_publish_search_tail_round_trip(text_worker: WorkerProcess, text_settings: Settings, tmp_path: Path) -> None:
    lines = tmp_path / "news.txt"
    lines.write_text("\n".join(SENTENCES) + "\n\n")

    published = run_cli(text_settings, "publish", "text", str(lines), "--metadata", "source=cli")
    assert published.returncode == 0, published.stderr
    assert "published 3 text events" in published.stdout

    async def all_stored() -> bool:
        return len(await stored_keys(text_settings, "text")) == len(SENTENCES)

    asyncio.run(text_worker.wait_for(all_stored, 60, "the published sentences in Redis"))

    found = run_cli(text_settings, "search", "someone performing music", "--space", "text", "-k", "2")
    assert found.returncode == 0, found.stderr
    first_line = found.stdout.splitlines()[0]
    assert "news:1" in first_line, found.stdout

    filtered = run_cli(text_settings, "search", "eggs", "--space", "text", "--filter", "source=elsewhere")
    assert filtered.returncode == 0, filtered.stderr
    assert "no stored items" in filtered.stdout

    tailed = run_cli(text_settings, "tail", "matches", "--from-beginning", "--max", "1", "--timeout", "60")
    assert tailed.returncode == 0, tailed.stderr
    assert "[text] text 'news:" in tailed.stdout


def test_publish_missing_file_fails_plainly(text_settings: Settings) -> None:
    result = run_cli(text_settings, "publish", "image", "/no/such/photo.jpg")
    assert result.returncode == 1
    assert result.stderr.strip() == "embedstream: no such file: /no/such/photo.jpg"


def test_search_unknown_space_fails_plainly(text_settings: Settings) -> None:
    result = run_cli(text_settings, "search", "anything", "--space", "nope")
    assert result.returncode == 1
    assert "unknown space 'nope'; configured spaces: text" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_worker_without_redis_fails_plainly(stack: StackEndpoints) -> None:
    settings = isolated_settings(
        stack, [SpaceSettings(name="hashed", model="hash:8")], redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    result = run_cli(settings, "worker", timeout_s=60)
    assert result.returncode == 1
    assert "embedstream: cannot reach Redis at" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_fail_plainly() -> None:
    result = run_cli(None, "tail", "matches", extra_env={"EMBEDSTREAM_SPACES": "not json"})
    assert result.returncode == 2
    assert "invalid settings" in result.stderr
    assert "spaces" in result.stderr


def test_dev_up_status_down(tmp_path: Path) -> None:
    env = {"EMBEDSTREAM_DATA_DIR": str(tmp_path)}
    kafka_port, redis_port = str(free_port()), str(free_port())
    up = run_cli(None, "dev", "up", "--kafka-port", kafka_port, "--redis-port", redis_port, extra_env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert f"export EMBEDSTREAM_KAFKA_BROKER=127.0.0.1:{kafka_port}" in up.stdout
        status = run_cli(None, "dev", "status", extra_env=env)
        assert status.returncode == 0
        assert f"EMBEDSTREAM_REDIS_URL=redis://127.0.0.1:{redis_port}/0" in status.stdout
    finally:
        down = run_cli(None, "dev", "down", extra_env=env)
    assert down.returncode == 0
    assert "embedded stack stopped" in down.stdout
    after = run_cli(None, "dev", "status", extra_env=env)
    assert after.returncode == 1
    assert "no embedded stack is running" in after.stdout


