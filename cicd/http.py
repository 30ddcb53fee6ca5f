"""Tiny HTTP client for health checks and smoke tests (standard library only).

An HTTP error status is an answer (returned with its body); a service that cannot be reached or
answers something that is not JSON raises :class:`~cicd.errors.ServiceError` with the URL.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from cicd.errors import ServiceError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_json(url: str, body: object | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    """GET (or POST ``body`` as JSON) and return ``(status, decoded body)``; HTTP errors are returned, not raised."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310  # nosec B310 (scheme checked above)
            return int(resp.status), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        err.close()
        try:
            return err.code, json.loads(raw)
        except json.JSONDecodeError:
            return err.code, raw.decode(errors="replace")
    except (OSError, http.client.HTTPException, ValueError) as err:  # refused, reset, timed out, not JSON
        raise ServiceError(url, str(getattr(err, "reason", None) or err) or type(err).__name__) from None


def wait_healthy(url: str, timeout: float, is_alive: Any = None, interval: float = 0.2) -> bool:
    """Poll ``url`` until it answers 200 or ``timeout`` seconds pass (or ``is_alive()`` turns false)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_alive is not None and not is_alive():
            return False
        try:
            if request_json(url, timeout=2.0)[0] == 200:
                return True
        except ServiceError:
            pass
        time.sleep(interval)
    return False
