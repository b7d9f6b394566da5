"""Many learners at once: open N chapter sessions on one course server at the same moment and count
how many render completely (the kernel's first run ends with outcome "succeeded" and no cell shows
an error), how many fail, and how long the slowest took.

    python bench/concurrent_sessions.py                  # 50 sessions of appendix B, then 20 of chapter 0
    python bench/concurrent_sessions.py --chapter 4 --sessions 30

Each session is what a browser tab opens: a websocket to /chapter/<key>/ws sent from the course's own
origin. The server is started here (tests/course_server.py's Server), on a free port, with a throwaway
data folder."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from course_server import Server  # noqa: E402  (the test suite's course server, as bench/ui_latency.py uses)


async def one_session(url: str, chapter: str, n: int, timeout: float) -> dict:
    import websockets

    t0 = time.perf_counter()
    path = f"{url.replace('http', 'ws')}/chapter/{chapter}/ws?session_id=s-bench-{n}-{time.time_ns()}"
    errors: list[str] = []
    try:
        async with websockets.connect(path, origin=url, max_size=None, open_timeout=timeout) as ws:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                data = message.get("data") or message
                output = data.get("output") if isinstance(data, dict) else None
                if isinstance(output, dict) and output.get("channel") == "marimo-error":
                    errors.append(json.dumps(output.get("data"))[:200])
                if message.get("op") == "completed-run":
                    ok = data.get("outcome") == "succeeded" and not errors
                    return {"ok": ok, "seconds": time.perf_counter() - t0,
                            "error": "; ".join(errors) or (data.get("error") or "")}
    except Exception as exc:  # noqa: BLE001 - a closed socket, a timeout: all count as a failed session
        return {"ok": False, "seconds": time.perf_counter() - t0, "error": f"{type(exc).__name__}: {exc}"[:300]}


async def many(url: str, chapter: str, sessions: int, timeout: float) -> list[dict]:
    return await asyncio.gather(*(one_session(url, chapter, n, timeout) for n in range(sessions)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", action="append", help="chapter key (repeatable); default B then 0")
    parser.add_argument("--sessions", type=int, action="append", help="sessions per chapter, in the same order")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a session may take")
    args = parser.parse_args()
    chapters = args.chapter or ["B", "0"]
    counts = args.sessions or ([50, 20] if not args.chapter else [50] * len(chapters))
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"CPU: {model}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as data:
        server = Server(Path(data)).start()
        url = server.url
        try:
            failed = 0
            for chapter, count in zip(chapters, counts):
                t0 = time.perf_counter()
                results = asyncio.run(many(url, chapter, count, args.timeout))
                bad = [r for r in results if not r["ok"]]
                failed += len(bad)
                slowest = max(r["seconds"] for r in results)
                print(f"chapter {chapter}: {count - len(bad)} of {count} sessions rendered completely "
                      f"({time.perf_counter() - t0:.1f} s for all; slowest {slowest:.1f} s)")
                for r in bad[:5]:
                    print(f"  failed after {r['seconds']:.1f} s: {r['error']}")
        finally:
            server.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
