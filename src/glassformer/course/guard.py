"""Whom the course server obeys: its own pages, and nobody else.

The server runs beside the learner's browser, and that browser also visits other sites. Any page
it opens can make it send requests to 127.0.0.1: submit a form, `fetch` with `mode: "no-cors"`, open
a websocket. Without a check, a page on another site could press chapter 9's Start, move a slider in
a chapter's kernel, or fill the progress file. The browser says where such a request comes from, so
the server, like Jupyter's, checks three things on every request before any route sees it:

1. **Host.** The Host header must name this server (127.0.0.1, localhost, ::1, or the address it was
   asked to bind; with `--host 0.0.0.0`, any address or name of this machine). A site that makes its
   own DNS name point at 127.0.0.1 (DNS rebinding) sends its own name here, and is refused.
2. **Origin.** A request whose Origin header names another site is refused, whatever its method.
3. **State changes come from our pages.** Any method but GET and HEAD, every websocket and marimo's
   event stream (`.../sse`, a GET that opens a kernel session), must show that a page of this server
   sent it: an Origin equal to our own, or, for a browser request without Origin, `Sec-Fetch-Site:
   same-origin`. A browser request from another site (`Sec-Fetch-Site: cross-site` or `same-site`)
   is refused unless it is the learner following a link to a page (a top-level navigation).
4. **No framing.** Every answer says `X-Frame-Options: SAMEORIGIN` and `frame-ancestors 'self'`, so
   another site cannot show a chapter in a hidden frame and trick the learner into clicking in it.

No response carries a CORS header: marimo's mounts answer `Access-Control-Allow-Origin: *` (its
ASGI builder assumes the embedding app does its own authentication), and this guard strips it, so a
foreign page cannot read a chapter (nor the kernel token inside it) even with a GET.

    >>> hosts = allowed_hosts("127.0.0.1")
    >>> verdict({"method": "POST", "headers": {"host": "127.0.0.1:8765", "origin": "http://evil.example"}}, hosts)
    'its Origin (http://evil.example) is not this server'
    >>> verdict({"method": "POST", "headers": {"host": "127.0.0.1:8765", "origin": "http://127.0.0.1:8765"}}, hosts) is None
    True
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
NO_FRAMING = [(b"x-frame-options", b"SAMEORIGIN"), (b"content-security-policy", b"frame-ancestors 'self'")]


def machine_addresses() -> set[str]:
    """Every name and address other machines may use to reach this one (for `--host 0.0.0.0`)."""
    names = {socket.gethostname(), socket.getfqdn(), f"{socket.gethostname()}.local"}
    try:
        import psutil  # marimo depends on it: the interfaces' own addresses

        for addrs in psutil.net_if_addrs().values():
            names.update(a.address.split("%", 1)[0] for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    except Exception:  # noqa: BLE001 - psutil missing or refused: fall back to the resolver's answer
        pass
    for name in list(names):
        try:
            names.update(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            continue
    return {n.lower() for n in names if n}


def allowed_hosts(bind_host: str) -> frozenset[str]:
    """The names a request's Host header may carry when the server binds `bind_host`."""
    if bind_host in ("0.0.0.0", "::", ""):
        return LOOPBACK | machine_addresses()
    return LOOPBACK | {bind_host.lower().strip("[]")}


def host_name(host_header: str) -> str:
    """'127.0.0.1:8765' -> '127.0.0.1'; '[::1]:8765' -> '::1'; 'localhost' -> 'localhost'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.rsplit(":", 1)[0]
    return host  # a bare name, or an IPv6 address without brackets


def verdict(request: dict, hosts: Iterable[str], websocket: bool = False) -> str | None:
    """Why a request must be refused, or None to let it through.

    `request` holds the method, the path and the headers (lower-case names) of an HTTP request or a
    websocket upgrade. The rules are the module docstring's."""
    headers = request["headers"]
    host = headers.get("host", "")
    if host_name(host) not in hosts:
        return f"its Host ({host or 'none'}) is not this server"
    origin = headers.get("origin")
    own = (f"http://{host}".lower(), f"https://{host}".lower())
    if origin is not None and origin.lower() not in own:
        return f"its Origin ({origin}) is not this server"
    site = headers.get("sec-fetch-site")
    navigation = headers.get("sec-fetch-mode") == "navigate" and headers.get("sec-fetch-dest") == "document"
    if site in ("cross-site", "same-site") and not navigation:
        return f"another site's page sent it (Sec-Fetch-Site: {site})"
    changes_state = (websocket or request["method"] not in SAFE_METHODS
                     or request.get("path", "").rstrip("/").endswith("/sse"))
    if changes_state and origin is None and site not in ("same-origin", "none"):
        return "it does not show that a page of this server sent it (no Origin header)"
    return None


class OwnPagesOnly:
    """ASGI middleware: refuse (403) what `verdict` refuses, and strip CORS headers from every answer."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        websocket = scope["type"] == "websocket"
        why = verdict({"method": scope.get("method", "GET"), "path": scope.get("path", ""), "headers": headers},
                      self.hosts, websocket)
        if why is not None:
            await refuse(scope, send, why)
            return

        async def send_without_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                      if not k.lower().startswith(b"access-control-")] + NO_FRAMING
            await send(message)

        await self.app(scope, receive, send_without_cors)


async def refuse(scope: Scope, send: Send, why: str) -> None:
    body = f"refused: this request did not come from the course's own pages ({why})".encode()
    if scope["type"] == "websocket":
        # Closing before accepting makes the server answer the upgrade with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": why[:120]})
        return
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
