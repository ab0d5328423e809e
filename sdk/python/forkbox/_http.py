"""HTTP/1.1 to forkboxd over its Unix socket or TCP.

A new connection for every request: nothing is shared between calls, so a
Client can be used from many threads at once.
"""

import http.client
import json
import os
import socket
import urllib.parse

from ._errors import ForkboxError, error_for_status

DEFAULT_TIMEOUT = 600.0


def default_socket_path():
    """$FORKBOX_SOCKET, else $FORKBOX_HOME/forkboxd.sock."""
    path = os.environ.get("FORKBOX_SOCKET")
    if path:
        return path
    # An empty FORKBOX_HOME counts as unset, as in the C library.
    home = os.environ.get("FORKBOX_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share", "forkbox")
    return os.path.join(home, "forkboxd.sock")


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose peer is a Unix socket."""

    def __init__(self, path, timeout=None):
        # The host name only fills the Host header.
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _query_string(query):
    pairs = [(k, v) for k, v in query.items() if v is not None]
    # quote, not quote_plus: a '+' in a guest path must stay a '+'. '/' is
    # legal in a query and keeps paths readable in the daemon's logs.
    return urllib.parse.urlencode(pairs, safe="/",
                                  quote_via=urllib.parse.quote)


class Transport:
    """Where forkboxd is and how to reach it."""

    def __init__(self, socket_path=None, url=None, token=None,
                 timeout=DEFAULT_TIMEOUT):
        if socket_path and url:
            raise ValueError("give socket_path or url, not both")
        self.token = token
        self.timeout = timeout
        self.prefix = ""
        if url:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an http(s)://host:port URL: {url!r}")
            self.scheme = parts.scheme
            self.host = parts.hostname
            self.port = parts.port
            # A daemon behind a reverse proxy may sit under a path.
            self.prefix = parts.path.rstrip("/")
            self.socket_path = None
            self.where = url
        else:
            self.socket_path = os.fspath(socket_path or default_socket_path())
            self.where = self.socket_path

    def _connection(self, timeout):
        if self.socket_path is not None:
            return UnixHTTPConnection(self.socket_path, timeout=timeout)
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port,
                                               timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout)

    def open(self, method, path, query=None, body=None, json_body=None,
             timeout=None):
        """Send a request; return (connection, response), its body unread.

        A status >= 400 raises the matching ForkboxError. The caller closes
        the connection.
        """
        headers = {"Connection": "close"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = "application/octet-stream"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        target = self.prefix + path
        if query:
            target += "?" + _query_string(query)
        conn = self._connection(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, target, body=body, headers=headers)
            sock = conn.sock
            resp = conn.getresponse()
            # With "Connection: close" the connection hands its socket over
            # to the response and forgets it; keep it reachable so a
            # streaming reader can change its timeout.
            resp.fb_socket = sock
            if resp.status >= 400:
                raise error_for_status(resp.status, resp.read())
        except ForkboxError:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ForkboxError(
                f"{method} {path} to forkboxd at {self.where}: {e!r}") from e
        return conn, resp

    def request(self, method, path, **kw):
        """Send a request; return (status, body bytes)."""
        conn, resp = self.open(method, path, **kw)
        try:
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ForkboxError(
                f"{method} {path} to forkboxd at {self.where}: {e!r}") from e
        finally:
            resp.close()
            conn.close()

    def json(self, method, path, **kw):
        """Send a request; return its JSON body decoded (None when empty)."""
        _, data = self.request(method, path, **kw)
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError as e:
            raise ForkboxError(f"{method} {path}: forkboxd sent a body "
                               f"that is not JSON: {data[:200]!r}") from e
