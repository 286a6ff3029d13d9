"""HTTP/1.1 to the registry on the standard library's `http.client`.

Bodies are read into the caller's own buffers (`Answer.readinto`): a 500 MB blob is a few
thousand Python calls. Through httpx every 64 KiB read went through h11's event parser, and with
sha256 and the write in the same thread `pull` reached a third of `curl -o` (issue 13, item 4);
httpx also took 70 ms to import. What httpx gave is kept:

- each thread keeps one connection per origin alive between requests (a reused connection the
  server closed meanwhile is reopened once, before anything was read);
- TLS is verified against the system's CAs and certifi's bundle when it is installed (httpx's);
- `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` are honoured as urllib reads them
  (httpx read them the same way), CONNECT tunnels for https; only `http://` proxies;
- every socket operation times out.

Transport failures are `ConnectionLost`, the one error a caller may retry.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

from modelyard_agent.errors import TransferError

USER_AGENT = "modelyard-agent"


class ConnectionLost(TransferError):
    """The connection could not be made, or broke before the answer was complete."""


def lost(exc: BaseException) -> ConnectionLost:
    """A transport failure as a short phrase (`ConnectionRefusedError: [Errno 111] ...`)."""
    return ConnectionLost(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


FAILURES = (OSError, http.client.HTTPException)


class Answer:
    """A response whose body is read by the caller, at most once; `close` keeps the connection
    for the next request only when the body was read to its end."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._connection, self._response = connection, response
        self.status = response.status

    def header(self, name: str) -> str:
        """A response header's value; "" when absent."""
        return self._response.getheader(name) or ""

    def readinto(self, buffer: memoryview) -> int:
        """Read up to len(buffer) bytes of the body into it; 0 at its end."""
        try:
            return self._response.readinto(buffer)
        except FAILURES as exc:
            raise lost(exc) from exc

    def read1(self, size: int) -> bytes:
        """What the body has ready, up to `size` bytes, waiting only when nothing is; b"" at its end."""
        try:
            return self._response.read1(size)
        except FAILURES as exc:
            raise lost(exc) from exc

    def close(self) -> None:
        """Done with the answer: the rest of an unread body is never read (it may be endless)."""
        if not self._response.isclosed():
            self._connection.close()  # the next request on it opens a new socket
        self._response.close()


@dataclass
class _Route:
    """A connection to an origin, and how requests on it are written (through a plain-http
    proxy: the absolute URL, and the proxy's credentials)."""

    connection: http.client.HTTPConnection
    absolute: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class Connections:
    """Kept-alive connections, one per thread and origin; closed together by `close`."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.proxies = {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https", "all")}
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None) -> Answer:
        """Send one request; the answer once its status line and headers are in."""
        if self._closed:  # a thread still running after close would reopen a socket nobody closes
            raise ConnectionLost("the client was closed")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransferError(f"cannot fetch {url!r}: not an http(s) URL")
        routes: dict[tuple[str, str], _Route] | None = getattr(self._local, "routes", None)
        if routes is None:
            routes = self._local.routes = {}
        key = (parts.scheme, parts.netloc)
        reused = key in routes
        if not reused:
            routes[key] = self._open(parts)
        route = routes[key]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = f"{parts.scheme}://{parts.netloc}{path}" if route.absolute else path
        sent = {"User-Agent": USER_AGENT, **route.headers, **headers}
        connection = route.connection
        try:
            try:
                connection.request(method, target, body, sent)
                return Answer(connection, connection.getresponse())
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                connection.close()  # the server closed it while it was idle: once more, on a new socket
                connection.request(method, target, body, sent)
                return Answer(connection, connection.getresponse())
        except FAILURES as exc:
            connection.close()
            raise lost(exc) from exc

    def close(self) -> None:
        """Close every connection any thread opened; later requests fail."""
        with self._lock:
            self._closed = True
            for connection in self._opened:
                connection.close()
            self._opened.clear()

    def _proxy(self, parts: SplitResult) -> SplitResult | None:
        found = self.proxies.get(parts.scheme) or self.proxies.get("all")
        if not found or urllib.request.proxy_bypass(parts.hostname or ""):
            return None
        proxy = urlsplit(found if "://" in found else f"http://{found}")
        if proxy.scheme != "http" or not proxy.hostname:
            raise TransferError(f"proxy {found!r}: only http:// proxies are supported")
        return proxy

    def _open(self, parts: SplitResult) -> _Route:
        proxy = self._proxy(parts)
        host, port = (proxy.hostname, proxy.port) if proxy else (parts.hostname, parts.port)
        route: _Route
        if parts.scheme == "https":
            https = http.client.HTTPSConnection(host or "", port, timeout=self.timeout, context=self._context())
            if proxy:
                https.set_tunnel(parts.hostname or "", parts.port, _proxy_auth(proxy))
            route = _Route(https)
        else:
            plain = http.client.HTTPConnection(host or "", port, timeout=self.timeout)
            route = _Route(plain, absolute=True, headers=_proxy_auth(proxy)) if proxy else _Route(plain)
        with self._lock:
            if self._closed:
                raise ConnectionLost("the client was closed")
            self._opened.append(route.connection)
        return route

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            context = ssl.create_default_context()
            try:
                import certifi
            except ImportError:
                pass
            else:
                context.load_verify_locations(certifi.where())
            self._tls = context
        return self._tls


def _proxy_auth(proxy: SplitResult) -> dict[str, str]:
    """The Proxy-Authorization header for a proxy URL with user and password."""
    if proxy.username is None:
        return {}
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode()}
