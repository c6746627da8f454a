"""The Redis client the worker and the CLI share."""

from __future__ import annotations

import redis.asyncio as aioredis

from streams.settings import Settings

# Seconds to wait for a Redis reply before the call fails and its caller retries;
# a KNN search pipeline of a full batch returns in milliseconds on a healthy server.
SOCKET_TIMEOUT_S = 10.0


def connect_redis(settings: Settings) -> aioredis.Redis:
    """Return a client for ``settings.redis_url``; replies stay bytes because vectors are binary."""
    tls: dict[str, str] = {"ssl_ca_certs": settings.redis_tls_cafile} if settings.redis_tls_cafile else {}
    client = aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
        **tls,  # type: ignore[arg-type]
    )
    # from_url lets credentials in the URL win over keyword arguments; the settings
    # are documented to override the URL, so they go into the pool's options directly.
    if settings.redis_username is not None:
        client.connection_pool.connection_kwargs["username"] = settings.redis_username
    if settings.redis_password is not None:
        client.connection_pool.connection_kwargs["password"] = settings.redis_password.get_secret_value()
    return client
