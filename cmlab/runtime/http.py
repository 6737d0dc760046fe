"""A minimal HTTP/1.1 GET over a kept-alive socket, for readings taken every
20 ms (etcd's keys, Patroni's REST API).

Why not ``http.client``: it parses every response's headers with the
``email`` package, about 0.15 ms of CPU per request, which on a 20 ms cadence
is most of a probe's budget (``ci/bench_probes.py``). This reads the status
line, ``Content-Length`` / chunked / read-to-close framing, and nothing else.
Anything richer (POST, redirects, TLS) goes through ``urllib``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Response:
    """One response: ``status``, ``body``, whether the connection may be
    reused (``keep_alive``) and how many bytes of the buffer it took (``size``)."""

    status: int
    body: bytes
    keep_alive: bool
    size: int


def request(host: str, port: int, path: str) -> bytes:
    """The bytes of ``GET path`` (HTTP/1.1, kept alive)."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


def parse_response(buf: bytes, closed: bool = False) -> Response | None:
    """The response at the start of ``buf``, or None while it is incomplete.

    :param closed: the server has closed the connection (ends a body framed
        by the close itself).
    :raises ValueError: not HTTP, or cut short by the close.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if closed:
            raise ValueError("the connection closed before the headers ended")
        return None
    status_line, _, header_text = buf[:end].partition(b"\r\n")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(parts[1])
    headers = {}
    for line in header_text.split(b"\r\n"):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    keep = parts[0] == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
    at = end + 4
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            line_end = buf.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(buf[at:line_end].split(b";", 1)[0], 16)
            if size == 0:
                if buf.find(b"\r\n", line_end + 2) != line_end + 2:
                    break  # no trailers are expected: the empty line is still to come
                return Response(status, body, keep, line_end + 4)
            if len(buf) < line_end + 2 + size + 2:
                break
            body += buf[line_end + 2:line_end + 2 + size]
            at = line_end + 2 + size + 2
    elif b"content-length" in headers:
        size = int(headers[b"content-length"])
        if len(buf) >= at + size:
            return Response(status, buf[at:at + size], keep, at + size)
    elif closed:
        return Response(status, buf[at:], False, len(buf))
    if closed:
        raise ValueError("the connection closed in the middle of the body")
    return None


class HttpGetter:
    """GETs from one ``host:port``, keeping the connection open while the
    server allows it (HTTP/1.1 with a length), else one connection per request.

    Not thread-safe: one per thread.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None

    def get(self, path: str, timeout_s: float) -> Response:
        """``GET path``: the response, whatever its status.

        :param timeout_s: deadline of each socket operation, seconds.
        :raises OSError: no answer, or not HTTP.
        """
        fresh = self._sock is None
        try:
            return self._get(path, timeout_s)
        except (OSError, ValueError) as exc:
            self.close()
            if fresh:
                raise OSError(f"http://{self.host}:{self.port}{path}: {exc}") from None
        # A kept-alive connection the server had closed meanwhile: once more on a new one.
        try:
            return self._get(path, timeout_s)
        except (OSError, ValueError) as exc:
            self.close()
            raise OSError(f"http://{self.host}:{self.port}{path}: {exc}") from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _get(self, path: str, timeout_s: float) -> Response:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.settimeout(timeout_s)
        self._sock.sendall(request(self.host, self.port, path))
        buf = b""
        while True:
            data = self._sock.recv(65536)
            buf += data
            response = parse_response(buf, closed=not data)
            if response is not None:
                break
        if not response.keep_alive:
            self.close()
        return response
