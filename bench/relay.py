"""The session relay's added latency, one long-polling round trip at a time.

::

    python -m bench.relay                                   # sio_wsgi gevent and gthread
    python -m bench.relay --servers sio_wsgi-gevent --pairs 1000

Two nodes of one server (gunicorn ``-w 1`` each, their own ports) share a fresh Redis channel,
as in the ``sticky_*`` scenarios (bench/run.py). One client opens a long-polling session on
the first node (its owner) and then, one request at a time, each on a new connection
(``Connection: close``), sends a round trip: ``POST 42<id>["echo","x"]`` then ``GET`` until
the ack ``43<id>["x"]`` is in. The round trips alternate between the owner (served there) and
the other node (both requests relayed to the owner, over the direct link between the nodes);
the difference of their medians is what the relay adds to a round trip of two requests. The
servers are otherwise idle.

The throughput side (50 clients, ``-w 2`` vs sticky) is in ``python -m bench --scenarios
relay_poll50,sticky_poll50,relay_echo50,sticky_echo50``; both end up in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import (
    ROOT,
    SERVERS,
    ServerSpec,
    check_tools,
    cpu_seconds,
    redis_available,
    start_nodes,
    stop_server,
)

__all__ = ["RoundTrips", "measure", "round_trips", "ws_echoes", "main"]

logger = logging.getLogger(__name__)

PATH = "/socket.io/?EIO=4&transport=polling"


class _Client:
    """HTTP/1.1 requests on a new connection each, to one server.

    :param url: ``http://host:port``.
    :param timeout: seconds per request.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
        self.addr = (host, int(port))
        self.timeout = timeout

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """One request; the connection is closed by the server after the answer.

        :param method: ``GET`` or ``POST``.
        :param path: path and query.
        :param body: the POST body.
        :returns: ``(status, body)``.
        """
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.addr[0]}\r\nConnection: close\r\n"
        if method == "POST":
            head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
        with socket.create_connection(self.addr, timeout=self.timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(head.encode() + b"\r\n" + body)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        raw = b"".join(chunks)
        top, _, rest = raw.partition(b"\r\n\r\n")
        status = int(top.split(b" ", 2)[1]) if top.startswith(b"HTTP/") else 0
        if b"transfer-encoding: chunked" in top.lower():
            rest = _unchunk(rest)
        return status, rest


def _unchunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)


class RoundTrips:
    """Round-trip times of one kind (owner or relayed), milliseconds.

    :param name: ``owner`` or ``relayed``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.post: list[float] = []
        self.get: list[float] = []
        self.pair: list[float] = []

    def summary(self) -> dict[str, Any]:
        """Medians and 90th percentiles.

        :returns: ``n``, ``post_p50``, ``get_p50``, ``pair_p50``, ``pair_p90`` (ms).
        """

        def q(vals: list[float], k: float) -> float | None:
            if not vals:
                return None
            return sorted(vals)[min(len(vals) - 1, int(k * len(vals)))]

        return {
            "n": len(self.pair),
            "post_p50": statistics.median(self.post) if self.post else None,
            "get_p50": statistics.median(self.get) if self.get else None,
            "pair_p50": statistics.median(self.pair) if self.pair else None,
            "pair_p90": q(self.pair, 0.9),
        }


def round_trips(
    owner: str,
    other: str,
    pairs: int,
    warmup: int = 20,
    cpu: Callable[[], float] | None = None,
    block: int = 50,
) -> dict[str, Any]:
    """Open a session on ``owner``; time round trips there and through ``other``, in blocks
    of ``block`` round trips alternating between the two (so drifts of the machine's load hit
    both alike).

    :param owner: the node the session is opened on.
    :param other: a node of the same channel (its requests are relayed).
    :param pairs: round trips of each kind.
    :param warmup: round trips of each kind first, not counted.
    :param cpu: the servers' CPU seconds so far (both nodes summed), read around each block.
    :param block: round trips per block.
    :returns: ``owner`` and ``relayed`` summaries (:meth:`RoundTrips.summary`, with ``cpu_us``:
        servers' CPU per round trip when ``cpu`` is given), ``added_ms`` (the difference of the
        round trips' medians), ``added_per_request_ms`` (of the POST and GET medians, averaged),
        ``added_cpu_us`` (per round trip) and ``seconds``.
    :raises RuntimeError: when the session does not open or a round trip fails.
    """
    here, there = _Client(owner), _Client(other)
    status, body = here.request("GET", PATH)
    if status != 200 or not body.startswith(b"0"):
        raise RuntimeError(f"handshake: {status} {body[:80]!r}")
    sid = json.loads(body[1:])["sid"]
    path = f"{PATH}&sid={sid}"
    here.request("POST", path, b"40")
    _until(here, path, b"40")
    kinds = {"owner": RoundTrips("owner"), "relayed": RoundTrips("relayed")}
    cpu_s = {"owner": 0.0, "relayed": 0.0}
    started = time.monotonic()
    deadline = started + 60 + pairs * 0.2
    ident = 0
    for kind, n, counted in (
        *[(k, warmup, False) for k in kinds],
        *[(k, min(block, pairs - i), True) for i in range(0, pairs, block) for k in kinds],
    ):
        client = here if kind == "owner" else there
        c0 = cpu() if cpu else 0.0
        for _ in range(n):
            if time.monotonic() > deadline:
                raise RuntimeError("round trips took too long")
            ident += 1
            t0 = time.perf_counter()
            status, body = client.request("POST", path, f'42{ident}["echo","x"]'.encode())
            t1 = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"POST ({kind}): {status} {body[:80]!r}")
            _until(client, path, f'43{ident}["x"]'.encode(), on_ping=here)
            t2 = time.perf_counter()
            if counted:
                kinds[kind].post.append((t1 - t0) * 1000)
                kinds[kind].get.append((t2 - t1) * 1000)
                kinds[kind].pair.append((t2 - t0) * 1000)
        if counted and cpu:
            cpu_s[kind] += cpu() - c0
    a, b = kinds["owner"].summary(), kinds["relayed"].summary()
    if cpu:
        for rec, k in ((a, "owner"), (b, "relayed")):
            rec["cpu_us"] = cpu_s[k] / rec["n"] * 1e6 if rec["n"] else None
    return {
        "owner": a,
        "relayed": b,
        "added_ms": b["pair_p50"] - a["pair_p50"],
        "added_per_request_ms": (b["post_p50"] - a["post_p50"] + b["get_p50"] - a["get_p50"]) / 2,
        "added_cpu_us": b["cpu_us"] - a["cpu_us"] if cpu else None,
        "seconds": time.monotonic() - started,
    }


def _until(client: _Client, path: str, want: bytes, on_ping: _Client | None = None) -> None:
    """GET until a packet starting with ``want`` arrives (at most 5 GETs), answering pings.

    :raises RuntimeError: when it does not.
    """
    for _ in range(5):
        status, body = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET: {status} {body[:80]!r}")
        packets = body.split(b"\x1e")
        if b"2" in packets:
            (on_ping or client).request("POST", path, b"3")
        if any(p.startswith(want) for p in packets):
            return
    raise RuntimeError(f"no {want!r} in 5 GETs")


def ws_echoes(
    owner: str,
    other: str,
    echoes: int,
    warmup: int = 50,
    cpu: Callable[[], float] | None = None,
    block: int = 200,
) -> dict[str, Any]:
    """Two sessions opened on ``owner`` by long-polling, one upgraded to WebSocket there, one
    through ``other`` (a relayed byte stream); time echoes on each, one at a time, in
    alternating blocks.

    :param owner: the node the sessions are opened on.
    :param other: the node the relayed WebSocket connects to.
    :param echoes: echoes of each kind.
    :param warmup: echoes of each kind first, not counted.
    :param cpu: the servers' CPU seconds so far, read around each block.
    :param block: echoes per block.
    :returns: ``owner`` and ``relayed``: ``n``, ``p50``, ``p90`` (ms), ``cpu_us`` (servers'
        CPU per echo, with ``cpu``); ``added_ms``, ``added_cpu_us``.
    :raises RuntimeError: when an upgrade or an echo fails.
    """
    import websocket  # websocket-client (the bench extra)

    sockets = {"owner": _upgraded(owner, owner), "relayed": _upgraded(owner, other)}
    lat: dict[str, list[float]] = {"owner": [], "relayed": []}
    cpu_s = {"owner": 0.0, "relayed": 0.0}
    deadline = time.monotonic() + 60 + echoes * 0.02
    ident = 0
    try:
        for kind, n, counted in (
            *[(k, warmup, False) for k in sockets],
            *[(k, min(block, echoes - i), True) for i in range(0, echoes, block) for k in sockets],
        ):
            ws = sockets[kind]
            c0 = cpu() if cpu else 0.0
            for _ in range(n):
                if time.monotonic() > deadline:
                    raise RuntimeError("echoes took too long")
                ident += 1
                want = f"43{ident}["
                t0 = time.perf_counter()
                ws.send(f'42{ident}["echo","x"]')
                for _ in range(5):
                    got = ws.recv()
                    if got == "2":
                        ws.send("3")
                    elif isinstance(got, str) and got.startswith(want):
                        break
                else:
                    raise RuntimeError(f"no ack {ident} ({kind})")
                if counted:
                    lat[kind].append((time.perf_counter() - t0) * 1000)
            if counted and cpu:
                cpu_s[kind] += cpu() - c0
    except (OSError, websocket.WebSocketException) as exc:
        raise RuntimeError(f"WebSocket: {exc}") from exc
    finally:
        for ws in sockets.values():
            ws.close()
    out: dict[str, Any] = {}
    for kind, vals in lat.items():
        vals.sort()
        out[kind] = {
            "n": len(vals),
            "p50": statistics.median(vals),
            "p90": vals[min(len(vals) - 1, int(0.9 * len(vals)))],
            "cpu_us": cpu_s[kind] / len(vals) * 1e6 if cpu and vals else None,
        }
    out["added_ms"] = out["relayed"]["p50"] - out["owner"]["p50"]
    out["added_cpu_us"] = out["relayed"]["cpu_us"] - out["owner"]["cpu_us"] if cpu else None
    return out


def _upgraded(owner: str, via: str) -> Any:
    """A session opened on ``owner`` by long-polling, upgraded to WebSocket on ``via``, its
    namespace connected: the websocket-client connection."""
    import websocket

    status, body = _Client(owner).request("GET", PATH)
    if status != 200 or not body.startswith(b"0"):
        raise RuntimeError(f"handshake: {status} {body[:80]!r}")
    sid = json.loads(body[1:])["sid"]
    url = via.replace("http://", "ws://") + f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
    ws = websocket.create_connection(
        url, timeout=10, sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
    )
    ws.send("2probe")
    if ws.recv() != "3probe":
        raise RuntimeError("no 3probe")
    ws.send("5")
    ws.send("40")
    for _ in range(5):
        got = ws.recv()
        if isinstance(got, str) and got.startswith("40"):
            return ws
    raise RuntimeError("namespace not connected")


def measure(
    spec: ServerSpec, log_dir: Path, pairs: int = 300, echoes: int = 1000
) -> dict[str, Any]:
    """Start two nodes of ``spec`` on a fresh Redis channel, time the round trips (and the
    WebSocket echoes), stop them.

    :param spec: a sio_wsgi server.
    :param log_dir: server logs.
    :param pairs: long-polling round trips of each kind.
    :param echoes: WebSocket echoes of each kind (0: none).
    :returns: :func:`round_trips`'s record with ``websocket``: :func:`ws_echoes`'s, or
        ``{"error": ...}``.
    """
    if not redis_available():
        return {"error": "no Redis"}
    channel = f"sio-bench-rtt-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        nodes = start_nodes(spec, 2, log_dir, channel)
    except RuntimeError as exc:
        return {"error": str(exc)}
    pids = [proc.pid for proc, _ in nodes]

    def cpu() -> float:
        return sum(cpu_seconds(p) for p in pids)

    try:
        rec = round_trips(nodes[0][1], nodes[1][1], pairs, cpu=cpu)
        if echoes:
            rec["websocket"] = ws_echoes(nodes[0][1], nodes[1][1], echoes, cpu=cpu)
        return rec
    except (RuntimeError, OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for proc, _ in nodes:
            stop_server(proc)


def describe(rec: dict[str, Any]) -> str:
    """One line of text for a :func:`measure` record.

    :param rec: the record.
    :returns: text.
    """
    if "error" in rec:
        return f"failed: {rec['error']}"
    a, b = rec["owner"], rec["relayed"]
    cpu = ""
    if rec.get("added_cpu_us") is not None:
        cpu = (
            f"; servers' CPU per round trip {a['cpu_us']:.0f} µs on the owner, "
            f"{b['cpu_us']:.0f} µs relayed (+{rec['added_cpu_us']:.0f} µs)"
        )
    ws = rec.get("websocket")
    if ws:
        wa, wb = ws["owner"], ws["relayed"]
        cpu += (
            f"; WebSocket echo p50 {wa['p50']:.2f} ms on the owner, {wb['p50']:.2f} ms relayed "
            f"(+{ws['added_ms']:.2f} ms)"
        )
        if ws.get("added_cpu_us") is not None:
            cpu += f", CPU per echo {wa['cpu_us']:.0f} / {wb['cpu_us']:.0f} µs"
    return (
        f"round trip (POST + GET, new connections) p50 {a['pair_p50']:.2f} ms on the owner, "
        f"{b['pair_p50']:.2f} ms relayed: +{rec['added_ms']:.2f} ms "
        f"(+{rec['added_per_request_ms']:.2f} ms per request; p90 {a['pair_p90']:.2f} / "
        f"{b['pair_p90']:.2f} ms; {a['n']} round trips each){cpu}"
    )


def main(argv: list[str] | None = None) -> int:
    """Measure and print.

    :param argv: arguments.
    :returns: exit status.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description="the session relay's added latency per round trip")
    p.add_argument("--servers", default="sio_wsgi-gevent,sio_wsgi-gthread")
    p.add_argument("--pairs", type=int, default=300, help="round trips of each kind")
    p.add_argument("--echoes", type=int, default=1000, help="WebSocket echoes of each kind")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--json", default="", help="write the records there too")
    opts = p.parse_args(argv)
    check_tools()
    out: dict[str, list[dict[str, Any]]] = {}
    for spec in [s for s in SERVERS if s.name in opts.servers.split(",")]:
        for _ in range(opts.reps):
            rec = measure(spec, ROOT / "bench" / "logs", opts.pairs, opts.echoes)
            out.setdefault(spec.name, []).append(rec)
            logger.info("%s: %s", spec.name, describe(rec))
    if opts.json:
        Path(opts.json).write_text(json.dumps(out, indent=1))
    return 0 if all("error" not in r for rs in out.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
