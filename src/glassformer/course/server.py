"""`glassformer start`: one server for the home page, every chapter, and the progress API.

Chapters are marimo notebooks served as apps (each browser tab gets its own session, in a
thread of this process); the home page and the small JSON API are plain Starlette routes.
The server binds 127.0.0.1 unless told otherwise, and no endpoint runs learner-supplied code
(chapters run in marimo's app mode: the learner can move sliders, not edit cells). Every request
passes `guard.OwnPagesOnly` first: only the course's own pages can change state or reach a kernel.
"""

from __future__ import annotations

import html
import socket
import sys
import threading
import time
import webbrowser

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from glassformer.course import catalog, guard, store

PITCH = ("Every picture in this course is computed live, by a real Transformer, on your own text — "
         "and next to every picture is the actual PyTorch code that produced it. No ML background "
         "needed: if you can read Python, you can follow a token from the keystroke to the next "
         "predicted character, open any tensor along the way, and then train a model yourself.")

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; max-width: 860px; margin: 40px auto;
       padding: 0 20px; color: #1f2937; line-height: 1.55; }
h1 { font-size: 2.1rem; margin-bottom: 0.2rem; } .tag { color: #6b7280; margin-top: 0; }
ol.chapters { list-style: none; padding: 0; } ol.chapters li { display: flex; align-items: baseline; gap: 12px;
  padding: 10px 12px; border-bottom: 1px solid #e5e7eb; } .num { width: 2.2em; font-weight: 700; color: #2563eb; }
.body { flex: 1; } .title a { font-weight: 600; color: #111827; text-decoration: none; }
.title a:hover { text-decoration: underline; } .summary { color: #4b5563; font-size: 0.92rem; }
.status { font-size: 0.85rem; color: #047857; white-space: nowrap; } .coming { color: #9ca3af; }
.coming .num { color: #9ca3af; } .badge { font-size: 0.75rem; background: #f3f4f6; color: #6b7280;
  padding: 1px 6px; border-radius: 8px; } form { display: inline; }
button { background: #fff; border: 1px solid #d1d5db; border-radius: 6px; padding: 4px 10px; cursor: pointer; }
.notice { background: #fef3c7; border: 1px solid #f59e0b; border-radius: 6px; padding: 8px 12px; }
footer { margin-top: 2rem; color: #6b7280; font-size: 0.85rem; }
"""


def home_page() -> str:
    progress = store.progress()
    items = []
    for ch in catalog.CHAPTERS:
        p = progress.get(ch.key, {})
        if ch.built:
            status = []
            if p.get("visited"):
                status.append("visited")
            if p.get("answered"):
                status.append(f"quiz {p['correct']}/{p['answered']}")
            title = f'<a href="{ch.path}">{html.escape(ch.title)}</a>'
            state = f'<span class="status">{" · ".join(status)}</span>'
            cls = ""
        else:
            title, state, cls = html.escape(ch.title), '<span class="badge">coming</span>', ' class="coming"'
        items.append(f'<li{cls}><span class="num">{ch.key}</span><div class="body"><div class="title">{title}</div>'
                     f'<div class="summary">{html.escape(ch.summary)}</div></div>{state}</li>')
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>glassformer</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="/favicon.ico"><style>{STYLE}</style></head><body>
<h1>glassformer</h1><p class="tag">A Transformer you can see through.</p>
<p>{html.escape(PITCH)}</p>
{damaged_notice()}<h2>Chapters</h2><ol class="chapters">{''.join(items)}</ol>
<footer>Progress is saved on this machine ({html.escape(str(store.db_path()))}).
<form method="post" action="/api/progress/reset" onsubmit="return confirm('Forget all quiz answers and visits?')">
<button type="submit">Reset progress</button></form></footer></body></html>"""


def damaged_notice() -> str:
    damaged = store.damaged_files()
    if not damaged:
        return ""
    names = ", ".join(html.escape(str(p)) for p in damaged)
    return (f'<p class="notice">Your progress file was damaged, so it was set aside as {names} and a fresh one '
            f'was started: quiz answers and visits from before are not shown. Nothing was deleted.</p>')


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(home_page())


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#2563eb"/><text x="8" y="12" font-size="11" text-anchor="middle" fill="white" '
           'font-family="sans-serif">g</text></svg>')


async def chapter_without_slash(request: Request) -> RedirectResponse:
    """marimo serves each app at /chapter/<key>/; answer the slash-less form with an absolute redirect."""
    return RedirectResponse(f"/chapter/{request.path_params['key']}/", status_code=307)


async def favicon(request: Request) -> Response:
    return Response(FAVICON, media_type="image/svg+xml")


async def progress(request: Request) -> JSONResponse:
    return JSONResponse(store.progress())


async def reset_progress(request: Request):
    # Only the course's own pages get here: guard.OwnPagesOnly refuses a foreign Origin or Host first.
    store.reset()
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"reset": True})
    return RedirectResponse("/", status_code=303)


async def models(request: Request) -> JSONResponse:
    from glassformer.registry import available_models

    return JSONResponse([e.__dict__ for e in available_models()])


def build_app(hosts: frozenset[str] = guard.LOOPBACK):
    """The whole course as one ASGI app, behind the guard that obeys only its own pages (`hosts`:
    the names the Host header may carry, see guard.allowed_hosts)."""
    import marimo

    serialize_compilation()

    builder = marimo.create_asgi_app(quiet=True)
    for ch in catalog.CHAPTERS:
        if ch.built:
            builder = builder.with_app(path=ch.path.rstrip("/"), root=str(catalog.CHAPTER_DIR / ch.module))
    routes = [
        Route("/", home),
        Route("/favicon.ico", favicon),
        Route("/chapter/{key}", chapter_without_slash),
        Route("/api/progress", progress),
        Route("/api/progress/reset", reset_progress, methods=["POST"]),
        Route("/api/models", models),
        Mount("/", app=builder.build()),
    ]
    return guard.OwnPagesOnly(Starlette(routes=routes), hosts)


_compile_lock = threading.RLock()


def serialize_compilation() -> None:
    """Let one thread at a time run Python's `compile` in this process.

    Every chapter session runs in a thread of this server, and marimo parses and compiles the
    notebook's cells when a session starts. CPython 3.11 keeps the AST converter's recursion counter
    per interpreter, not per thread, so two sessions starting together can corrupt it: an audit saw
    1 of 50 simultaneous sessions died with "SystemError: AST constructor recursion depth mismatch".
    Compiling takes milliseconds; taking turns costs nothing a learner can notice."""
    import builtins

    if getattr(builtins.compile, "serialized", False):
        return
    unlocked = builtins.compile

    def compile(*args, **kwargs):  # noqa: A001 - it is the builtin, taken in turns
        with _compile_lock:
            return unlocked(*args, **kwargs)

    compile.serialized = True
    builtins.compile = compile


def port_free(host: str, port: int) -> bool:
    """True if the course can listen on host:port, False if another program holds the port.

    An address nothing could listen on is the user's mistake and raises BadSetting, saying which:
    a port outside 1-65535, a host name that does not resolve, an address of another machine."""
    import errno

    from glassformer.errors import BadSetting

    if not 1 <= port <= 65535:
        raise BadSetting("port", f"must be between 1 and 65535, got {port}")
    try:  # the address family (IPv4 or IPv6) follows the host
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise BadSetting("host", f"{host} is neither an address nor a name this machine can resolve "
                                 f"({exc.strerror})") from None
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise BadSetting("host", f"{host} is not an address of this machine (127.0.0.1: this machine only; "
                                         f"0.0.0.0: every network it is on)") from None
            raise OSError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    return True


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True) -> int:
    import uvicorn

    if not port_free(host, port):
        print(f"glassformer start: error: port {port} on {host} is in use (is the course already running?); "
              f"choose another with --port", file=sys.stderr)
        return 2
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: other machines on your network can open the course", file=sys.stderr)
    t0 = time.perf_counter()
    from glassformer.registry import load_model

    load_model("course")  # warm the shared model before the first page asks for it
    app = build_app(guard.allowed_hosts(host))
    print(f"glassformer course: {url}  (ready in {time.perf_counter() - t0:.1f}s; Ctrl-C to stop)", flush=True)
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
