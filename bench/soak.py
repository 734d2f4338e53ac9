"""Soak test: thousands of clients connect, chat and disconnect for minutes under gunicorn.

Not part of the test suite (it takes minutes)::

    python -m bench.soak                          # 5 minutes, gunicorn -k gevent
    python -m bench.soak --worker eventlet --duration 600 --concurrency 800

What it does:

1. starts ``gunicorn -w 1`` with a green-thread worker (``-k gevent``, or
   ``-k sio_wsgi.gunicorn.EventletWorker`` with ``--worker eventlet``) serving
   the app defined in this file (``bench.soak:app``, loaded by gunicorn)
   on 127.0.0.1 and a free port;
2. runs a node script (the official ``socket.io-client`` from
   ``tests/js/node_modules``) that keeps ``--concurrency`` clients connected at
   all times, in chat rooms of ``--group`` clients: a room connects (half the
   clients WebSocket-only, half polling then upgrading), every member sends
   ``--messages`` chat lines with an acknowledgement, waits until it has
   received every line of every member of its room, and leaves; then a new room
   takes its place, until ``--duration`` seconds have passed;
3. samples the worker's RSS every second through ``/_soak/stats``;
4. waits for the session table to drain, then ``--settle`` seconds more (cancelled
   timers keep their sessions referenced until they would have fired), and reports:

   - lost messages (chat lines or acks a client never got): must be 0;
   - leaked sessions (Engine.IO sessions and Socket.IO clients left): must be 0;
   - RSS at start (after a warm-up room), every 30 s, peak, at the end and settled;
   - Python objects (after a full gc) at start, at the end and settled, and the
     types that grew most (a leak shows up there, not just in RSS).

Exit status 0 when nothing was lost or leaked. gunicorn and node are killed by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.run import free_port, stop_server, wait_listening

__all__ = ["app", "build_app", "main"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENT_MODULE = ROOT / "tests" / "js" / "node_modules" / "socket.io-client"


# --------------------------------------------------------------------------- the app


def _rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def build_app() -> Any:
    """The soak application: chat rooms plus ``/_soak/stats``.

    Handlers: ``join(room)`` (ack: the room), ``chat({room, from, seq, text})``
    emits ``chat`` to the room (sender included) and acks ``seq``.

    :returns: the WSGI app.
    """
    import sio_wsgi

    sio = sio_wsgi.Server(async_mode=os.environ.get("SOAK_ASYNC") or None)
    counters = {"connects": 0, "disconnects": 0, "chats": 0}

    @sio.event
    def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        counters["connects"] += 1
        if isinstance(auth, dict) and isinstance(auth.get("room"), str):
            sio.enter_room(sid, auth["room"])

    @sio.event
    def disconnect(sid: str, reason: Any = None) -> None:
        counters["disconnects"] += 1

    @sio.on("chat")
    def chat(sid: str, msg: dict[str, Any]) -> int:
        counters["chats"] += 1
        sio.emit("chat", msg, to=msg["room"])
        return int(msg["seq"])

    def stats(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        objects = -1
        types: dict[str, int] = {}
        if "gc=1" in environ.get("QUERY_STRING", ""):  # full collection, then count objects
            gc.collect()
            every = gc.get_objects()
            objects = len(every)
            for obj in every:
                name = type(obj).__qualname__
                types[name] = types.get(name, 0) + 1
            del every
        body = json.dumps(
            {
                "pid": os.getpid(),
                "rss": _rss(),
                "sessions": len(getattr(sio.eio, "sessions", ())),
                "clients": len(sio._clients),
                "objects": objects,
                "types": types,
                **counters,
            }
        ).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return sio_wsgi.WSGIApp(sio, stats)


class _LazyApp:
    """Builds the app on first request (after gunicorn's worker monkey-patched)."""

    def __init__(self) -> None:
        self._app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self._app is None:
            self._app = build_app()
        return self._app(environ, start_response)


app = _LazyApp()


# --------------------------------------------------------------------------- node clients

CLIENT_JS = r"""
"use strict";
const { io } = require(process.env.SIO_CLIENT);
const cfg = JSON.parse(process.argv[2]);
const stats = { rooms: 0, clients: 0, connect_errors: 0, sent: 0, acked: 0, expected: 0,
                received: 0, lost_lines: 0, lost_acks: 0, incomplete_rooms: 0, max_connected: 0 };
let connected = 0, roomSeq = 0, stopAt = Date.now() + cfg.duration * 1000;

function connectOne(room, i) {
  return new Promise((resolve) => {
    const transports = i % 2 ? ["websocket"] : ["polling", "websocket"];
    const s = io(cfg.url, { transports, reconnection: false, forceNew: true, timeout: 20000,
                            auth: { room } });
    const got = new Set();
    s.on("chat", (m) => { got.add(m.from + ":" + m.seq); stats.received++; });
    s.on("connect", () => { connected++;
                            stats.max_connected = Math.max(stats.max_connected, connected);
                            resolve({ s, got }); });
    s.on("connect_error", (e) => { stats.connect_errors++; s.close(); resolve(null); });
  });
}

async function runRoom() {
  const room = "r" + (roomSeq++);
  const joins = Array.from({ length: cfg.group }, (_, i) => connectOne(room, i));
  const members = (await Promise.all(joins))
    .filter(Boolean);
  stats.rooms++; stats.clients += members.length;
  const acks = members.map(() => new Set());
  for (let seq = 0; seq < cfg.messages; seq++) {
    members.forEach((m, idx) => {
      stats.sent++;
      m.s.timeout(30000).emit("chat", { room, from: idx, seq, text: "x".repeat(cfg.size) },
        (err, n) => { if (!err) { acks[idx].add(n); stats.acked++; } });
    });
    await new Promise((r) => setTimeout(r, cfg.interval_ms));
  }
  const want = members.length * cfg.messages;
  stats.expected += want * members.length;
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline &&
         (members.some((m) => m.got.size < want) || acks.some((a) => a.size < cfg.messages))) {
    await new Promise((r) => setTimeout(r, 50));
  }
  let incomplete = false;
  members.forEach((m, idx) => {
    stats.lost_lines += want - m.got.size;
    stats.lost_acks += cfg.messages - acks[idx].size;
    if (m.got.size < want || acks[idx].size < cfg.messages) incomplete = true;
    m.s.disconnect(); connected--;
  });
  if (incomplete) stats.incomplete_rooms++;
}

async function lane() { while (Date.now() < stopAt) await runRoom(); }

(async () => {
  const progress = () => JSON.stringify({ t: Date.now(), connected, ...stats }) + "\n";
  const ticker = setInterval(() => process.stderr.write(progress()), 5000);
  const lanes = Math.max(1, Math.floor(cfg.concurrency / cfg.group));
  await Promise.all(Array.from({ length: lanes }, lane));
  clearInterval(ticker);
  process.stdout.write(JSON.stringify(stats) + "\n");
  process.exit(0);
})();
"""


# --------------------------------------------------------------------------- orchestration


class Sampler:
    """Polls ``/_soak/stats`` every second; keeps the peak RSS.

    :param url: server base URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak_rss = 0
        self.last: dict[str, Any] = {}
        self.peak_sessions = 0
        self.timeline: list[tuple[int, str]] = []  # (seconds, RSS) every 30 s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def get(self, count_objects: bool = False) -> dict[str, Any]:
        """One sample (with a gc pass and an object count when ``count_objects``)."""
        query = "?gc=1" if count_objects else ""
        with urllib.request.urlopen(self.url + "/_soak/stats" + query, timeout=30) as r:
            stats: dict[str, Any] = json.loads(r.read())
        self.last = stats
        self.peak_rss = max(self.peak_rss, stats["rss"])
        self.peak_sessions = max(self.peak_sessions, stats["sessions"])
        return stats

    def _run(self) -> None:
        t0 = time.monotonic()
        next_mark = 30.0
        while not self._stop.wait(1.0):
            with contextlib.suppress(OSError, ValueError):
                stats = self.get()
                if time.monotonic() - t0 >= next_mark:
                    self.timeline.append((int(next_mark), _mb(stats["rss"])))
                    next_mark += 30.0

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(5)


def _start_gunicorn(args: argparse.Namespace, port: int, log: Any) -> subprocess.Popen[bytes]:
    worker = {"gevent": "gevent", "eventlet": "sio_wsgi.gunicorn.EventletWorker"}[args.worker]
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        worker,
        "-w",
        "1",
        "--worker-connections",
        str(args.concurrency * 2 + 100),
        "-b",
        f"127.0.0.1:{port}",
        "--timeout",
        "60",
        "--log-level",
        "warning",
        "bench.soak:app",
    ]
    env = dict(
        os.environ,
        SOAK_ASYNC=args.worker,
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True
    )


def _run_clients(
    args: argparse.Namespace, url: str, duration: float, concurrency: int, workdir: Path
) -> dict[str, Any]:
    script = workdir / "soak_client.js"
    script.write_text(CLIENT_JS)
    cfg = {
        "url": url,
        "duration": duration,
        "concurrency": concurrency,
        "group": args.group,
        "messages": args.messages,
        "interval_ms": args.interval_ms,
        "size": args.size,
    }
    env = dict(os.environ, SIO_CLIENT=str(CLIENT_MODULE))
    proc = subprocess.Popen(
        ["node", str(script), json.dumps(cfg)],
        stdout=subprocess.PIPE,
        stderr=None if args.verbose else subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=duration + 120)
    except subprocess.TimeoutExpired:
        raise RuntimeError("node clients did not finish") from None
    finally:
        stop_server(proc)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError("node clients printed nothing")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _drain(sampler: Sampler, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats = sampler.get()
    while (stats["sessions"] or stats["clients"]) and time.monotonic() < deadline:
        time.sleep(0.5)
        stats = sampler.get()
    return sampler.get(count_objects=True)


def _grown(before: dict[str, int], after: dict[str, int], top: int = 8) -> dict[str, int]:
    """The object types whose count grew most between two samples."""
    growth = {name: n - before.get(name, 0) for name, n in after.items()}
    ranked = sorted(growth.items(), key=lambda item: -item[1])[:top]
    return {name: n for name, n in ranked if n > 0}


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its figures.

    :param argv: command line.
    :returns: exit status (0: nothing lost, nothing leaked).
    """
    p = argparse.ArgumentParser(description="sio_wsgi soak test under gunicorn")
    p.add_argument("--worker", choices=("gevent", "eventlet"), default="gevent")
    p.add_argument("--duration", type=float, default=300.0, help="seconds of churn")
    p.add_argument("--concurrency", type=int, default=500, help="clients connected at a time")
    p.add_argument("--group", type=int, default=10, help="clients per chat room")
    p.add_argument("--messages", type=int, default=5, help="chat lines per client per room")
    p.add_argument("--interval-ms", type=int, default=200, help="pause between chat rounds")
    p.add_argument("--size", type=int, default=100, help="characters per chat line")
    p.add_argument(
        "--settle",
        type=float,
        default=50.0,
        help="seconds to wait after the run before counting objects (past connect_timeout)",
    )
    p.add_argument("--verbose", action="store_true", help="show the clients' progress lines")
    args = p.parse_args(argv)
    if not CLIENT_MODULE.is_dir():
        sys.stderr.write(f"missing {CLIENT_MODULE}: run `cd tests/js && npm ci`\n")
        return 2
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        log_path = workdir / "gunicorn.log"
        with open(log_path, "wb") as log:
            proc = _start_gunicorn(args, port, log)
        sampler = Sampler(url)
        try:
            if not wait_listening(port, proc, timeout=30):
                raise RuntimeError("gunicorn did not answer in 30 s (or exited)")
            _run_clients(args, url, 1, args.group, workdir)  # warm-up: one room
            start = _drain(sampler, 30)
            sampler.peak_rss = start["rss"]
            sampler.start()
            t0 = time.monotonic()
            result = _run_clients(args, url, args.duration, args.concurrency, workdir)
            elapsed = time.monotonic() - t0
            sampler.stop()
            end = _drain(sampler, 60)
            # cancelled timers (connect_timeout: 45 s by default) still hold their
            # sessions until they would have fired: wait them out, then count again
            time.sleep(args.settle)
            settled = sampler.get(count_objects=True)
        finally:
            sampler.stop()
            stop_server(proc)
        tail = log_path.read_text(errors="replace")[-3000:]
    lost = result["lost_lines"] + result["lost_acks"]
    leaked = end["sessions"] + end["clients"]
    figures = {
        "worker": args.worker,
        "duration_s": round(elapsed, 1),
        "clients_connected": result["clients"],
        "rooms": result["rooms"],
        "max_connected_at_once": result["max_connected"],
        "connect_errors": result["connect_errors"],
        "chat_lines_sent": result["sent"],
        "acks_received": result["acked"],
        "chat_lines_expected": result["expected"],
        "chat_lines_received": result["received"],
        "lost_messages": lost,
        "leaked_sessions": leaked,
        "rss_start": _mb(start["rss"]),
        "rss_peak": _mb(sampler.peak_rss),
        "rss_end": _mb(end["rss"]),
        "rss_end_minus_start": _mb(end["rss"] - start["rss"]),
        "rss_every_30s": sampler.timeline,
        "python_objects_start": start["objects"],
        "python_objects_end": end["objects"],
        "python_objects_settled": settled["objects"],
        "rss_settled": _mb(settled["rss"]),
        "object_types_grown_settled": _grown(start["types"], settled["types"]),
        "peak_sessions": sampler.peak_sessions,
    }
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    if "Traceback" in tail:
        sys.stderr.write("gunicorn log tail:\n" + tail + "\n")
    ok = lost == 0 and leaked == 0 and result["connect_errors"] == 0
    sys.stdout.write("SOAK OK\n" if ok else "SOAK FAILED\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
