"""Run the benchmark suite: sio_wsgi vs python-socketio vs Node socket.io, on 127.0.0.1.

One command::

    python -m bench                     # full run: 3 alternating repetitions, writes the docs
    python -m bench --reps 1 --quick    # a short look
    python -m bench --servers sio_wsgi-gevent,socketio-gevent --scenarios echo50

For every repetition the servers are started one after the other (their order rotated each
repetition) and each runs every scenario; a cell's figure is the median of the repetitions, with
the min-max beside it. Server CPU (utime + stime of the server's process tree, from ``/proc``) is
read at the start and end of each measuring window, so CPU per message does not depend on how
fast the load generator is. Results: ``docs/benchmarks.md`` (tables), ``docs/benchmarks.png``
(chart) and ``bench/results.json`` (raw figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Scenario",
    "ServerSpec",
    "SCENARIOS",
    "SERVERS",
    "free_port",
    "redis_available",
    "run_multinode",
    "run_scenario",
    "start_server",
    "stop_server",
    "wait_listening",
    "main",
]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
LOADGEN = NODE_DIR / "loadgen.js"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
GTHREAD_THREADS = 5200
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


# ------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Scenario:
    """One load-generator run.

    :param name: short key, e.g. ``echo50``.
    :param title: the table row's label.
    :param args: load generator arguments.
    :param unit: what ``rate`` counts.
    :param nodes: servers of the same implementation; above 1 they are started afresh for this
        scenario with a Redis client manager on a channel of their own, the load generator's
        receivers are spread over them and its trigger goes to the first.
    """

    name: str
    title: str
    args: dict[str, Any]
    unit: str
    nodes: int = 1


def _scenarios(duration: float, quick: bool) -> list[Scenario]:
    """The scenarios, in the order they run against one server.

    :param duration: seconds of each measuring window.
    :param quick: fewer fanout rounds and clients (smoke runs).
    :returns: the scenario list.
    """
    rounds = 5 if quick else 20
    scale = 0.1 if quick else 1.0

    def n(k: int) -> int:
        return max(10, int(k * scale))

    return [
        Scenario(
            "storm1000",
            f"connect storm, {n(1000)} clients",
            {"scenario": "storm", "clients": n(1000), "hold": 2, "concurrency": 100},
            "conn/s",
        ),
        Scenario(
            "echo50",
            "echo, 50 WebSocket clients",
            {"scenario": "echo", "clients": 50, "duration": duration},
            "acks/s",
        ),
        Scenario(
            "echo500",
            f"echo, {n(500)} WebSocket clients",
            {"scenario": "echo", "clients": n(500), "duration": duration},
            "acks/s",
        ),
        Scenario(
            "echo50_4k",
            "echo 4 KB JSON, 50 WebSocket clients",
            {"scenario": "echo", "clients": 50, "duration": duration, "payload_bytes": 4096},
            "acks/s",
        ),
        Scenario(
            "echo50_4k_deflate",
            "echo 4 KB JSON, permessage-deflate offered, 50 WebSocket clients",
            {
                "scenario": "echo",
                "clients": 50,
                "duration": duration,
                "payload_bytes": 4096,
                "deflate": 1,
            },
            "acks/s",
        ),
        Scenario(
            "poll50",
            "long-polling echo, 50 clients",
            {"scenario": "poll", "clients": 50, "duration": duration},
            "acks/s",
        ),
        Scenario(
            "binary64k",
            "binary echo 64 KiB, 10 clients",
            {"scenario": "binary", "clients": 10, "size": 65536, "duration": duration},
            "MB/s",
        ),
        Scenario(
            "fanout1000",
            f"fanout, {n(1000)} clients",
            {"scenario": "fanout", "clients": n(1000), "rounds": rounds},
            "ms p50",
        ),
        Scenario(
            "fanout5000",
            f"fanout, {n(5000)} clients",
            {
                "scenario": "fanout",
                "clients": n(5000),
                "rounds": max(3, rounds // 2),
                "concurrency": 200,
            },
            "ms p50",
        ),
        Scenario(
            "fanout_redis1000",
            f"fanout across 2 nodes via Redis, {n(1000)} clients",
            {"scenario": "fanout", "clients": n(1000), "rounds": rounds},
            "ms p50",
            nodes=2,
        ),
    ]


SCENARIOS = _scenarios(4.0, False)


# ------------------------------------------------------------------ servers


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server.

    :param name: ``<impl>-<worker>``.
    :param impl: ``sio_wsgi``, ``socketio`` or ``node``.
    :param worker: gunicorn worker class (``-k``), or ``node``.
    :param async_mode: the Socket.IO server's async mode.
    """

    name: str
    impl: str
    worker: str
    async_mode: str

    @property
    def family(self) -> str:
        """The column group (``gevent``, ``eventlet``, ``gthread``, ``node``)."""
        return self.name.split("-", 1)[1]


SERVERS = [
    ServerSpec("sio_wsgi-gevent", "sio_wsgi", "gevent", "gevent"),
    ServerSpec("socketio-gevent", "socketio", "gevent", "gevent"),
    ServerSpec("sio_wsgi-eventlet", "sio_wsgi", "sio_wsgi.gunicorn.EventletWorker", "eventlet"),
    ServerSpec("socketio-eventlet", "socketio", "sio_wsgi.gunicorn.EventletWorker", "eventlet"),
    ServerSpec("sio_wsgi-gthread", "sio_wsgi", "gthread", "threading"),
    ServerSpec("socketio-gthread", "socketio", "gthread", "threading"),
    ServerSpec("node-node", "node", "node", "node"),
]


def free_port() -> int:
    """A free TCP port on 127.0.0.1.

    :returns: the port.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(spec: ServerSpec, port: int) -> list[str]:
    """The server's command line.

    :param spec: the server.
    :param port: where it listens.
    :returns: argv.
    """
    if spec.impl == "node":
        return ["node", str(NODE_DIR / "server.js"), str(port)]
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "1",
        "-k",
        spec.worker,
        "-b",
        f"127.0.0.1:{port}",
        "--worker-connections",
        "20000",
        "--backlog",
        "4096",
        "--timeout",
        "300",
        "--graceful-timeout",
        "2",
        "--keep-alive",
        "75",
        "--log-level",
        "warning",
    ]
    if spec.worker == "gthread":
        cmd += ["--threads", str(GTHREAD_THREADS)]
    return [*cmd, "bench.app:app"]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    """Wait until ``port`` answers HTTP.

    :param port: the port.
    :param proc: the server process (gives up when it exits).
    :param timeout: seconds.
    :returns: whether it is up.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1."):
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def start_server(
    spec: ServerSpec,
    port: int,
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
    log_name: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server and wait for it to listen.

    :param spec: the server.
    :param port: the port.
    :param log_dir: where its stderr goes.
    :param extra_env: more environment for the server (e.g. ``BENCH_REDIS_CHANNEL``).
    :param log_name: the log file's name without ``.log`` (default: the server's name).
    :returns: the process.
    :raises RuntimeError: when it does not come up.
    """
    env = dict(os.environ, BENCH_IMPL=spec.impl, BENCH_ASYNC=spec.async_mode, PYTHONPATH=str(ROOT))
    env.pop("BENCH_REDIS_CHANNEL", None)  # single nodes never share a bus by accident
    env.update(extra_env or {})
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{log_name or spec.name}.log"
    with open(log, "ab") as err:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            _command(spec, port), cwd=ROOT, env=env, stdout=err, stderr=err, start_new_session=True
        )
    if not wait_listening(port, proc):
        stop_server(proc)
        raise RuntimeError(f"{spec.name} did not start (see {log})")
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and its children (its own process group), by PID.

    :param proc: the process started by :func:`start_server`.
    """
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


# ------------------------------------------------------------------ /proc readings


def _children() -> dict[int, list[int]]:
    """ppid -> pids, for every process."""
    out: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(d))
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants.

    :param pid: the root.
    :returns: the pids.
    """
    kids = _children()
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(kids.get(p, []))
    return seen


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process tree, in seconds.

    :param pid: the root.
    :returns: CPU seconds.
    """
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_kib(pid: int) -> int:
    """Resident memory of a process tree, KiB.

    :param pid: the root.
    :returns: KiB.
    """
    total = 0
    for p in tree(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_KIB
        except OSError:
            continue
    return total


def _roots(pid: int | Sequence[int]) -> list[int]:
    return [pid] if isinstance(pid, int) else list(pid)


# ------------------------------------------------------------------ one run


@dataclass
class Result:
    """One scenario against one server, one repetition."""

    server: str
    scenario: str
    rep: int
    ok: bool
    rate: float | None = None  # acks/s, conn/s, MB/s, or deliveries/s
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: float | None = None  # server CPU per message (delivery, connection)
    rss_kib_per_conn: float | None = None
    wire_bytes: float | None = None  # bytes on the wire per ack, both ways (sized payloads)
    deflate: bool | None = None  # permessage-deflate offered: whether every client got it
    connected: int = 0
    error: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def _loadgen_cmd(url: str, args: dict[str, Any], urls: Sequence[str] = ()) -> list[str]:
    cmd = ["node", str(LOADGEN), "--url", url]
    if urls:
        cmd += ["--urls", ",".join(urls)]
    for k, v in args.items():
        cmd += [f"--{k}", str(v)]
    return cmd


class _Window:
    """Reads the load generator's lines and takes the server's readings at its phases.

    :param server_pids: roots of the server process trees (one per node); readings are summed.
    :param rss0: the servers' RSS before the run, KiB.
    :param on_start: called when the measuring window opens.
    :param on_end: called when it closes.
    """

    def __init__(
        self,
        server_pids: list[int],
        rss0: int,
        on_start: Callable[[], None] | None,
        on_end: Callable[[], None] | None,
    ) -> None:
        self.pids = server_pids
        self.hooks = {"start": on_start, "end": on_end}
        self.extra: dict[str, Any] = {"rss0_kib": rss0}
        self.final: dict[str, Any] = {"error": "no result"}
        self.cpu0: float | None = None
        self.phases: dict[str, Callable[[], None]] = {
            "start": self._start,
            "end": self._end,
            "connected": self._connected,
        }

    def feed(self, line: bytes) -> None:
        """Handle one output line.

        :param line: JSON text.
        """
        try:
            rec = json.loads(line)
        except ValueError:
            return
        phase = self.phases.get(rec.get("phase", ""))
        if phase:
            phase()
            hook = self.hooks.get(rec["phase"])
            if hook:
                hook()
        elif rec.get("final"):
            self.final = rec

    def _cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids)

    def _start(self) -> None:
        self.cpu0 = self._cpu()

    def _end(self) -> None:
        if self.cpu0 is not None:
            self.extra["server_cpu_s"] = self._cpu() - self.cpu0

    def _connected(self) -> None:
        time.sleep(1.0)  # let the server settle before reading its memory
        self.extra["rss1_kib"] = sum(rss_kib(p) for p in self.pids)


def run_scenario(
    sc: Scenario,
    server_pid: int | Sequence[int],
    url: str,
    timeout: float = 120.0,
    on_start: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
    urls: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the load generator once and read the server's CPU and memory around its window.

    :param sc: the scenario.
    :param server_pid: root of the server's process tree, or the roots of several nodes' trees
        (their CPU and RSS are summed).
    :param url: the server's base URL (with several nodes: the one the fanout trigger uses).
    :param timeout: seconds before the load generator is killed.
    :param on_start: called when the measuring window opens (e.g. to start a profiler).
    :param on_end: called when it closes.
    :param urls: every node's base URL, for fanout receivers spread over several nodes; empty:
        ``url`` alone.
    :returns: the load generator's final record plus ``server_cpu_s`` and RSS figures.
    """
    pids = _roots(server_pid)
    rss0 = sum(rss_kib(p) for p in pids)
    proc = subprocess.Popen(
        _loadgen_cmd(url, sc.args, urls),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=NODE_DIR,
        start_new_session=True,
    )

    def kill() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    killer = threading.Timer(timeout, kill)
    killer.start()
    window = _Window(pids, rss0, on_start, on_end)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            window.feed(line)
        proc.wait(10)
    finally:
        killer.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
    for pipe in (proc.stdout, proc.stderr):
        if pipe:
            pipe.close()
    if err:
        window.extra["stderr"] = err
    return {**window.final, **window.extra}


def _result(spec: ServerSpec, sc: Scenario, rep: int, rec: dict[str, Any]) -> Result:
    """Turn a load generator record into a :class:`Result`.

    :param spec: the server.
    :param sc: the scenario.
    :param rep: the repetition.
    :param rec: what :func:`run_scenario` returned.
    :returns: the result.
    """
    r = Result(
        spec.name, sc.name, rep, ok="error" not in rec, raw=rec, error=str(rec.get("error", ""))
    )
    r.connected = int(rec.get("connected") or 0)
    want = int(sc.args["clients"])
    if r.ok and r.connected < want:
        r.ok = False
        r.error = f"connected {r.connected}/{want}"
    cpu = rec.get("server_cpu_s")
    kind = sc.args["scenario"]
    r.p50_ms, r.p99_ms = rec.get("p50_ms"), rec.get("p99_ms")
    count = rec.get("count") or 0
    if kind in ("echo", "poll", "binary"):
        r.rate = rec.get("mb_s") if kind == "binary" else rec.get("rate")
        if cpu is not None and count:
            r.cpu_us = cpu / count * 1e6
        if not count:
            r.ok = False
        _payload_checks(r, sc, rec, count)
    elif kind == "fanout":
        r.rate = count / rec["elapsed_s"] if count and rec.get("elapsed_s") else None
        if cpu is not None and count:
            r.cpu_us = (
                cpu / (count + r.connected) * 1e6
            )  # the warm-up round is inside the window too
        if rec.get("timeouts") or not rec.get("rounds"):
            r.ok = False
            r.error = r.error or f"timeouts {rec.get('timeouts')}"
    elif kind == "storm":
        r.rate = rec.get("rate")
        if cpu is not None and r.connected:
            r.cpu_us = cpu / r.connected * 1e6
        if "rss1_kib" in rec and r.connected:
            r.rss_kib_per_conn = (rec["rss1_kib"] - rec["rss0_kib"]) / r.connected
    return r


def _payload_checks(r: Result, sc: Scenario, rec: dict[str, Any], count: int) -> None:
    """For echo with a sized payload: wire bytes per ack, the acks' length check, and whether
    the permessage-deflate offer was accepted by the server for every client.

    :param r: the result, updated.
    :param sc: the scenario.
    :param rec: the load generator's record.
    :param count: acks in the window.
    """
    if not sc.args.get("payload_bytes"):
        return
    if count and "wire_in_bytes" in rec:
        r.wire_bytes = (rec["wire_in_bytes"] + rec["wire_out_bytes"]) / count
    if rec.get("bad_acks") and r.ok:
        r.ok = False
        r.error = f"{rec['bad_acks']} acks of the wrong length"
    if sc.args.get("deflate"):
        r.deflate = r.connected > 0 and rec.get("deflate_clients") == r.connected


def _warm(url: str, server_pid: int) -> None:
    """A few connections and acks, so imports and first-use costs are out of the way.

    :param url: the server.
    :param server_pid: the server.
    """
    run_scenario(
        Scenario(
            "warm",
            "warm-up",
            {"scenario": "echo", "clients": 5, "duration": 0.3, "warmup": 0.2},
            "",
        ),
        server_pid,
        url,
        timeout=30,
    )


def run_server(
    spec: ServerSpec, scenarios: Sequence[Scenario], rep: int, log_dir: Path
) -> list[Result]:
    """Start one server, run every single-node scenario against it, stop it; then run each
    multi-node scenario on fresh nodes (:func:`run_multinode`; not for the Node server, which
    has no Redis adapter here: its cell stays empty).

    :param spec: the server.
    :param scenarios: what to run.
    :param rep: the repetition number.
    :param log_dir: server logs.
    :returns: one result per scenario run.
    """
    single = [sc for sc in scenarios if sc.nodes == 1]
    out = _run_single(spec, single, rep, log_dir) if single else []
    for sc in scenarios:
        if sc.nodes == 1:
            continue
        if spec.impl == "node":
            logger.info("rep %d %-18s %-11s skipped (no Redis adapter)", rep, spec.name, sc.name)
            continue
        res = run_multinode(spec, sc, rep, log_dir)
        logger.info("rep %d %-18s %-11s %s", rep, spec.name, sc.name, _brief(res))
        out.append(res)
        time.sleep(0.5)
    return out


def redis_available(timeout: float = 2.0) -> bool:
    """Whether Redis answers ``PING`` on ``REDIS_HOST:REDIS_PORT``.

    :param timeout: seconds.
    :returns: True when it does.
    """
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def run_multinode(spec: ServerSpec, sc: Scenario, rep: int, log_dir: Path) -> Result:
    """Start ``sc.nodes`` servers of ``spec`` sharing a fresh Redis channel, run ``sc``, stop them.

    The receivers are spread round-robin over the nodes, the trigger goes to the first node; the
    server CPU is summed over every node's process tree.

    :param spec: the server (a gunicorn one: the Node server has no Redis adapter here).
    :param sc: the scenario (``sc.nodes`` > 1).
    :param rep: the repetition number.
    :param log_dir: server logs (one per node).
    :returns: the result; ``raw`` holds the channel and the clients per node.
    """
    if not redis_available():
        return Result(
            spec.name, sc.name, rep, ok=False, error=f"no Redis on {REDIS_HOST}:{REDIS_PORT}"
        )
    channel = f"sio-bench-{os.getpid()}-{secrets.token_hex(4)}"  # unique to this run
    env = {
        "BENCH_REDIS_CHANNEL": channel,
        "BENCH_REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
    }
    nodes: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for i in range(sc.nodes):
            port = free_port()  # the previous node already listens: no clash
            proc = start_server(spec, port, log_dir, env, f"{spec.name}-node{i}")
            nodes.append((proc, f"http://127.0.0.1:{port}"))
        for proc, url in nodes:
            _warm(url, proc.pid)
        if any(proc.poll() is not None for proc, _ in nodes):
            return Result(spec.name, sc.name, rep, ok=False, error="server died")
        urls = [url for _, url in nodes]
        rec = run_scenario(sc, [proc.pid for proc, _ in nodes], urls[0], urls=urls)
        rec["redis_channel"] = channel
        return _result(spec, sc, rep, rec)
    except RuntimeError as exc:
        logger.warning("%s", exc)
        return Result(spec.name, sc.name, rep, ok=False, error="server did not start")
    finally:
        for proc, _ in nodes:
            stop_server(proc)


def _run_single(
    spec: ServerSpec, scenarios: Sequence[Scenario], rep: int, log_dir: Path
) -> list[Result]:
    """Start one server, run every scenario against it, stop it.

    :param spec: the server.
    :param scenarios: what to run (single-node ones).
    :param rep: the repetition number.
    :param log_dir: server logs.
    :returns: one result per scenario.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        proc = start_server(spec, port, log_dir)
    except RuntimeError as exc:
        logger.warning("%s", exc)
        return [
            Result(spec.name, sc.name, rep, ok=False, error="server did not start")
            for sc in scenarios
        ]
    out = []
    try:
        _warm(url, proc.pid)
        for sc in scenarios:
            if proc.poll() is not None:
                out.append(Result(spec.name, sc.name, rep, ok=False, error="server died"))
                continue
            rec = run_scenario(sc, proc.pid, url)
            res = _result(spec, sc, rep, rec)
            logger.info("rep %d %-18s %-11s %s", rep, spec.name, sc.name, _brief(res))
            out.append(res)
            time.sleep(0.5)
    finally:
        stop_server(proc)
    return out


def _brief(r: Result) -> str:
    if not r.ok:
        return f"FAILED ({r.error})"
    bits = [f"rate={r.rate:.1f}" if r.rate is not None else ""]
    if r.p50_ms is not None:
        bits.append(f"p50={r.p50_ms:.1f}ms p99={(r.p99_ms or 0):.1f}ms")
    if r.cpu_us is not None:
        bits.append(f"cpu={r.cpu_us:.1f}us")
    if r.rss_kib_per_conn is not None:
        bits.append(f"rss/conn={r.rss_kib_per_conn:.1f}KiB")
    return " ".join(bits)


# ------------------------------------------------------------------ aggregation and docs


def _median(vals: list[float]) -> tuple[float, float, float] | None:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def aggregate(results: list[Result]) -> dict[tuple[str, str], dict[str, Any]]:
    """Median and min-max per (server, scenario) over the repetitions that succeeded.

    :param results: every run.
    :returns: per cell: ``rate``, ``p50``, ``p99``, ``cpu``, ``rss`` (each ``(median, min, max)`` or
        None), ``n`` (successful runs) and ``runs``.
    """
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    keys = {(r.server, r.scenario) for r in results}
    for key in keys:
        rs = [r for r in results if (r.server, r.scenario) == key]
        ok = [r for r in rs if r.ok]
        cells[key] = {
            "rate": _median([r.rate for r in ok]),  # type: ignore[misc]
            "p50": _median([r.p50_ms for r in ok]),  # type: ignore[misc]
            "p99": _median([r.p99_ms for r in ok]),  # type: ignore[misc]
            "cpu": _median([r.cpu_us for r in ok]),  # type: ignore[misc]
            "rss": _median([r.rss_kib_per_conn for r in ok]),  # type: ignore[misc]
            "wire": _median([r.wire_bytes for r in ok]),  # type: ignore[misc]
            # permessage-deflate offered and declined (in any successful run)
            "no_deflate": any(r.deflate is False for r in ok),
            "n": len(ok),
            "runs": len(rs),
            "errors": sorted({r.error for r in rs if not r.ok}),
        }
    return cells


def _k(v: float) -> str:
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def _fmt(cell: dict[str, Any] | None, kind: str) -> str:
    """One table cell.

    :param cell: the aggregate, or None.
    :param kind: the scenario type.
    :returns: Markdown text.
    """
    if cell is None:
        return "-"
    if not cell["n"]:
        return "failed: " + "; ".join(cell["errors"])[:60]
    rate, p50, p99, cpu, rss = (cell[k] for k in ("rate", "p50", "p99", "cpu", "rss"))
    cpu_s = f" ({cpu[0]:.0f} µs)" if cpu else ""
    if kind == "fanout":
        text = f"{p50[0]:.0f}/{p99[0]:.0f} ms [{p50[1]:.0f}-{p50[2]:.0f}]{cpu_s}"
    elif kind == "storm":
        text = (
            f"{_k(rate[0])}/s [{_k(rate[1])}-{_k(rate[2])}], {rss[0]:.0f} KiB"
            if rss
            else f"{_k(rate[0])}/s"
        )
        text += cpu_s
    elif kind == "binary":
        text = f"{rate[0]:.0f} MB/s [{rate[1]:.0f}-{rate[2]:.0f}]{cpu_s}"
    else:
        text = f"{_k(rate[0])} [{_k(rate[1])}-{_k(rate[2])}]{cpu_s}"
        if p99 and kind == "echo":
            text += f" p99 {p99[0]:.0f} ms"
    if cell.get("wire"):
        text += f", {cell['wire'][0]:.0f} B/ack"
    if cell.get("no_deflate"):
        text += ", no deflate (offer declined)"
    if cell["n"] < cell["runs"]:
        text += f" ({cell['runs'] - cell['n']} of {cell['runs']} failed)"
    return text


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, kind: str) -> str:
    """sio_wsgi / python-socketio for one cell (throughput: higher is better; fanout: latency
    ratio, lower is better, so it is shown as the speed-up ``b/a``). None (``-``) when only one
    of them got the permessage-deflate it was offered.

    :param a: sio_wsgi's aggregate.
    :param b: python-socketio's aggregate.
    :param kind: the scenario type.
    :returns: text such as ``3.2x``.
    """
    if not a or not b or not a["n"] or not b["n"]:
        return "-"
    if a.get("no_deflate") != b.get("no_deflate"):  # compressed vs not: not the same work
        return "-"
    if kind == "fanout":
        return f"{b['p50'][0] / a['p50'][0]:.1f}x"
    return f"{a['rate'][0] / b['rate'][0]:.1f}x"


def write_markdown(
    path: Path,
    cells: dict[tuple[str, str], dict[str, Any]],
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    meta: dict[str, Any],
) -> None:
    """Write ``docs/benchmarks.md``.

    :param path: the file.
    :param cells: the aggregates.
    :param scenarios: row order.
    :param servers: which servers ran.
    :param meta: run facts (reps, date, load generator ceiling).
    """
    names = [s.name for s in servers]
    families = [
        f
        for f in ("gevent", "eventlet", "gthread")
        if f"sio_wsgi-{f}" in names or f"socketio-{f}" in names
    ]
    head = ["scenario"]
    for f in families:
        head += [f"sio_wsgi {f}", f"python-socketio {f}", "ratio"]
    if "node-node" in names:
        head.append("Node socket.io 4.8")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench` (bench/run.py); do not edit by hand.",
        "",
        f"Run: {meta['date']}, {meta['cpus']} CPUs, {meta['reps']} alternating repetitions, "
        f"{meta['duration']} s measuring windows, one gunicorn worker (`-w 1`) per server, "
        "one Node load generator process (bench/node/loadgen.js) speaking the Engine.IO v4 / "
        "Socket.IO v5 wire protocol over raw WebSocket and HTTP long-polling, all on 127.0.0.1.",
        "",
        "Each cell: median of the repetitions [min-max], then (server CPU per message: µs per "
        "ack, per "
        "delivery for fanout, per connection for the connect storm). Fanout: one `emit` to "
        "every client, "
        "trigger-to-last-delivery p50/p99 ms [p50 min-max]. Connect storm: connections/s and RSS "
        "growth per idle connection. Ratio = sio_wsgi / python-socketio (throughput), or "
        "python-socketio p50 / sio_wsgi p50 (fanout): above 1 means sio_wsgi is faster.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for sc in scenarios:
        kind = sc.args["scenario"]
        row = [f"{sc.title} ({sc.unit})"]
        for f in families:
            a, b = cells.get((f"sio_wsgi-{f}", sc.name)), cells.get((f"socketio-{f}", sc.name))
            row += [_fmt(a, kind), _fmt(b, kind), ratio(a, b, kind)]
        if "node-node" in names:
            row.append(_fmt(cells.get(("node-node", sc.name)), kind))
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Load generator ceiling",
        "",
        meta.get("ceiling_text", "not measured in this run"),
        "",
    ]
    lines += ["## Notes", "", *[f"- {n}" for n in meta.get("notes", [])], ""]
    path.write_text("\n".join(lines))


def write_chart(
    path: Path,
    cells: dict[tuple[str, str], dict[str, Any]],
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
) -> None:
    """Write ``docs/benchmarks.png``: server CPU per message (log scale), per scenario and server.

    :param path: the file.
    :param cells: the aggregates.
    :param scenarios: the scenarios.
    :param servers: the servers.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.8 / max(1, len(servers))
    for ax, metric, label in (
        (axes[0], "cpu", "server CPU per message, µs (lower is better)"),
        (axes[1], "thr", "throughput relative to Node socket.io (higher is better)"),
    ):
        for i, spec in enumerate(servers):
            ys = []
            for sc in scenarios:
                c = cells.get((spec.name, sc.name))
                if metric == "cpu":
                    ys.append(c["cpu"][0] if c and c["n"] and c["cpu"] else 0)
                else:
                    node = cells.get(("node-node", sc.name))
                    ys.append(_relative(c, node, sc.args["scenario"]))
            xs = [j + i * width for j in range(len(scenarios))]
            ax.bar(xs, ys, width, label=spec.name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scenarios))])
        ax.set_xticklabels([sc.name for sc in scenarios], rotation=30, ha="right")
        ax.set_ylabel(label)
        if metric == "cpu":
            ax.set_yscale("log")
    for j, sc in enumerate(scenarios):  # e.g. the Redis fanout: Node has no adapter here
        node = cells.get(("node-node", sc.name))
        if not node or not node["n"]:
            axes[1].text(j + 0.4 - width / 2, 0.02, "no Node\nfigure", ha="center", fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle(
        "sio_wsgi vs python-socketio vs Node socket.io (median of runs; failed cells are 0)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _relative(c: dict[str, Any] | None, node: dict[str, Any] | None, kind: str) -> float:
    if not c or not node or not c["n"] or not node["n"]:
        return 0.0
    if kind == "fanout":
        return float(node["p50"][0] / c["p50"][0])
    return float(c["rate"][0] / node["rate"][0])


# ------------------------------------------------------------------ ceiling


def measure_ceiling(duration: float) -> dict[str, Any]:
    """The load generator against ``bench/node/trivial.js`` (canned replies): its own ceiling.

    :param duration: seconds per measurement.
    :returns: per scenario the load generator's record (acks/s, MB/s, fanout p50 ms, its own
        CPU %).
    """
    port = free_port()
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        ["node", str(NODE_DIR / "trivial.js"), str(port)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    out: dict[str, Any] = {}
    try:
        if not wait_listening(port, proc):
            return {"error": "trivial server did not start"}
        url = f"http://127.0.0.1:{port}"
        for sc in (
            Scenario("echo50", "", {"scenario": "echo", "clients": 50, "duration": duration}, ""),
            Scenario("echo500", "", {"scenario": "echo", "clients": 500, "duration": duration}, ""),
            Scenario(
                "binary64k", "", {"scenario": "binary", "clients": 10, "duration": duration}, ""
            ),
            Scenario("fanout5000", "", {"scenario": "fanout", "clients": 5000, "rounds": 10}, ""),
        ):
            out[sc.name] = run_scenario(sc, proc.pid, url)
    finally:
        stop_server(proc)
    return out


def _ceiling_text(c: dict[str, Any]) -> str:
    if "error" in c:
        return str(c["error"])
    e, e5, b, f = (c.get(k, {}) for k in ("echo50", "echo500", "binary64k", "fanout5000"))
    return (
        "The same load generator against `bench/node/trivial.js` (a raw `ws` server with canned "
        "replies, sharing the 2 cores with the load generator): "
        f"echo 50 clients {e.get('rate', 0):.0f} acks/s (load generator CPU "
        f"{e.get('loadgen_cpu_pct', 0):.0f}%), "
        f"echo 500 clients {e5.get('rate', 0):.0f} acks/s ({e5.get('loadgen_cpu_pct', 0):.0f}%), "
        f"binary 64 KiB {b.get('mb_s', 0):.0f} MB/s ({b.get('loadgen_cpu_pct', 0):.0f}%), "
        f"fanout to 5000 clients p50 {f.get('p50_ms') or 0:.0f} ms "
        f"(= {5000 / max(f.get('p50_ms') or 1, 1e-3) * 1000:.0f} deliveries/s). A server figure "
        "near these is "
        "limited by the load generator, so compare CPU per message there."
    )


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    :param argv: arguments.
    :returns: the options.
    """
    p = argparse.ArgumentParser(description="sio_wsgi benchmark suite")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0, help="seconds per measuring window")
    p.add_argument("--servers", default=",".join(s.name for s in SERVERS))
    p.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS))
    p.add_argument("--quick", action="store_true", help="10x fewer clients, fewer rounds")
    p.add_argument("--no-ceiling", action="store_true")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--chart", default=str(ROOT / "docs" / "benchmarks.png"))
    p.add_argument("--json", default=str(ROOT / "bench" / "results.json"))
    return p.parse_args(argv)


def check_tools() -> None:
    """Fail early when node or the npm packages are missing.

    :raises SystemExit: with what to do.
    """
    if not shutil.which("node"):
        raise SystemExit("node is required")
    if (
        not (NODE_DIR / "node_modules" / "ws").is_dir()
        or not (NODE_DIR / "node_modules" / "socket.io").is_dir()
    ):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)


def main(argv: list[str] | None = None) -> int:
    """Run the suite and write the docs.

    :param argv: arguments.
    :returns: exit status.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    opts = parse_args(argv)
    check_tools()
    wanted_sc = opts.scenarios.split(",")
    scenarios = [s for s in _scenarios(opts.duration, opts.quick) if s.name in wanted_sc]
    servers = [s for s in SERVERS if s.name in opts.servers.split(",")]
    log_dir = ROOT / "bench" / "logs"
    results: list[Result] = []
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "reps": opts.reps,
        "duration": opts.duration,
        "notes": NOTES,
    }
    if not opts.no_ceiling:
        ceiling = measure_ceiling(opts.duration)
        meta["ceiling"] = ceiling
        meta["ceiling_text"] = _ceiling_text(ceiling)
        logger.info("%s", meta["ceiling_text"])
    for rep in range(opts.reps):
        k = rep % max(1, len(servers))
        for spec in servers[k:] + servers[:k]:  # rotate the order each repetition
            results.extend(run_server(spec, scenarios, rep, log_dir))
    cells = aggregate(results)
    note = deflate_note(results)
    if note:
        meta["notes"] = [*NOTES, note]
    Path(opts.json).write_text(
        json.dumps({"meta": meta, "results": [r.__dict__ for r in results]}, indent=1, default=str)
    )
    write_markdown(Path(opts.out), cells, scenarios, servers, meta)
    write_chart(Path(opts.chart), cells, scenarios, servers)
    logger.info("wrote %s and %s", opts.out, opts.chart)
    return 0


NOTES = [
    "python-socketio 5.x / python-engineio 4.x run in their own async modes: gevent under `-k "
    "gevent` "
    "(WebSocket through simple-websocket, as python-engineio does when gevent-websocket is "
    "absent), "
    "eventlet under `-k sio_wsgi.gunicorn.EventletWorker` (gunicorn 26+ has no eventlet "
    "worker; the "
    "same worker serves both implementations), threading under `-k gthread --threads 5200`.",
    "Server CPU = utime + stime of the whole gunicorn process tree (master + worker) from "
    "/proc, read "
    "when the load generator opens and closes its measuring window.",
    "Cross-node fanout through Redis (`fanout_redis1000`): two fresh gunicorn nodes of the "
    "same implementation (one worker each, their own ports), both with a `RedisManager` "
    "(`client_manager=`) on 127.0.0.1:6379 and a channel unique to the run; the receivers are "
    "split evenly between the nodes, the trigger `emit` goes to the first node, and the latency "
    "is trigger to the last delivery on either node. Server CPU per delivery is summed over both "
    "nodes' process trees (the redis-server's own CPU is not counted). The Node server has no "
    "Redis adapter installed here, so its cell is empty.",
    "Messages crossing nodes per second and broker recovery: "
    "`python -m tests.multinode.throughput` (tests/multinode/throughput.py).",
    "4 KB echo (`echo50_4k`, `echo50_4k_deflate`): the event's data is a JSON list of chat-like "
    "records with repeated keys, about 4 KB (3966-4092 bytes; 16 fixed variants made by "
    "`makePayload` in bench/node/loadgen.js, each client sending them in turn, so no message "
    "repeats within a 32 KiB deflate window); alone at zlib level 6 one compresses about 4.5x. "
    "Every ack is checked to be as long as expected. B/ack: bytes read plus written on the load "
    "generator's TCP sockets during the window, per ack (event and ack, WebSocket headers "
    "included).",
    "permessage-deflate (`echo50_4k_deflate`): the load generator's `ws` clients offer it with "
    "ws's defaults (`perMessageDeflate: { threshold: 1024 }`: messages of 1024 bytes or more "
    "compressed, context takeover unless the server refuses it), so the server inflates every "
    "event and compresses every ack. sio_wsgi runs with `per_message_deflate=True` (threshold "
    "1024, level 6) and answers `server_no_context_takeover; client_no_context_takeover`: each "
    "message compressed on its own, no zlib state per connection. The Node server has "
    "`perMessageDeflate: { threshold: 1024 }` (ws: context takeover both ways, zlib in the libuv "
    "thread pool, whose CPU is counted). python-socketio has no option for it: its WebSocket "
    "layers (simple-websocket / wsproto under gevent and threading, eventlet.websocket under "
    "eventlet) accept the offer with context takeover and compress every message whatever its "
    "size. Context takeover compresses similar messages better (see B/ack) at the cost of a "
    "zlib state per connection and direction. A server that declines the offer would show its "
    'uncompressed figures marked "no deflate (offer declined)" and no ratio. The extensions '
    "agreed in this run are listed below.",
    "The clients not offering permessage-deflate (every other scenario) get none from any "
    "server: enabling it on the servers changes nothing for them.",
]


def deflate_note(results: Sequence[Result]) -> str | None:
    """Which ``Sec-WebSocket-Extensions`` each server answered the deflate offer with.

    :param results: every run.
    :returns: a Notes line, or None when no scenario offered permessage-deflate.
    """
    agreed: dict[str, set[str]] = {}
    for r in results:
        if r.deflate is not None:
            agreed.setdefault(r.server, set()).add(str(r.raw.get("extensions") or "(none)"))
    if not agreed:
        return None
    return "permessage-deflate agreed in this run: " + "; ".join(
        f"{name}: " + " / ".join(f"`{e}`" for e in sorted(exts))
        for name, exts in sorted(agreed.items())
    )


if __name__ == "__main__":
    sys.exit(main())
