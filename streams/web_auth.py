"""The optional bearer token in front of a worker's web endpoints."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from streams.logs import RateLimitedLog

logger = logging.getLogger(__name__)

# A browser cannot add an Authorization header to the dashboard's EventSource, so
# the page is opened once as /?token=... and the token then travels in this cookie.
TOKEN_COOKIE = "embedstream_token"
# Paths served without the token: a liveness probe reveals nothing.
OPEN_PATHS = frozenset({"/healthz"})
# Minimum seconds between two warnings about rejected requests.
WARNING_INTERVAL_S = 60.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_middleware(token: str) -> Middleware:
    """Return middleware that responds 401 unless a request carries ``token``.

    The token is accepted as ``Authorization: Bearer <token>`` (Prometheus, curl,
    ``embedstream top``), as the cookie, or once as ``/?token=<token>``, which sets
    the cookie and redirects to ``/`` so the token does not stay in the address bar.
    """
    expected = token.encode()
    warnings = RateLimitedLog(WARNING_INTERVAL_S)

    def matches(candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), expected)

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        bearer = header[len("Bearer "):] if header.startswith("Bearer ") else None
        if matches(bearer) or matches(request.cookies.get(TOKEN_COOKIE)):
            return await handler(request)
        if request.path == "/" and matches(request.query.get("token")):
            response = web.HTTPSeeOther("/")
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
            raise response
        suppressed = warnings.allow("unauthorized")
        if suppressed is not None:
            logger.warning(
                "rejected a web request without a valid token path=%s remote=%s (%d more since the last warning)",
                request.path, request.remote, suppressed,
            )
        raise web.HTTPUnauthorized(
            text="a bearer token is required: send 'Authorization: Bearer <token>' or open /?token=<token>\n",
            headers={"WWW-Authenticate": 'Bearer realm="embedstream"'},
        )

    return check_token
