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

The session relay's cost (``relay_*`` vs ``sticky_*``, sio_wsgi servers only, needs Redis; see
:func:`relay_scenarios`) gets a section of its own in ``docs/benchmarks.md``, with the latency of
one relayed round trip (``bench/relay.py``, ``--relay-pairs``)::

    python -m bench --servers sio_wsgi-gevent \\
        --scenarios relay_poll50,sticky_poll50,relay_echo50,sticky_echo50
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
        receivers (fanout) or clients (echo, poll: client i on node i % nodes, sticky routing)
        are spread over them and the fanout trigger goes to the first.
    :param workers: gunicorn workers (``-w``) of each node; above 1 the nodes are started
        afresh with a Redis client manager too, so its session relay serves the requests that
        land on the worker that does not own their session.
    :param impls: the implementations it runs on (empty: every one).
    """

    name: str
    title: str
    args: dict[str, Any]
    unit: str
    nodes: int = 1
    workers: int = 1
    impls: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        """Whether it runs on fresh servers sharing a Redis channel (:func:`run_multinode`)."""
        return self.nodes > 1 or self.workers > 1

    @property
    def relay_role(self) -> str:
        """``relay`` or ``sticky`` for the session relay's scenarios, else ``""``."""
        return self.name.split("_", 1)[0] if self.name.startswith(("relay_", "sticky_")) else ""


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
        *relay_scenarios(duration),
    ]


#: the session relay's scenarios run on these implementations only (python-socketio has no
#: relay: with ``-w 2`` and no sticky routing its polling clients get 400s)
RELAY_IMPLS = ("sio_wsgi",)


def relay_scenarios(duration: float, clients: int = 50, warmup: float = 1.0) -> list[Scenario]:
    """The session relay's cost: one gunicorn ``-w 2`` that any request may reach (the relay
    carries it to the worker owning its session) vs the same two workers as two ``-w 1`` nodes
    with each client always on its own (sticky routing). Both on a Redis manager.

    Long-polling: every HTTP request on a new connection (``keepalive: 0``, in both), so the
    kernel hands it to either worker. WebSocket: each client opens its session by long-polling
    then upgrades (``upgrade: 1``): the WebSocket lands on either worker and is relayed, byte
    stream over Redis, when it is not the owner.

    :param duration: seconds of each measuring window.
    :param clients: clients per scenario.
    :param warmup: seconds of load before the window.
    :returns: ``relay_poll50``, ``sticky_poll50``, ``relay_echo50``, ``sticky_echo50``.
    """
    poll = {"scenario": "poll", "clients": clients, "duration": duration, "keepalive": 0}
    echo = {"scenario": "echo", "clients": clients, "duration": duration, "upgrade": 1}
    for args in (poll, echo):
        args["warmup"] = warmup
    k = clients
    return [
        Scenario(
            f"relay_poll{k}",
            f"long-polling echo, {k} clients, new connection per request, -w 2 (relayed)",
            poll,
            "acks/s",
            workers=2,
            impls=RELAY_IMPLS,
        ),
        Scenario(
            f"sticky_poll{k}",
            f"long-polling echo, {k} clients, new connection per request, 2 x -w 1 (sticky)",
            poll,
            "acks/s",
            nodes=2,
            impls=RELAY_IMPLS,
        ),
        Scenario(
            f"relay_echo{k}",
            f"echo, {k} clients upgraded from polling, -w 2 (relayed)",
            echo,
            "acks/s",
            workers=2,
            impls=RELAY_IMPLS,
        ),
        Scenario(
            f"sticky_echo{k}",
            f"echo, {k} clients upgraded from polling, 2 x -w 1 (sticky)",
            echo,
            "acks/s",
            nodes=2,
            impls=RELAY_IMPLS,
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
    :param recovery: connection state recovery on (``BENCH_RECOVERY=1``; sio_wsgi and Node).
    :param metrics: metrics on and served at ``/metrics`` (``BENCH_METRICS=1``; sio_wsgi).
    :param pure: sio_wsgi's pure-Python protocol modules even where the mypyc build is
        present (``SIO_WSGI_PURE_PYTHON=1``).
    """

    name: str
    impl: str
    worker: str
    async_mode: str
    recovery: bool = False
    metrics: bool = False
    pure: bool = False

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

#: the same servers with connection state recovery on (not run unless named in --servers):
#: the cost of offsets and of keeping every recoverable packet (see recovery_section)
RECOVERY_SERVERS = [
    ServerSpec("sio_wsgi+csr-gevent", "sio_wsgi", "gevent", "gevent", recovery=True),
    ServerSpec(
        "sio_wsgi+csr-eventlet",
        "sio_wsgi",
        "sio_wsgi.gunicorn.EventletWorker",
        "eventlet",
        recovery=True,
    ),
    ServerSpec("sio_wsgi+csr-gthread", "sio_wsgi", "gthread", "threading", recovery=True),
    ServerSpec("node+csr-node", "node", "node", "node", recovery=True),
]

#: the sio_wsgi servers with metrics on (not run unless named in --servers): what counting
#: costs (see metrics_section)
METRICS_SERVERS = [
    ServerSpec("sio_wsgi+metrics-gevent", "sio_wsgi", "gevent", "gevent", metrics=True),
    ServerSpec(
        "sio_wsgi+metrics-eventlet",
        "sio_wsgi",
        "sio_wsgi.gunicorn.EventletWorker",
        "eventlet",
        metrics=True,
    ),
    ServerSpec("sio_wsgi+metrics-gthread", "sio_wsgi", "gthread", "threading", metrics=True),
]


#: the sio_wsgi servers on their pure-Python protocol modules (not run unless named in
#: --servers): what the mypyc build saves (see build_section)
PURE_SERVERS = [
    ServerSpec("sio_wsgi+pure-gevent", "sio_wsgi", "gevent", "gevent", pure=True),
    ServerSpec(
        "sio_wsgi+pure-eventlet",
        "sio_wsgi",
        "sio_wsgi.gunicorn.EventletWorker",
        "eventlet",
        pure=True,
    ),
    ServerSpec("sio_wsgi+pure-gthread", "sio_wsgi", "gthread", "threading", pure=True),
]


def free_port() -> int:
    """A free TCP port on 127.0.0.1.

    :returns: the port.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(spec: ServerSpec, port: int, workers: int = 1) -> list[str]:
    """The server's command line.

    :param spec: the server.
    :param port: where it listens.
    :param workers: gunicorn workers.
    :returns: argv.
    """
    if spec.impl == "node":
        return ["node", str(NODE_DIR / "server.js"), str(port)]
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
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
    workers: int = 1,
) -> subprocess.Popen[bytes]:
    """Start a server and wait for it to listen.

    :param spec: the server.
    :param port: the port.
    :param log_dir: where its stderr goes.
    :param extra_env: more environment for the server (e.g. ``BENCH_REDIS_CHANNEL``).
    :param log_name: the log file's name without ``.log`` (default: the server's name).
    :param workers: gunicorn workers (``-w``).
    :returns: the process.
    :raises RuntimeError: when it does not come up.
    """
    env = dict(os.environ, BENCH_IMPL=spec.impl, BENCH_ASYNC=spec.async_mode, PYTHONPATH=str(ROOT))
    env.pop("BENCH_REDIS_CHANNEL", None)  # single nodes never share a bus by accident
    env["BENCH_RECOVERY"] = "1" if spec.recovery else "0"
    env["BENCH_METRICS"] = "1" if spec.metrics else "0"
    if spec.pure:
        env["SIO_WSGI_PURE_PYTHON"] = "1"
    else:
        env.pop("SIO_WSGI_PURE_PYTHON", None)
    env.update(extra_env or {})
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{log_name or spec.name}.log"
    with open(log, "ab") as err:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            _command(spec, port, workers),
            cwd=ROOT,
            env=env,
            stdout=err,
            stderr=err,
            start_new_session=True,
        )
    if not wait_listening(port, proc) or not _workers_up(proc, workers):
        stop_server(proc)
        raise RuntimeError(f"{spec.name} did not start (see {log})")
    return proc


def _workers_up(proc: subprocess.Popen[bytes], workers: int, timeout: float = 20.0) -> bool:
    """Wait until the gunicorn master has ``workers`` children (the first one may listen
    before the others are forked).

    :param proc: the master.
    :param workers: how many.
    :param timeout: seconds.
    :returns: whether they are up.
    """
    if workers <= 1:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_children().get(proc.pid, [])) >= workers:
            return True
        time.sleep(0.1)
    return False


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


def _own_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included, not its children).

    :param pid: the process.
    :returns: CPU seconds (0 when it cannot be read).
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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
    relayed: float | None = None  # relay scenarios: fraction of requests (WebSockets) relayed
    redis_cpu_us: float | None = None  # relay scenarios: redis-server CPU per message
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
    :param side_pids: other processes whose CPU is read over the window too (not the server's),
        by name: ``<name>_cpu_s`` in the record.
    """

    def __init__(
        self,
        server_pids: list[int],
        rss0: int,
        on_start: Callable[[], None] | None,
        on_end: Callable[[], None] | None,
        side_pids: dict[str, int] | None = None,
    ) -> None:
        self.pids = server_pids
        self.side = dict(side_pids or {})
        self.side0: dict[str, float] = {}
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
        self.side0 = {k: _own_cpu_seconds(p) for k, p in self.side.items()}

    def _end(self) -> None:
        if self.cpu0 is not None:
            self.extra["server_cpu_s"] = self._cpu() - self.cpu0
        for k, p in self.side.items():
            if k in self.side0:
                self.extra[f"{k}_cpu_s"] = _own_cpu_seconds(p) - self.side0[k]

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
    side_pids: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Run the load generator once and read the server's CPU and memory around its window.

    :param sc: the scenario.
    :param server_pid: root of the server's process tree, or the roots of several nodes' trees
        (their CPU and RSS are summed).
    :param url: the server's base URL (with several nodes: the one the fanout trigger uses).
    :param timeout: seconds before the load generator is killed.
    :param on_start: called when the measuring window opens (e.g. to start a profiler).
    :param on_end: called when it closes.
    :param urls: every node's base URL, for fanout receivers (or echo / poll clients) spread
        over several nodes; empty: ``url`` alone.
    :param side_pids: other processes (e.g. ``{"redis": pid}``) whose own CPU over the window
        is reported as ``<name>_cpu_s``.
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
    window = _Window(pids, rss0, on_start, on_end, side_pids)
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
        _relay_checks(r, sc, rec, count)
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


def _relay_checks(r: Result, sc: Scenario, rec: dict[str, Any], count: int) -> None:
    """For the session relay's scenarios: the fraction relayed (from the workers' counters,
    see :func:`relay_counters`), redis-server CPU per ack; a run whose relay failed requests, or
    (relayed ones) where none was relayed, is not OK.

    :param r: the result, updated.
    :param sc: the scenario.
    :param rec: the load generator's record with ``relay_delta`` (and ``redis_cpu_s``).
    :param count: acks in the window.
    """
    role = sc.relay_role
    if not role:
        return
    if count and rec.get("redis_cpu_s") is not None:
        r.redis_cpu_us = rec["redis_cpu_s"] / count * 1e6
    delta = rec.get("relay_delta")
    if not delta:
        if r.ok:
            r.ok, r.error = False, "no relay counters"
        return
    if sc.args.get("upgrade"):  # WebSockets relayed (byte streams) / clients
        r.relayed = delta["streams"] / r.connected if r.connected else None
    else:  # HTTP requests relayed / HTTP requests the clients sent
        r.relayed = delta["forwarded"] / delta["requests"] if delta["requests"] else None
    if r.ok and delta["failed"]:
        r.ok, r.error = False, f"{delta['failed']} relayed requests failed"
    elif r.ok and role == "relay" and not delta["forwarded"] and not sc.args.get("upgrade"):
        # hundreds of requests, none on the other worker: not the topology meant (a few
        # WebSockets may all land on their owners by chance: their share is reported as is)
        r.ok, r.error = False, "nothing was relayed"
    elif r.ok and role == "sticky" and delta["forwarded"]:
        r.ok, r.error = False, f"{delta['forwarded']} requests relayed with sticky routing"


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
    multi-node (or multi-worker) scenario on fresh nodes (:func:`run_multinode`; not for the
    Node server, which has no Redis adapter here: its cell stays empty). Scenarios meant for
    other implementations (``Scenario.impls``) are left out.

    :param spec: the server.
    :param scenarios: what to run.
    :param rep: the repetition number.
    :param log_dir: server logs.
    :returns: one result per scenario run.
    """
    scenarios = [sc for sc in scenarios if not sc.impls or spec.impl in sc.impls]
    single = [sc for sc in scenarios if not sc.shared]
    out = _run_single(spec, single, rep, log_dir) if single else []
    for sc in scenarios:
        if not sc.shared:
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
    """Start ``sc.nodes`` servers of ``spec`` (``sc.workers`` gunicorn workers each) sharing a
    fresh Redis channel, run ``sc``, stop them.

    The fanout receivers (or the echo / poll clients) are spread round-robin over the nodes, the
    trigger goes to the first node; the server CPU is summed over every node's process tree. For
    the session relay's scenarios the workers' relay counters are read before and after the run
    (``raw["relay_delta"]``) and the redis-server's own CPU over the window when it can be found
    (``raw["redis_cpu_s"]``).

    :param spec: the server (a gunicorn one: the Node server has no Redis adapter here).
    :param sc: the scenario (``sc.shared``).
    :param rep: the repetition number.
    :param log_dir: server logs (one per node).
    :returns: the result; ``raw`` holds the channel and the clients per node.
    """
    if not redis_available():
        return Result(
            spec.name, sc.name, rep, ok=False, error=f"no Redis on {REDIS_HOST}:{REDIS_PORT}"
        )
    channel = f"sio-bench-{os.getpid()}-{secrets.token_hex(4)}"  # unique to this run
    nodes: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        nodes = start_nodes(spec, sc.nodes, log_dir, channel, sc.workers)
        for proc, url in nodes:
            _warm(url, proc.pid)
        if any(proc.poll() is not None for proc, _ in nodes):
            return Result(spec.name, sc.name, rep, ok=False, error="server died")
        urls = [url for _, url in nodes]
        counting = bool(sc.relay_role)
        before = _all_counters(urls, sc.workers) if counting else None
        redis_pid = redis_server_pid() if counting else None
        rec = run_scenario(
            sc,
            [proc.pid for proc, _ in nodes],
            urls[0],
            urls=urls if sc.nodes > 1 else (),
            side_pids={"redis": redis_pid} if redis_pid else None,
        )
        rec["redis_channel"] = channel
        if before is not None:
            after = _all_counters(urls, sc.workers)
            if after is not None:
                rec["relay_delta"] = counters_delta(before, after)
        return _result(spec, sc, rep, rec)
    except RuntimeError as exc:
        logger.warning("%s", exc)
        return Result(spec.name, sc.name, rep, ok=False, error="server did not start")
    finally:
        for proc, _ in nodes:
            stop_server(proc)


def start_nodes(
    spec: ServerSpec, count: int, log_dir: Path, channel: str, workers: int = 1
) -> list[tuple[subprocess.Popen[bytes], str]]:
    """Start ``count`` servers of ``spec`` on a Redis channel, each on a free port.

    :param spec: the server.
    :param count: how many.
    :param log_dir: their logs.
    :param channel: the Redis channel they share.
    :param workers: gunicorn workers of each.
    :returns: ``(process, base URL)`` per node.
    :raises RuntimeError: when one does not start (those already started are stopped).
    """
    env = {
        "BENCH_REDIS_CHANNEL": channel,
        "BENCH_REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
    }
    nodes: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for i in range(count):
            port = free_port()  # the previous node already listens: no clash
            proc = start_server(spec, port, log_dir, env, f"{spec.name}-node{i}", workers)
            nodes.append((proc, f"http://127.0.0.1:{port}"))
    except RuntimeError:
        for proc, _ in nodes:
            stop_server(proc)
        raise
    return nodes


# ------------------------------------------------------------------ the session relay's counters


def _get(url: str, path: str, timeout: float = 5.0) -> bytes:
    """``GET path`` on a new connection (``Connection: close``): the body.

    :param url: ``http://host:port``.
    :param path: the request path.
    :param timeout: seconds.
    :returns: the body (empty when the answer is not a 200).
    """
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return body if head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")) else b""


def relay_counters(
    url: str, workers: int, tries: int = 2000, timeout: float = 15.0
) -> dict[int, dict[str, Any]] | None:
    """Every worker's ``/_bench/relay`` record (see bench/app.py): asked on new connections
    until each of the ``workers`` processes behind ``url`` has answered (the kernel hands a new
    connection to any of them; one that is still starting, or busy, takes none for a while).

    :param url: the server.
    :param workers: its gunicorn workers.
    :param tries: at most this many requests (after the first 50, 10 ms apart).
    :param timeout: at most this many seconds.
    :returns: pid -> record, or None when not every worker answered.
    """
    seen: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    for n in range(tries):
        if len(seen) >= workers or time.monotonic() > deadline:
            break
        if n >= 50:
            time.sleep(0.01)  # let a worker that is starting or busy come to accept()
        try:
            rec = json.loads(_get(url, "/_bench/relay") or b"null")
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        if isinstance(rec, dict) and isinstance(rec.get("relay"), dict):
            seen.setdefault(int(rec["pid"]), rec)
    return seen if len(seen) >= workers else None


def _all_counters(urls: Sequence[str], workers: int) -> dict[int, dict[str, Any]] | None:
    out: dict[int, dict[str, Any]] = {}
    for url in urls:
        got = relay_counters(url, workers)
        if got is None:
            logger.warning("%s: not every worker reported its relay counters", url)
            return None
        out.update(got)
    return out


def counters_delta(
    before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]
) -> dict[str, int]:
    """The relay counters and Socket.IO requests summed over the workers, after minus before.

    :param before: :func:`relay_counters` before the run.
    :param after: after it (the same workers).
    :returns: ``requests``, ``forwarded``, ``served``, ``streams``, ``failed``, ``workers``.
    """
    out = {"requests": 0, "forwarded": 0, "served": 0, "streams": 0, "failed": 0}
    for pid, rec in after.items():
        old = before.get(pid, {"requests": 0, "relay": {}})
        out["requests"] += int(rec["requests"]) - int(old["requests"])
        for k in ("forwarded", "served", "streams", "failed"):
            out[k] += int(rec["relay"].get(k, 0)) - int(old["relay"].get(k, 0))
    out["workers"] = len(after)
    return out


def redis_server_pid() -> int | None:
    """The pid of the redis-server listening on ``REDIS_PORT`` when this machine runs it and
    ``/proc`` shows it (its CPU is then read over the relay scenarios' windows).

    :returns: the pid, or None.
    """
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # redis-server shows itself as "redis-server 127.0.0.1:6379" (one argument)
        words = b" ".join(cmd).split()
        port = f":{REDIS_PORT}".encode()
        if words and words[0].endswith(b"redis-server") and any(port in w for w in words):
            return int(d)
    return None


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
            "relayed": _median([r.relayed for r in ok]),  # type: ignore[misc]
            "redis": _median([r.redis_cpu_us for r in ok]),  # type: ignore[misc]
            # permessage-deflate offered and declined (in any successful run)
            "no_deflate": any(r.deflate is False for r in ok),
            "n": len(ok),
            "runs": len(rs),
            # per repetition (rate, CPU per message): ratios between cells of the same run
            "by_rep": {r.rep: (r.rate, r.cpu_us) for r in ok},
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
    :param meta: run facts (reps, date, load generator ceiling; ``relay_latency``: per server
        the :func:`bench.relay.measure` records).
    """
    relay = [sc for sc in scenarios if sc.relay_role]
    scenarios = [sc for sc in scenarios if not sc.relay_role]
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
    if relay:
        lines += ["", *relay_section(cells, relay, servers, meta)]
    if any(s.recovery for s in servers):
        lines += ["", *recovery_section(cells, scenarios, servers)]
    if any(s.metrics for s in servers):
        lines += ["", *metrics_section(cells, scenarios, servers)]
    if any(s.pure for s in servers):
        lines += ["", *build_section(cells, scenarios, servers)]
    lines += [
        "",
        "## Load generator ceiling",
        "",
        meta.get("ceiling_text", "not measured in this run"),
        "",
    ]
    lines += ["## Notes", "", *[f"- {n}" for n in meta.get("notes", [])], ""]
    path.write_text("\n".join(lines))


def relay_section(
    cells: dict[tuple[str, str], dict[str, Any]],
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
    meta: dict[str, Any],
) -> list[str]:
    """The "Session relay" section of docs/benchmarks.md: ``relay_*`` vs ``sticky_*`` per
    server, and the added latency of one relayed round trip.

    :param cells: the aggregates.
    :param scenarios: the relay scenarios that ran.
    :param servers: the servers.
    :param meta: run facts (``relay_latency``: per server, :func:`bench.relay.measure` records).
    :returns: Markdown lines.
    """
    lines = [
        "## Session relay: gunicorn `-w 2` without sticky sessions",
        "",
        "The same two workers, both on a `RedisManager` (127.0.0.1:6379, a channel of their own): "
        "*relayed* is one gunicorn `-w 2` whose workers share the listening socket, so any "
        "request may reach the worker that does not own its session, and the session relay "
        "(sio_wsgi/engine/relay.py) carries it there over a direct link between the two "
        "workers (sio_wsgi/managers/direct.py; Redis carries the heartbeats that announce the "
        "links); *sticky* is two gunicorn `-w 1` "
        "on two ports, client i always on node i % 2, so nothing is relayed. Long-polling: every "
        "HTTP request on a new connection (`Connection: close`) in both, so that the kernel hands "
        "it to either worker. WebSocket: each client opens its session by long-polling and "
        "upgrades; a WebSocket that reaches the other worker is relayed as a byte stream for its "
        "whole life (every chunk of bytes, each way, one frame on a direct link). Relayed = "
        "the share of "
        "requests (long-polling) or of WebSockets relayed, from the workers' `Relay.stats`, "
        "median [min-max]: the kernel decides, and the WebSocket share varies much from run "
        "to run (50 connections), so does that row's throughput. A relayed request is two "
        "messages (the request, the answer; a third, the owner's acknowledgement, for a "
        "long-poll still waiting after 0.5 s). Server CPU per "
        "ack: every worker and master summed; the redis-server's own CPU per ack is given apart "
        "(+ redis; it serves other users of this machine too).",
        "",
        "| server | scenario | relayed (`-w 2`) | sticky (2 x `-w 1`) | relayed / sticky | "
        "relayed |",
        "|---|---|---|---|---|---|",
    ]
    pairs = [
        (a, b)
        for a in scenarios
        if a.relay_role == "relay"
        for b in scenarios
        if b.relay_role == "sticky" and b.name.split("_", 1)[1] == a.name.split("_", 1)[1]
    ]
    for spec in servers:
        for a, b in pairs:
            ca, cb = cells.get((spec.name, a.name)), cells.get((spec.name, b.name))
            if ca is None and cb is None:
                continue
            what = a.title.split(", -w", 1)[0]
            lines.append(
                f"| {spec.name} | {what} ({a.unit}) | {_relay_cell(ca)} | {_relay_cell(cb)} | "
                f"{_relay_ratio(ca, cb)} | {_pct(ca)} |"
            )
    for name, recs in sorted((meta.get("relay_latency") or {}).items()):
        lines += ["", f"One relayed long-polling round trip, {name}: {_latency_text(recs)}"]
    if meta.get("relay_latency"):
        lines += [
            "",
            "(`python -m bench.relay`: one client, two idle `-w 1` nodes on a Redis channel; "
            'round trip = `POST 42<id>["echo","x"]` then `GET` of the ack, each on a new '
            "connection, to the owner of the session or to the other node, in alternating "
            "blocks; WebSocket echo = the same event on a session upgraded on its owner or on "
            "the other node; medians, and the servers' CPU per round trip or echo, both nodes "
            "summed.)",
        ]
    return lines


def _relay_cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    if not c["n"]:
        return "failed: " + "; ".join(c["errors"])[:60]
    rate, p50, p99, cpu, redis = (c[k] for k in ("rate", "p50", "p99", "cpu", "redis"))
    text = f"{_k(rate[0])}/s [{_k(rate[1])}-{_k(rate[2])}]"
    if p50 and p99:
        text += f", p50/p99 {p50[0]:.1f}/{p99[0]:.0f} ms"
    if cpu:
        text += f", {cpu[0]:.0f} µs CPU"
        if redis:
            text += f" + redis {redis[0]:.0f} µs"
    if c["n"] < c["runs"]:
        text += f" ({c['runs'] - c['n']} of {c['runs']} failed)"
    return text


def recovery_section(
    cells: dict[tuple[str, str], dict[str, Any]],
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
) -> list[str]:
    """The cost of connection state recovery: each server with it on against the same
    server without it, same run.

    :param cells: the aggregates.
    :param scenarios: the scenarios that ran.
    :param servers: the servers (those with ``recovery`` and their plain twins).
    :returns: Markdown lines.
    """
    lines = [
        "## Connection state recovery: what it costs",
        "",
        "Each server with connection state recovery on (`connection_state_recovery=True`; Node "
        "`connectionStateRecovery: {}`) against itself without it, in the same run: every "
        "broadcast then carries an offset and is kept for replay (echo acks are not: "
        "acknowledgements are never replayed). Cell: median [min-max] (server CPU per "
        "message); cost = with / without (CPU per message, or fanout p50).",
        "",
        "| scenario | server | without | with recovery | cost |",
        "|---|---|---|---|---|",
    ]
    return lines + _twin_rows(cells, scenarios, [s for s in servers if s.recovery], "+csr")


def metrics_section(
    cells: dict[tuple[str, str], dict[str, Any]],
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
) -> list[str]:
    """The cost of metrics: each sio_wsgi server with ``metrics=True`` against the same
    server without, same run.

    :param cells: the aggregates.
    :param scenarios: the scenarios that ran.
    :param servers: the servers (those with ``metrics`` and their plain twins).
    :returns: Markdown lines.
    """
    lines = [
        "## Metrics: what they cost",
        "",
        "Each sio_wsgi server with `Server(metrics=True)` (served at `/metrics`) against "
        "itself without, in the same run. Cell: median [min-max] (server CPU per message); "
        "cost = with / without (CPU per message, or fanout p50).",
        "",
        "| scenario | server | without | with metrics | cost |",
        "|---|---|---|---|---|",
    ]
    return lines + _twin_rows(cells, scenarios, [s for s in servers if s.metrics], "+metrics")


def build_section(
    cells: dict[tuple[str, str], dict[str, Any]],
    scenarios: Sequence[Scenario],
    servers: Sequence[ServerSpec],
) -> list[str]:
    """What the mypyc build of the protocol modules saves: each sio_wsgi server on its
    pure-Python modules against the same server compiled, same run.

    :param cells: the aggregates.
    :param scenarios: the scenarios that ran.
    :param servers: the servers (those with ``pure`` and their compiled twins).
    :returns: Markdown lines.
    """
    lines = [
        "## The compiled protocol modules: what they save",
        "",
        "Each sio_wsgi server on its pure-Python protocol modules (`SIO_WSGI_PURE_PYTHON=1`) "
        "against itself running the mypyc build of `sio_wsgi/protocol/websocket.py`, `sio.py` "
        "and `eio.py` (the default after `pip install`), in the same run. Cell: median "
        "[min-max] (server CPU per message); cost = pure / compiled (CPU per message, or "
        "fanout p50): above 1, the build saves that much.",
        "",
        "| scenario | server | compiled | pure Python | cost |",
        "|---|---|---|---|---|",
    ]
    return lines + _twin_rows(cells, scenarios, [s for s in servers if s.pure], "+pure")


def _twin_rows(
    cells: dict[tuple[str, str], dict[str, Any]],
    scenarios: Sequence[Scenario],
    variants: Sequence[ServerSpec],
    suffix: str,
) -> list[str]:
    """One table row per scenario and variant server: the plain twin (the variant's name
    without ``suffix``), the variant, and the cost of the difference.

    :returns: Markdown table rows.
    """
    rows = []
    for sc in scenarios:
        kind = sc.args["scenario"]
        for spec in variants:
            plain = spec.name.replace(suffix, "")
            a, b = cells.get((plain, sc.name)), cells.get((spec.name, sc.name))
            rows.append(
                f"| {sc.title} ({sc.unit}) | {plain} | {_fmt(a, kind)} | {_fmt(b, kind)} | "
                f"{_cost(a, b, kind)} |"
            )
    return rows


def _cost(a: dict[str, Any] | None, b: dict[str, Any] | None, kind: str) -> str:
    if not a or not b or not a["n"] or not b["n"]:
        return "-"
    parts = []
    if a["cpu"] and b["cpu"] and a["cpu"][0]:
        parts.append(f"{b['cpu'][0] / a['cpu'][0]:.2f}x CPU/message")
    if kind == "fanout" and a["p50"] and b["p50"] and a["p50"][0]:
        parts.append(f"{b['p50'][0] / a['p50'][0]:.2f}x p50")
    elif a["rate"] and b["rate"] and a["rate"][0]:
        parts.append(f"{b['rate'][0] / a['rate'][0]:.2f}x rate")
    return ", ".join(parts) or "-"


def _relay_ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """relayed / sticky, rate and CPU per ack: the median of the ratios within each repetition
    (the two ran one after the other, on the same machine load) [min-max].
    """
    if not a or not b or not a["n"] or not b["n"]:
        return "-"
    reps = sorted(set(a.get("by_rep", {})) & set(b.get("by_rep", {})))
    pairs: list[tuple[tuple[float | None, float | None], tuple[float | None, float | None]]]
    if not reps:  # aggregates without repetitions: their medians
        pairs = [
            (
                (a["rate"][0], a["cpu"][0] if a["cpu"] else None),
                (b["rate"][0], b["cpu"][0] if b["cpu"] else None),
            )
        ]
    else:
        pairs = [(a["by_rep"][k], b["by_rep"][k]) for k in reps]
    parts = []
    for i, unit in ((0, "rate"), (1, "CPU/ack")):
        vals = []
        for x, y in pairs:
            num, den = x[i], y[i]
            if num and den:
                vals.append(num / den)
        if not vals:
            continue
        med = statistics.median(vals)
        text = f"{med:.2f}x {unit}"
        if len(vals) > 1:
            text += f" [{min(vals):.2f}-{max(vals):.2f}]"
        parts.append(text)
    return ", ".join(parts) or "-"


def _pct(c: dict[str, Any] | None) -> str:
    if not c or not c["n"] or not c["relayed"]:
        return "-"
    med, low, high = (100 * v for v in c["relayed"])
    return f"{med:.0f}%" if c["n"] == 1 else f"{med:.0f}% [{low:.0f}-{high:.0f}]"


def _latency_text(recs: Sequence[dict[str, Any]]) -> str:
    ok = [r for r in recs if "error" not in r]
    if not ok:
        return "failed: " + "; ".join(str(r.get("error")) for r in recs)[:80]

    def med(f: Callable[[dict[str, Any]], float]) -> float:
        return float(statistics.median(f(r) for r in ok))

    text = (
        f"p50 {med(lambda r: r['owner']['pair_p50']):.2f} ms on the owner, "
        f"{med(lambda r: r['relayed']['pair_p50']):.2f} ms relayed: "
        f"**+{med(lambda r: r['added_ms']):.2f} ms** per round trip of two requests "
        f"(+{med(lambda r: r['added_per_request_ms']):.2f} ms per request)"
    )
    if all(r.get("added_cpu_us") is not None for r in ok):
        text += (
            f"; servers' CPU per round trip {med(lambda r: r['owner']['cpu_us']):.0f} µs on "
            f"the owner, {med(lambda r: r['relayed']['cpu_us']):.0f} µs relayed"
        )
    n = sum(r["relayed"]["n"] for r in ok)
    text += f" ({len(ok)} runs, {n} relayed round trips)."
    ws = [r["websocket"] for r in ok if r.get("websocket")]
    if ws:

        def wmed(f: Callable[[dict[str, Any]], float]) -> float:
            return float(statistics.median(f(w) for w in ws))

        text += (
            f" One echo on a WebSocket (one at a time): p50 {wmed(lambda w: w['owner']['p50']):.2f}"
            f" ms on the owner, {wmed(lambda w: w['relayed']['p50']):.2f} ms relayed: "
            f"**+{wmed(lambda w: w['added_ms']):.2f} ms**"
        )
        if all(w.get("added_cpu_us") is not None for w in ws):
            text += (
                f"; servers' CPU per echo {wmed(lambda w: w['owner']['cpu_us']):.0f} µs on the "
                f"owner, {wmed(lambda w: w['relayed']['cpu_us']):.0f} µs relayed"
            )
        text += f" ({sum(w['relayed']['n'] for w in ws)} relayed echoes)."
    return text


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

    scenarios = [sc for sc in scenarios if not sc.relay_role]  # in their own table
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
            Scenario("fanout1000", "", {"scenario": "fanout", "clients": 1000, "rounds": 10}, ""),
            Scenario("fanout5000", "", {"scenario": "fanout", "clients": 5000, "rounds": 10}, ""),
        ):
            out[sc.name] = run_scenario(sc, proc.pid, url)
    finally:
        stop_server(proc)
    return out


def _ceiling_text(c: dict[str, Any]) -> str:
    if "error" in c:
        return str(c["error"])
    e, e5, b, f1, f = (
        c.get(k, {}) for k in ("echo50", "echo500", "binary64k", "fanout1000", "fanout5000")
    )
    return (
        "The same load generator against `bench/node/trivial.js` (a raw `ws` server with canned "
        "replies, sharing the 2 cores with the load generator): "
        f"echo 50 clients {e.get('rate', 0):.0f} acks/s (load generator CPU "
        f"{e.get('loadgen_cpu_pct', 0):.0f}%), "
        f"echo 500 clients {e5.get('rate', 0):.0f} acks/s ({e5.get('loadgen_cpu_pct', 0):.0f}%), "
        f"binary 64 KiB {b.get('mb_s', 0):.0f} MB/s ({b.get('loadgen_cpu_pct', 0):.0f}%), "
        f"fanout to 1000 clients p50 {f1.get('p50_ms') or 0:.0f} ms, "
        f"to 5000 clients p50 {f.get('p50_ms') or 0:.0f} ms "
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
    p.add_argument(
        "--relay-pairs",
        type=int,
        default=300,
        help="with relay scenarios: relayed round trips timed per repetition (0: none)",
    )
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
    servers = [
        s
        for s in SERVERS + RECOVERY_SERVERS + METRICS_SERVERS + PURE_SERVERS
        if s.name in opts.servers.split(",")
    ]
    log_dir = ROOT / "bench" / "logs"
    results: list[Result] = []
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "reps": opts.reps,
        "duration": opts.duration,
        "notes": [*NOTES, _build_note()],
    }
    if not opts.no_ceiling:
        ceiling = measure_ceiling(opts.duration)
        meta["ceiling"] = ceiling
        meta["ceiling_text"] = _ceiling_text(ceiling)
        logger.info("%s", meta["ceiling_text"])
    relaying = opts.relay_pairs > 0 and any(sc.relay_role for sc in scenarios)
    for rep in range(opts.reps):
        k = rep % max(1, len(servers))
        for spec in servers[k:] + servers[:k]:  # rotate the order each repetition
            results.extend(run_server(spec, scenarios, rep, log_dir))
            if relaying and spec.impl in RELAY_IMPLS:
                _relay_latency(spec, log_dir, opts.relay_pairs, meta)
    cells = aggregate(results)
    note = deflate_note(results)
    if note:
        meta["notes"] = [*meta["notes"], note]
    Path(opts.json).write_text(
        json.dumps({"meta": meta, "results": [r.__dict__ for r in results]}, indent=1, default=str)
    )
    write_markdown(Path(opts.out), cells, scenarios, servers, meta)
    write_chart(Path(opts.chart), cells, scenarios, servers)
    logger.info("wrote %s and %s", opts.out, opts.chart)
    return 0


def _build_note() -> str:
    """Which build of sio_wsgi's protocol modules the servers ran (they import this checkout).

    :returns: the note.
    """
    from sio_wsgi.protocol import compiled

    if compiled():
        return (
            "sio_wsgi ran its protocol modules compiled with mypyc (`pip install -e .` builds "
            "them; `sio_wsgi.protocol.compiled()` was true); with `SIO_WSGI_PURE_PYTHON=1` the "
            "pure-Python sources run instead."
        )
    return "sio_wsgi ran its pure-Python protocol modules (no mypyc build, or one disabled)."


def _relay_latency(spec: ServerSpec, log_dir: Path, pairs: int, meta: dict[str, Any]) -> None:
    """Time relayed round trips (:func:`bench.relay.measure`) into ``meta["relay_latency"]``.

    :param spec: the server.
    :param log_dir: server logs.
    :param pairs: round trips of each kind.
    :param meta: run facts, updated.
    """
    from bench import relay  # it imports this module

    rec = relay.measure(spec, log_dir, pairs)
    logger.info("%s relay round trip: %s", spec.name, relay.describe(rec))
    meta.setdefault("relay_latency", {}).setdefault(spec.name, []).append(rec)


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
    "Connect storm: each client opens a WebSocket-only session (`EIO=4&transport=websocket`), "
    "answers `OPEN` with a CONNECT to `/` and counts once it has the CONNECT reply; 100 "
    "handshakes in flight. Its clients (`StormClient` in bench/node/loadgen.js) write the "
    "WebSocket handshake and frames by hand on TCP sockets instead of using the `ws` package "
    "(since 2026-12-08): about 150 µs of load generator CPU per connection instead of about "
    "260, so that the load generator, which shares the 2 cores, is no longer the slower side "
    "for the faster servers. The 101 answer's status and `Sec-WebSocket-Accept` are checked.",
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
