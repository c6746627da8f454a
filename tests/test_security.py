"""Credentials: Kafka TLS/SASL options, Redis ACL users, secret files, and secrets kept out of output."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import faust
import pytest
import redis.asyncio as aioredis

from streams.devstack import StackEndpoints
from streams.kafka_security import aiokafka_security, faust_credentials
from streams.settings import Settings, SpaceSettings
from streams.topics import create_topics
from tests.support import WorkerProcess, isolated_settings, send_records, stored_keys

PASSWORD = "s3cret-Passw0rd-that-must-never-appear"


def test_plaintext_has_no_credentials():
    settings = Settings()
    assert faust_credentials(settings) is None
    assert aiokafka_security(settings) == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_over_tls_options():
    settings = Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="embedder", kafka_sasl_password=PASSWORD,
    )
    options = aiokafka_security(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "embedder"
    assert options["sasl_plain_password"] == PASSWORD
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"


def test_sasl_without_password_is_invalid():
    with pytest.raises(ValueError, match="kafka_sasl_password"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="embedder")


def test_password_read_from_secret_file(tmp_path: Path):
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD + "\n")
    assert Settings(redis_password_file=str(secret)).redis_password.get_secret_value() == PASSWORD
    with pytest.raises(ValueError, match="cannot read redis_password_file"):
        Settings(redis_password_file=str(tmp_path / "missing"))


def test_masked_settings_hide_every_secret():
    settings = Settings(
        redis_password=PASSWORD, kafka_sasl_password=PASSWORD, redis_url=f"redis://user:{PASSWORD}@127.0.0.1:1/0"
    )
    assert PASSWORD not in repr(settings.masked())
    assert PASSWORD not in repr(settings)


async def add_acl_user(redis_url: str, user: str) -> None:
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.execute_command("ACL", "SETUSER", user, "on", f">{PASSWORD}", "~*", "&*", "+@all")
    finally:
        await admin.aclose()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_worker_uses_acl_user_and_never_prints_password(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess], minilm_path: Path
) -> None:
    user = "embedstream-test"
    asyncio.run(add_acl_user(stack.redis_url, user))
    space = SpaceSettings(name="text", model=str(minilm_path), min_similarity=-1.0)
    settings = isolated_settings(
        stack, [space], kafka_session_timeout_s=2.0, kafka_heartbeat_interval_s=0.5,
        redis_username=user, redis_password=PASSWORD, log_level="DEBUG",
    )
    asyncio.run(create_topics(settings))
    worker = start_worker(settings)
    records = [(b"a", b'{"id": "a", "text": "first"}'), (b"b", b"not json at all")]
    asyncio.run(send_records(settings, settings.topic_text, records))

    async def stored() -> bool:
        return len(await stored_keys(settings, "text")) == 1

    asyncio.run(worker.wait_for(stored, 90, "the event stored through the ACL user"))
    worker.stop()
    output = worker.log_text()
    assert "worker starting" in output
    assert PASSWORD not in output, "the Redis password appeared in the worker's output"


def test_wrong_password_fails_plainly(stack: StackEndpoints) -> None:
    import subprocess
    import sys

    settings = isolated_settings(
        stack, [SpaceSettings(name="hashed", model="hash:8")], redis_username="nobody", redis_password=PASSWORD
    )
    env = {"PATH": "/usr/bin:/bin", **settings.environment()}
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert PASSWORD not in result.stdout + result.stderr
    assert "embedstream:" in result.stderr
