"""A loopback TCP proxy that a test can cut and restore, to make a server unreachable.

The proxy runs its own asyncio event loop on a background thread, so tests call it
from synchronous code and from coroutines alike (from a coroutine, through
``asyncio.to_thread``, because each call waits for the proxy's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

LOOPBACK_HOST = "127.0.0.1"

# Bytes read from one side before they are written to the other.
CHUNK_BYTES = 64 * 1024

# Bound on one call into the proxy's loop and on connecting to the target, s. The
# loop does nothing slow, so a call that takes longer means the proxy is stuck.
CALL_TIMEOUT_S = 10.0

ResultT = TypeVar("ResultT")


class ProxyError(Exception):
    """The proxy cannot do what was asked: it is stopped, or its port is taken."""


class TcpProxy:
    """Forwards connections from 127.0.0.1:``listen_port`` to 127.0.0.1:``target_port``.

    ``cut`` closes every open connection and stops listening, so new connections are
    refused as by a stopped server. ``restore`` listens on the same port again. A
    ``listen_port`` of 0 picks a free port at start; ``port`` returns it.
    """

    def __init__(self, target_port: int, listen_port: int = 0) -> None:
        self.target_port = target_port
        self._port = listen_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        # Counters for tests, written on the proxy's loop and read from any thread.
        self.accepted = 0
        self.target_connect_failures = 0

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port == 0:
            raise ProxyError("the proxy has no port yet; call start() first")
        return self._port

    @property
    def is_cut(self) -> bool:
        return self._loop is not None and self._server is None

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def start(self) -> TcpProxy:
        """Start the proxy's thread and listen. Raise ProxyError if it already runs."""
        if self._loop is not None:
            raise ProxyError("the proxy is already started; call stop() first")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"tcp-proxy-{self.target_port}", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._call(self._listen())
        except BaseException:
            self.stop()
            raise
        logger.info("proxy listening port=%d target_port=%d", self._port, self.target_port)
        return self

    def cut(self) -> None:
        """Close every open connection and refuse new ones. Does nothing if already cut."""
        self._call(self._cut())
        logger.info("proxy cut port=%d target_port=%d", self._port, self.target_port)

    def restore(self) -> None:
        """Accept connections again on the same port. Does nothing if not cut."""
        self._call(self._listen())
        logger.info("proxy restored port=%d target_port=%d", self._port, self.target_port)

    def stop(self) -> None:
        """Close everything and end the proxy's thread. Does nothing if stopped."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                self._call(self._cut())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CALL_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()
            self._loop, self._thread = None, None

    def _call(self, coroutine: Coroutine[Any, Any, ResultT]) -> ResultT:
        if self._loop is None:
            coroutine.close()
            raise ProxyError("the proxy is stopped; call start() first")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT_S)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        try:
            self._server = await asyncio.start_server(self._forward, LOOPBACK_HOST, self._port)
        except OSError as exc:
            raise ProxyError(f"the proxy cannot listen on {LOOPBACK_HOST}:{self._port}: {exc}") from exc
        self._port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.accepted += 1
        target_writer: asyncio.StreamWriter | None = None
        try:
            try:
                target_reader, connected_writer = await asyncio.wait_for(
                    asyncio.open_connection(LOOPBACK_HOST, self.target_port), CALL_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                self.target_connect_failures += 1
                return
            target_writer = connected_writer
            # Each pump ends when its side closes, and the first to end ends the connection.
            pumps = [
                asyncio.ensure_future(_pump(client_reader, connected_writer)),
                asyncio.ensure_future(_pump(target_reader, client_writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for writer in (client_writer, target_writer):
                if writer is not None:
                    _abort(writer)
            self._connections.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes from ``reader`` to ``writer`` until the reader's side closes."""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a connection at once, dropping bytes not yet sent, as a crashed server would."""
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
