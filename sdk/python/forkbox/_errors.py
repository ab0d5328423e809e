"""Exceptions raised by the SDK."""

import http.client
import json


class ForkboxError(Exception):
    """forkboxd refused or failed a request.

    ``status`` is the HTTP status, or None when there was none to give: the
    daemon could not be reached, the connection broke, or a command's output
    stream ended in an ``{"error": ...}`` frame or without its exit code.
    ``message`` is the daemon's one-line ``error`` text when it sent one.
    """

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        self.status = status

    def __repr__(self):
        return (f"{type(self).__name__}({self.message!r}, "
                f"status={self.status!r})")


class NotFound(ForkboxError):
    """404: no such box, pool, image or file."""


class Conflict(ForkboxError):
    """409: the box or pool is not in a state that allows this."""


class PoolExhausted(ForkboxError):
    """429: the pool has ``max`` boxes out and none idle."""


_BY_STATUS = {404: NotFound, 409: Conflict, 429: PoolExhausted}


def error_for_status(status, body):
    """The exception for an error response (status >= 400) and its body."""
    message = None
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            message = doc["error"]
    except ValueError:
        pass
    if not message:
        # Not the documented shape (a proxy, or a daemon bug): the raw text
        # says more than nothing.
        message = body.decode("utf-8", "replace").strip()[:500]
    if not message:
        message = http.client.responses.get(status, "error")
    return _BY_STATUS.get(status, ForkboxError)(message, status)
