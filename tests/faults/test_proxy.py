"""The loopback TCP proxy of the outage tests, against an echo server of the test's own."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from tests.faults.proxy import LOOPBACK_HOST, ProxyError, TcpProxy

pytestmark = pytest.mark.timeout(30)

# Seconds a test waits for one read or connect through the proxy.
IO_TIMEOUT_S = 5.0


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(echo, LOOPBACK_HOST, 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK_HOST, port), IO_TIMEOUT_S)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), IO_TIMEOUT_S)
    finally:
        writer.close()


async def test_proxy_forwards_both_ways(echo_port: int) -> None:
    payload = bytes(range(256)) * 1000

    with TcpProxy(echo_port) as proxy:
        received = await round_trip(proxy.port, payload)

    assert received == payload
    assert proxy.accepted == 1


async def test_cut_closes_open_connections(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        reader, writer = await asyncio.open_connection(LOOPBACK_HOST, proxy.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), IO_TIMEOUT_S) == b"ping"

        await asyncio.to_thread(proxy.cut)

        try:
            data = await asyncio.wait_for(reader.read(100), IO_TIMEOUT_S)
        except ConnectionResetError:
            data = b""
        writer.close()
        assert data == b"", "the connection stayed open after cut()"
        assert proxy.open_connections == 0
        assert proxy.is_cut


async def test_cut_refuses_new_connections(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        await asyncio.to_thread(proxy.cut)
        await asyncio.to_thread(proxy.cut)  # A second cut does nothing.

        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(asyncio.open_connection(LOOPBACK_HOST, proxy.port), IO_TIMEOUT_S)


async def test_restore_accepts_on_same_port(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        port = proxy.port
        await asyncio.to_thread(proxy.cut)
        await asyncio.to_thread(proxy.restore)
        await asyncio.to_thread(proxy.restore)  # A second restore does nothing.

        received = await round_trip(proxy.port, b"again")

    assert proxy.port == port
    assert received == b"again"
    assert not proxy.is_cut


async def test_proxy_closes_client_when_target_down() -> None:
    with TcpProxy(free_port()) as proxy:
        reader, writer = await asyncio.open_connection(LOOPBACK_HOST, proxy.port)
        data = await asyncio.wait_for(reader.read(100), IO_TIMEOUT_S)
        writer.close()

    assert data == b""
    assert proxy.target_connect_failures == 1


def test_listen_on_given_port(echo_port: int) -> None:
    port = free_port()

    with TcpProxy(echo_port, listen_port=port) as proxy:
        assert proxy.port == port


def test_stop_frees_port_and_repeats(echo_port: int) -> None:
    proxy = TcpProxy(echo_port).start()
    port = proxy.port
    proxy.stop()
    proxy.stop()  # A second stop does nothing.

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK_HOST, port))


def test_start_twice_raises(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy, pytest.raises(ProxyError, match="already started"):
        proxy.start()


def test_cut_after_stop_raises(echo_port: int) -> None:
    proxy = TcpProxy(echo_port).start()
    proxy.stop()

    with pytest.raises(ProxyError, match="stopped"):
        proxy.cut()


def test_listen_on_taken_port_raises(echo_port: int) -> None:
    with pytest.raises(ProxyError, match=f"cannot listen on 127.0.0.1:{echo_port}"):
        TcpProxy(echo_port, listen_port=echo_port).start()
