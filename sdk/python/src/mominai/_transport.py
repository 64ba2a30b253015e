"""HTTP/1.1 to momin serve, over its Unix socket or over TCP with a bearer token, with the
standard library only."""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any, Dict, Iterator, Optional, Tuple
from urllib.parse import quote, urlencode, urlsplit

from .errors import MominError, from_problem


def default_socket() -> str:
    """Where momin serve listens by default (docs/api.md)."""
    if os.environ.get("MOMIN_SOCKET"):
        return os.environ["MOMIN_SOCKET"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "momin", "api.sock")
    if os.getuid() == 0:
        return "/run/momin/api.sock"
    return f"/tmp/momin-{os.getuid()}/api.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client:
    """One server. Each call opens its own connection, so a Client may be shared by threads.

    By default the server's Unix socket (``socket_path``, else ``MOMIN_SOCKET``, else
    momin serve's default). With ``url`` (``http://HOST:PORT``, else ``MOMIN_API_URL``) the
    server's TCP listener (momin serve --tcp), with ``token`` (else ``MOMIN_API_TOKEN``) sent as
    ``Authorization: Bearer`` on every request."""

    def __init__(self, socket_path: Optional[str] = None, timeout: Optional[float] = 600.0,
                 url: Optional[str] = None, token: Optional[str] = None):
        self.url = None if socket_path else (url or os.environ.get("MOMIN_API_URL") or None)
        self.token = token or os.environ.get("MOMIN_API_TOKEN") or None
        self.socket_path = None if self.url else (socket_path or default_socket())
        self.timeout = timeout
        if self.url:
            parts = urlsplit(self.url)
            if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
                raise ValueError(f"url {self.url!r}: expected http://HOST:PORT (momin serve --tcp)")
            if not self.token:
                raise ValueError(f"url {self.url!r}: a token is needed over TCP (token=..., or MOMIN_API_TOKEN)")
            self._host, self._port = parts.hostname, parts.port or 80

    @property
    def where(self) -> str:
        return self.url or self.socket_path or ""

    def _connection(self) -> http.client.HTTPConnection:
        if self.url:
            return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return _UnixConnection(self.socket_path, self.timeout)

    def path(self, *parts: str, **query: str) -> str:
        text = "/" + "/".join(quote(part, safe="") for part in parts)
        return text + ("?" + urlencode(query) if query else "")

    def _open(self, method: str, path: str, body: Optional[bytes], content_type: Optional[str]) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = self._connection()
        headers = {"Connection": "close"}
        if self.url:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            headers["Content-Length"] = str(len(body))
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as error:
            connection.close()
            raise MominError(0, f"no momin serve at {self.where} ({error.strerror}); start one with: momin serve") from None
        except OSError as error:
            connection.close()
            raise MominError(0, f"momin serve at {self.where}: {error}") from None
        if response.status >= 400:
            raw = response.read()
            connection.close()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"detail": raw.decode("utf-8", "replace").strip()}
            raise from_problem(response.status, problem if isinstance(problem, dict) else {"detail": str(problem)})
        return connection, response

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        connection, response = self._open(method, path, body, "application/json")
        try:
            raw = response.read()
        finally:
            connection.close()
        return json.loads(raw) if raw else None

    def upload(self, path: str, data: bytes) -> Any:
        connection, response = self._open("PUT", path, data, "application/octet-stream")
        try:
            return json.loads(response.read())
        finally:
            connection.close()

    def download(self, path: str) -> bytes:
        connection, response = self._open("GET", path, None, None)
        try:
            # http.client raises IncompleteRead for a chunked body cut short: a failed read.
            return response.read()
        except http.client.IncompleteRead as error:
            raise MominError(0, f"the file was cut short after {len(error.partial)} bytes (the read failed in the sandbox)") from None
        finally:
            connection.close()

    def lines(self, method: str, path: str, payload: Any) -> Iterator[Dict[str, Any]]:
        """The JSON objects of an NDJSON response, one per line, as they arrive."""
        connection, response = self._open(method, path, json.dumps(payload).encode(), "application/json")
        try:
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            connection.close()
