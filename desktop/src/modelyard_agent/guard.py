"""Who may call the local server: loopback host names, its own pages and the origins a user allows.

The local API runs models and lists what is pulled, so a web page must not be able to drive it
(the class of Ollama's CVE-2024-28224). `LocalOnly` answers a request only when:

1. **Host** is a loopback name (`localhost`, `127.0.0.1`, `::1`), the address `serve` is bound to,
   or a host name the user allowed. A DNS-rebinding page on `evil.example` whose name now resolves
   to 127.0.0.1 still sends `Host: evil.example`, and is refused.
2. **Origin**, when there is one, is the server's own (`http://` + its Host: a page it serves
   itself) or one the user allowed. Browsers send `Origin` on every cross-origin request and on
   every POST; allowed origins get CORS headers and their preflights answered, nobody else gets any.
3. **POST bodies** are `application/json` (or `+json`), or OIP binary: `application/octet-stream`
   or an `Inference-Header-Content-Length` header (which no page can send without a preflight).
   `text/plain`, forms and multipart, the bodies a page may send cross-origin without a preflight,
   are refused. A POST with no Content-Type at all is accepted only without an `Origin`: that is
   what tritonclient sends, and a browser always sends an Origin with a POST.

Refusals are 403 (`host_not_allowed`, `origin_not_allowed`) or 415 (`unsupported_media_type`), in
OpenAI's error shape under `/v1/` and as `{"error": …}` elsewhere, before any route runs.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard_agent.errors import UsageError

_PORT = re.compile(r"[0-9]{1,5}")  # patterns here are used with fullmatch
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
OIP_HEADER = "inference-header-content-length"
ALLOW_HEADERS = "Authorization, Content-Type, Inference-Header-Content-Length"
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
_ORIGIN = re.compile(r"(https?)://([^/:\[\]]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?")


def host_name(value: str) -> str | None:
    """The host of a Host header value (`name`, `name:port`, `[v6]:port`), lowercased; None if
    it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        inner, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:]))):
            return None
        return _literal(inner)
    name, _, port = value.partition(":")
    if port and not _PORT.fullmatch(port):
        return None
    return _literal(name) or (name if _HOSTNAME.fullmatch(name) else None)


def _literal(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def check_host(value: str) -> str:
    """A host name or IP address the user allows, normalised; UsageError if it is not one."""
    text = value.strip().lower()
    name = _literal(text.strip("[]")) or (text if _HOSTNAME.fullmatch(text) else None)
    if name is None:
        raise UsageError(f"--allow-host {value!r}: give a host name or an IP address, without a "
                         "port or a wildcard")
    return name


def check_origin(value: str) -> str:
    """An origin the user allows (`http(s)://host[:port]`), normalised; UsageError otherwise."""
    text = value.strip().lower().rstrip("/")
    if text == "*":
        raise UsageError("--allow-origin '*' would let every web page drive the local API: "
                         "list each origin (scheme://host[:port])")
    match = _ORIGIN.fullmatch(text)
    if match is None or host_name(match.group(2)) is None:
        raise UsageError(f"--allow-origin {value!r}: give an origin, scheme://host[:port] "
                         "(no path), for example http://localhost:3000")
    return text


@dataclass(frozen=True)
class Access:
    """The host names and web origins the local server answers, beyond loopback and itself."""

    hosts: frozenset[str] = frozenset()
    origins: frozenset[str] = frozenset()

    @classmethod
    def build(cls, hosts: Iterable[str] = (), origins: Iterable[str] = (), bound: str = "") -> Access:
        """Checked settings; the bound address counts as an allowed host unless it is a wildcard."""
        names = {check_host(h) for h in hosts}
        if bound.strip("[]") not in WILDCARDS:
            names.add(check_host(bound))
        return cls(frozenset(names), frozenset(check_origin(o) for o in origins))

    def host_allowed(self, name: str | None) -> bool:
        return name is not None and (name in LOOPBACK or name in self.hosts)


class LocalOnly:
    """ASGI middleware enforcing `Access` on every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = str(scope.get("path", ""))
        host = headers.get("host", "")
        if not self.access.host_allowed(host_name(host)):
            await _refuse(send, path, 403, "host_not_allowed",
                          f"Host {host!r} is not a loopback name or an allowed host "
                          "(serve --allow-host NAME)")
            return
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.lower()
            own = origin in (f"http://{host.lower()}", f"https://{host.lower()}")
            if not own and origin not in self.access.origins:
                await _refuse(send, path, 403, "origin_not_allowed",
                              f"web pages from {origin} may not call this server "
                              "(serve --allow-origin ORIGIN)")
                return
            if not own:
                if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                    await _preflight(send, origin)
                    return
                send = _with_cors(send, origin)
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and not _body_allowed(headers, origin):
            await _refuse(send, path, 415, "unsupported_media_type",
                          f"{scope['method']} bodies must be Content-Type: application/json (or OIP "
                          f"binary), not {headers.get('content-type') or 'none'}")
            return
        await self.app(scope, receive, send)


def _body_allowed(headers: Headers, origin: str | None) -> bool:
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json") or kind == "application/octet-stream":
        return True
    if OIP_HEADER in headers:
        return True
    return not kind and origin is None


def _with_cors(send: Send, origin: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = "Inference-Header-Content-Length"
            headers.add_vary_header("Origin")
        await send(message)

    return wrapped


async def _preflight(send: Send, origin: str) -> None:
    headers = [(b"access-control-allow-origin", origin.encode()),
               (b"access-control-allow-methods", b"GET, POST"),
               (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
               (b"access-control-max-age", b"600"),
               (b"vary", b"Origin"),
               (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def error_document(path: str, message: str, code: str) -> dict[str, object]:
    """An error in the shape of the API `path` belongs to: OpenAI's under /v1, else OIP's
    `{"error": message}` (which is also what the rest of the server answers)."""
    if path == "/v1" or path.startswith("/v1/"):
        return {"error": {"message": message, "type": "invalid_request_error", "param": None,
                          "code": code}}
    return {"error": message}


async def _refuse(send: Send, path: str, status: int, code: str, message: str) -> None:
    body = json.dumps(error_document(path, message, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
