"""The course server obeys only its own pages (course/guard.py): a page of another site, or a DNS
name rebound to 127.0.0.1, can neither drive a chapter's kernel nor change the learner's data, and
no answer carries a CORS header. Checked with plain HTTP and websocket clients against the live
server, and with a real chromium page served from another port that tries to press chapter 9's Start."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from glassformer.course import guard

EVIL = "http://evil.example"


def request(server, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def websocket_status(server, path: str, origin: str | None) -> str:
    """'accepted' with the first message's op, or 'refused <status>'."""
    import websockets

    async def go():
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}{path}", origin=origin,
                                          open_timeout=30, max_size=None) as ws:
                first = await asyncio.wait_for(ws.recv(), 60)
                return "accepted " + first[:40]
        except websockets.exceptions.InvalidStatus as exc:
            return f"refused {exc.response.status_code}"

    # In a thread of its own: the browser tests' Playwright keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


# --- the rules, one request at a time --------------------------------------------------------

def test_verdict_rules_for_hosts_origins_and_methods():
    hosts = guard.allowed_hosts("127.0.0.1")
    own = {"host": "127.0.0.1:8765", "origin": "http://127.0.0.1:8765"}
    assert guard.verdict({"method": "POST", "headers": own}, hosts) is None
    assert guard.verdict({"method": "GET", "headers": {"host": "localhost:8765"}}, hosts) is None
    assert guard.verdict({"method": "GET", "headers": {"host": "[::1]:8765"}}, hosts) is None
    assert "Origin" in guard.verdict({"method": "GET", "headers": {**own, "origin": EVIL}}, hosts)
    assert "Host" in guard.verdict({"method": "GET", "headers": {"host": "rebound.example:8765"}}, hosts)
    # a page on another port of this machine is another origin
    assert "Origin" in guard.verdict({"method": "POST", "headers": {**own, "origin": "http://127.0.0.1:9"}}, hosts)
    # state changes need proof that our page sent them; a websocket always does
    assert "no Origin" in guard.verdict({"method": "POST", "headers": {"host": "127.0.0.1:8765"}}, hosts)
    assert guard.verdict({"method": "POST", "headers": {"host": "127.0.0.1:8765", "sec-fetch-site": "same-origin"}},
                         hosts) is None
    assert "no Origin" in guard.verdict({"method": "GET", "headers": {"host": "127.0.0.1:8765"}}, hosts, websocket=True)


def test_a_server_on_every_address_answers_to_this_machines_addresses_only():
    hosts = guard.allowed_hosts("0.0.0.0")
    real = sorted(guard.machine_addresses() - guard.LOOPBACK)
    assert real, "this machine should have an address besides loopback"
    for address in real[:3]:
        host = f"[{address}]:8765" if ":" in address else f"{address}:8765"
        request = {"method": "POST", "headers": {"host": host, "origin": f"http://{host}"}}
        assert guard.verdict(request, hosts) is None, address
    assert "Host" in guard.verdict({"method": "GET", "headers": {"host": "attacker.example"}}, hosts)


# --- the live server ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/api/progress", "/chapter/0/", "/chapter/9/", "/chapter/4/"])
def test_foreign_origin_is_refused_and_no_cors_header_is_sent(server, path):
    status, headers = request(server, "GET", path, {"Origin": EVIL})
    assert status == 403
    assert not [h for h in headers if h.startswith("access-control-")]
    status, headers = request(server, "GET", path, {"Origin": server.url})
    assert status == 200 and not [h for h in headers if h.startswith("access-control-")]


@pytest.mark.parametrize("chapter", ["0", "4", "9"])
def test_kernel_routes_refuse_foreign_pages(server, chapter):
    route = f"/chapter/{chapter}/api/kernel/set_ui_element_value"
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "marimo-session-id, marimo-server-token"}
    status, headers = request(server, "OPTIONS", route, preflight)
    assert status == 403 and "access-control-allow-origin" not in headers
    body = b'{"objectIds": ["x"], "values": [1]}'
    status, _ = request(server, "POST", route, {"Origin": EVIL, "Content-Type": "application/json",
                                                "Marimo-Session-Id": "s1"}, body)
    assert status == 403
    status, _ = request(server, "POST", route, {"Content-Type": "text/plain", "Marimo-Session-Id": "s1"}, body)
    assert status == 403, "a POST without Origin or Sec-Fetch-Site is not from our pages"


def test_rebound_dns_name_is_refused(server):
    status, _ = request(server, "GET", "/", {"Host": f"attacker.example:{server.port}"})
    assert status == 403
    status, _ = request(server, "POST", "/api/progress/reset",
                        {"Host": f"attacker.example:{server.port}", "Origin": f"http://attacker.example:{server.port}"})
    assert status == 403


def test_progress_reset_only_from_our_pages(server, data_dir, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(data_dir))
    from glassformer.course import store

    store.mark_visited("B")
    status, _ = request(server, "POST", "/api/progress/reset", {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert status == 403 and store.progress()["B"]["visited"]
    status, _ = request(server, "POST", "/api/progress/reset",
                        {"Content-Type": "application/x-www-form-urlencoded"}, b"")
    assert status == 403 and store.progress()["B"]["visited"]
    status, _ = request(server, "POST", "/api/progress/reset", {"Origin": server.url})
    assert status == 303 and "B" not in store.progress()


@pytest.mark.parametrize("chapter", ["0", "9"])
def test_websockets_from_foreign_pages_are_refused(server, chapter):
    path = f"/chapter/{chapter}/ws?session_id=s-guard-{chapter}"
    assert websocket_status(server, path, EVIL) == "refused 403"
    assert websocket_status(server, path, None) == "refused 403"


def test_websocket_from_our_own_page_is_accepted(server):
    assert websocket_status(server, "/chapter/B/ws?session_id=s-guard-own", server.url).startswith(
        'accepted {"op": "kernel-ready"')


# --- a real attack from a real browser -----------------------------------------------------------

# What a page on another site would run to press chapter 9's Start: read the page (for marimo's
# server token), open a kernel session over the websocket, find the Start button's object id in the
# cells' output, and send it a click.
ATTACK = """
async (base) => {
  const report = {read: false, ws: "none", id: "", post: "none"};
  let token = "";
  try {
    const html = await (await fetch(base + "/chapter/9/")).text();
    token = (/data-token="([^"]*)"/.exec(html) || [])[1] || "";
    report.read = true;
  } catch (e) { report.read = String(e); }
  const sid = "s_attack_" + Math.random().toString(36).slice(2);
  report.id = await new Promise((resolve) => {
    const ws = new WebSocket(base.replace("http", "ws") + "/chapter/9/ws?session_id=" + sid);
    const timer = setTimeout(() => { ws.close(); resolve(""); }, 60000);
    ws.onerror = () => { report.ws = "error"; clearTimeout(timer); resolve(""); };
    ws.onopen = () => { report.ws = "open"; };
    ws.onmessage = (m) => {
      const i = m.data.indexOf("Start a new run");
      if (i < 0) return;
      const j = m.data.lastIndexOf("object-id='", i);
      clearTimeout(timer);
      resolve(m.data.slice(j + 11, m.data.indexOf("'", j + 11)));
    };
  });
  if (report.id) {
    try {
      const r = await fetch(base + "/chapter/9/api/kernel/set_ui_element_value", {
        method: "POST",
        headers: {"Content-Type": "application/json", "Marimo-Session-Id": sid, "Marimo-Server-Token": token},
        body: JSON.stringify({objectIds: [report.id], values: [1]})});
      report.post = r.status;
    } catch (e) { report.post = String(e); }
  }
  return report;
}
"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        body = b"<!doctype html><title>a page on another site</title><p>nothing to see</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_page_on_another_port_cannot_press_start(server, data_dir, page):
    from glassformer.course import live_training

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    runs = data_dir / "runs"
    before = sorted(p.name for p in runs.iterdir()) if runs.exists() else []
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        report = page.evaluate(ATTACK, server.url)
        time.sleep(2)  # a started process would have taken the lock by now
        assert live_training.running(data_dir) is None, f"a training run started: {report}"
        after = sorted(p.name for p in runs.iterdir()) if runs.exists() else []
        assert after == before, f"run folders changed: {before} -> {after} ({report})"
        assert report["read"] is not True and report["ws"] == "error" and not report["id"], report
    finally:
        other.shutdown()
        live_training.stop(data_dir)


def test_marimos_event_stream_and_cross_site_subrequests_are_refused(server):
    """GET /chapter/N/sse opens a kernel session like the websocket does: an <img> or <iframe> on another
    site (no Origin, Sec-Fetch-Site: cross-site) must not start one; nor may any other cross-site subrequest."""
    for headers in ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}, {}):
        status, _ = request(server, "GET", "/chapter/0/sse?session_id=s-guard-sse", headers)
        assert status == 403, headers
    status, _ = request(server, "GET", "/chapter/0/", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                                       "Sec-Fetch-Dest": "iframe"})
    assert status == 403, "another site may not frame a chapter"
    # a link from another site to a chapter still opens it
    status, _ = request(server, "GET", "/chapter/0/", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                                       "Sec-Fetch-Dest": "document"})
    assert status == 200


@pytest.mark.parametrize("path", ["/", "/chapter/0/"])
def test_no_page_can_be_framed_by_another_site(server, path):
    _, headers = request(server, "GET", path)
    assert headers.get("x-frame-options") == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in headers.get("content-security-policy", "")
