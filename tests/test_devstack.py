"""Tests of the embedded development stack against the real Tansu and Redis binaries."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from redis.commands.search.field import VectorField
from redis.commands.search.index_definition import IndexDefinition, IndexType
from redis.commands.search.query import Query

from streams import devstack
from streams.devstack import EmbeddedStack, StackEndpoints, dev_down, dev_status, dev_up
from streams.errors import StackError
from tests.faults.proxy import TcpProxy

# Tansu delays each JoinGroup response by about half the session timeout, in whole
# seconds, so aiokafka's default of 10 s would add 5 s to every test that joins a group.
SESSION_TIMEOUT_MS = 2000
HEARTBEAT_INTERVAL_MS = 500

# Long enough for a group join and a fetch on a loaded two-core CI machine.
RECEIVE_TIMEOUT_S = 20.0


def unique_name(kind: str) -> str:
    return f"test-{kind}-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_client(endpoints: StackEndpoints) -> redis.Redis:
    return redis.Redis.from_url(endpoints.redis_url, socket_timeout=5)


def redis_answers(endpoints: StackEndpoints) -> bool:
    client = redis_client(endpoints)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def list_topics(endpoints: StackEndpoints) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_broker)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def create_topic(endpoints: StackEndpoints, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """An embedded stack of this test alone, for tests that stop its servers."""
    with EmbeddedStack(tmp_path / "stack") as embedded:
        yield embedded


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback port that a socket of this test listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# Both servers serve requests


def test_endpoints_env_names_settings_variables(stack: StackEndpoints) -> None:
    env = stack.env()
    assert env["EMBEDSTREAM_KAFKA_BROKER"] == stack.kafka_broker
    assert env["EMBEDSTREAM_REDIS_URL"] == stack.redis_url
    assert stack.kafka_broker.startswith("127.0.0.1:"), stack.kafka_broker
    assert stack.redis_url.startswith("redis://127.0.0.1:"), stack.redis_url


@pytest.mark.timeout(60)
async def test_consume_record_in_group_commits_offset(stack: StackEndpoints) -> None:
    topic = unique_name("topic")
    await create_topic(stack, topic)

    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_broker)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_broker,
        group_id=unique_name("group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), RECEIVE_TIMEOUT_S)
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()

    assert record.value == b"hello", record
    assert record.key == b"k1", record
    assert committed == 1, f"committed offset of {topic}[0] is {committed}, expected 1"


@pytest.mark.timeout(30)
def test_knn_query_returns_nearest_vector(stack: StackEndpoints) -> None:
    index = unique_name("index")
    prefix = f"{index}:"
    client = redis_client(stack)
    vectors = {"east": (1.0, 0.0), "north": (0.0, 1.0), "north-east": (0.7, 0.7)}
    try:
        client.ft(index).create_index(
            [VectorField("vec", "FLAT", {"TYPE": "FLOAT32", "DIM": 2, "DISTANCE_METRIC": "COSINE"})],
            definition=IndexDefinition(prefix=[prefix], index_type=IndexType.HASH),
        )
        for name, vector in vectors.items():
            client.hset(f"{prefix}{name}", mapping={"vec": struct.pack("<2f", *vector)})

        query = Query("*=>[KNN 2 @vec $query AS distance]").sort_by("distance").return_fields("distance").dialect(2)
        result = client.ft(index).search(query, {"query": struct.pack("<2f", 0.9, 0.1)})
    finally:
        client.ft(index).dropindex(delete_documents=True)
        client.close()

    ids = [document.id for document in result.docs]
    assert ids == [f"{prefix}east", f"{prefix}north-east"], ids


# Restarting one server


@pytest.mark.timeout(60)
def test_restart_redis_keeps_port_and_drops_data(own_stack: EmbeddedStack) -> None:
    endpoints = own_stack.endpoints
    client = redis_client(endpoints)
    client.set("before-restart", "1")
    client.close()

    own_stack.stop_redis()
    assert not redis_answers(endpoints), "Redis still answers after stop_redis"

    own_stack.start_redis()
    assert own_stack.endpoints == endpoints
    client = redis_client(endpoints)
    try:
        assert client.ping()
        assert client.get("before-restart") is None, "Redis kept data across a restart"
        assert client.execute_command("FT._LIST") == [], "RediSearch is not loaded again"
    finally:
        client.close()


@pytest.mark.timeout(60)
async def test_restart_broker_keeps_port_and_drops_topics(own_stack: EmbeddedStack) -> None:
    endpoints = own_stack.endpoints
    topic = unique_name("topic")
    await create_topic(endpoints, topic)
    assert topic in await list_topics(endpoints)

    await asyncio.to_thread(own_stack.stop_broker)
    await asyncio.to_thread(own_stack.start_broker)

    assert own_stack.endpoints == endpoints
    # The memory storage engine is the only one in this Tansu build (BROKER_STORAGE_ENGINE).
    assert topic not in await list_topics(endpoints), "topic survived a broker restart"


@pytest.mark.timeout(60)
def test_restart_redis_with_persistence_keeps_data_and_index(tmp_path: Path) -> None:
    index = unique_name("index")
    prefix = f"{index}:"
    with EmbeddedStack(tmp_path / "stack", redis_persistence=True) as embedded:
        endpoints = embedded.endpoints
        client = redis_client(endpoints)
        try:
            client.ft(index).create_index(
                [VectorField("vec", "FLAT", {"TYPE": "FLOAT32", "DIM": 2, "DISTANCE_METRIC": "COSINE"})],
                definition=IndexDefinition(prefix=[prefix], index_type=IndexType.HASH),
            )
            client.hset(f"{prefix}east", mapping={"vec": struct.pack("<2f", 1.0, 0.0)})
            client.set("before-restart", "1")
        finally:
            client.close()

        embedded.stop_redis()
        assert not redis_answers(endpoints), "Redis still answers after stop_redis"
        embedded.start_redis()

        client = redis_client(endpoints)
        try:
            assert client.get("before-restart") == b"1", "Redis lost a key across a restart"
            indexes = [name.decode() for name in client.execute_command("FT._LIST")]
            query = Query("*=>[KNN 1 @vec $query AS distance]").return_fields("distance").dialect(2)
            result = client.ft(index).search(query, {"query": struct.pack("<2f", 0.9, 0.1)})
        finally:
            client.close()

    assert indexes == [index], "the search index did not survive the restart"
    assert [document.id for document in result.docs] == [f"{prefix}east"]
    assert (tmp_path / "stack" / "redis" / "appendonlydir").is_dir(), "no append-only file in the state dir"


@pytest.mark.timeout(60)
async def test_advertised_port_routes_clients_through_proxy(tmp_path: Path) -> None:
    kafka_port = free_port()
    with TcpProxy(kafka_port) as proxy:
        embedded = EmbeddedStack(tmp_path / "stack", kafka_port=kafka_port, advertised_kafka_port=proxy.port)
        endpoints = await asyncio.to_thread(embedded.start)
        try:
            # The broker itself, asked on its own port, names the proxy's port.
            devstack._probe_broker(kafka_port, advertised_port=proxy.port)
            with pytest.raises(StackError, match="advertises"):
                devstack._probe_broker(kafka_port)

            topic = unique_name("topic")
            await create_topic(endpoints, topic)
            assert topic in await list_topics(endpoints)
            assert proxy.accepted > 0, "the admin client bypassed the proxy"

            await asyncio.to_thread(proxy.cut)
            with pytest.raises(KafkaConnectionError):
                await asyncio.wait_for(list_topics(endpoints), RECEIVE_TIMEOUT_S)
            await asyncio.to_thread(proxy.restore)
            assert topic in await list_topics(endpoints)
        finally:
            await asyncio.to_thread(embedded.stop)

    assert endpoints.kafka_broker == f"127.0.0.1:{proxy.port}"


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_invalid_advertised_port_raises(tmp_path: Path, port: int) -> None:
    with pytest.raises(StackError, match=f"invalid advertised_kafka_port {port}"):
        EmbeddedStack(tmp_path, advertised_kafka_port=port)


@pytest.mark.timeout(30)
def test_start_redis_while_running_raises(own_stack: EmbeddedStack) -> None:
    with pytest.raises(StackError, match="already running"):
        own_stack.start_redis()


# Lifecycle guards


@pytest.mark.timeout(30)
def test_start_twice_raises(own_stack: EmbeddedStack) -> None:
    with pytest.raises(StackError, match="already started"):
        own_stack.start()


def test_endpoints_before_start_raises(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="not started"):
        _ = EmbeddedStack(tmp_path).endpoints


@pytest.mark.timeout(60)
def test_stop_then_start_reuses_ports(tmp_path: Path) -> None:
    embedded = EmbeddedStack(tmp_path)
    first = embedded.start()
    embedded.stop()
    embedded.stop()  # A second stop does nothing.
    try:
        second = embedded.start()
    finally:
        embedded.stop()
    assert second == first


@pytest.mark.timeout(30)
def test_start_on_taken_port_raises(tmp_path: Path, listening_port: int) -> None:
    embedded = EmbeddedStack(tmp_path, kafka_port=listening_port)
    with pytest.raises(StackError, match=f"port {listening_port} .* already in use"):
        embedded.start()
    assert not (tmp_path / devstack.REDIS_LOG_NAME).exists(), "Redis started anyway"


@pytest.mark.timeout(30)
def test_start_reports_log_when_server_exits(
    tmp_path: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the port check, Redis itself meets the taken port and exits at once.
    monkeypatch.setattr(devstack, "_check_port_free", lambda port, server: None)
    embedded = EmbeddedStack(tmp_path, redis_port=listening_port)
    with pytest.raises(StackError) as raised:
        embedded.start()
    message = str(raised.value)
    assert message.startswith("redis "), message
    assert "exited during start-up" in message, message
    assert f"--port {listening_port}" in message, "the command line is missing"
    assert "Address already in use" in message, "the log tail is missing"


# The detached stack


@pytest.mark.timeout(90)
def test_dev_up_down_status_round_trip(tmp_path: Path) -> None:
    kafka_port, redis_port = free_port(), free_port()
    assert dev_status(tmp_path) is None

    endpoints = dev_up(tmp_path, kafka_port=kafka_port, redis_port=redis_port)
    try:
        record = json.loads((tmp_path / devstack.STATE_FILE_NAME).read_text())
        pids = [server["pid"] for server in record["servers"]]

        assert endpoints.kafka_broker == f"127.0.0.1:{kafka_port}"
        assert endpoints.redis_url == f"redis://127.0.0.1:{redis_port}/0"
        assert dev_status(tmp_path) == endpoints
        assert redis_answers(endpoints), "Redis of dev_up does not answer"
        for pid in pids:
            assert os.getsid(pid) != os.getsid(0), f"pid {pid} shares this session"

        again = dev_up(tmp_path, kafka_port=kafka_port, redis_port=redis_port)
        record_again = json.loads((tmp_path / devstack.STATE_FILE_NAME).read_text())
        assert again == endpoints
        assert [server["pid"] for server in record_again["servers"]] == pids
    finally:
        stopped = dev_down(tmp_path)

    assert stopped, "dev_down found nothing running"
    assert not (tmp_path / devstack.STATE_FILE_NAME).exists()
    for pid in pids:
        assert not pid_exists(pid), f"pid {pid} still runs after dev_down"
    assert dev_status(tmp_path) is None
    assert dev_down(tmp_path) is False


def test_dev_down_without_stack_returns_false(tmp_path: Path) -> None:
    assert dev_down(tmp_path) is False


@pytest.mark.timeout(30)
def test_dev_up_on_taken_port_raises(tmp_path: Path, listening_port: int) -> None:
    with pytest.raises(StackError, match=f"port {listening_port} .* already in use"):
        dev_up(tmp_path, kafka_port=free_port(), redis_port=listening_port)
    assert not (tmp_path / devstack.STATE_FILE_NAME).exists()
    assert dev_status(tmp_path) is None


@pytest.mark.timeout(30)
def test_dev_down_spares_pid_running_other_binary(tmp_path: Path) -> None:
    # A recorded pid that now runs another program, as after a reboot reused it.
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        record = {
            "kafka_broker": "127.0.0.1:1",
            "redis_url": "redis://127.0.0.1:2/0",
            "servers": [{"name": "redis", "pid": stranger.pid, "port": 2, "argv": ["/no/redis-server"]}],
        }
        (tmp_path / devstack.STATE_FILE_NAME).write_text(json.dumps(record))

        assert dev_status(tmp_path) is None
        assert dev_down(tmp_path) is False
        assert stranger.poll() is None, "dev_down signalled a process it did not start"
        assert not (tmp_path / devstack.STATE_FILE_NAME).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_dev_status_with_invalid_state_file_raises(tmp_path: Path) -> None:
    (tmp_path / devstack.STATE_FILE_NAME).write_text("{not json")
    with pytest.raises(StackError, match="invalid"):
        dev_status(tmp_path)
