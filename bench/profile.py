"""Profile sio_wsgi under each benchmark scenario with py-spy.

::

    python -m bench.profile                                  # gevent worker, every scenario
    python -m bench.profile --server sio_wsgi-gthread --scenarios echo50,fanout5000

For each scenario the gunicorn worker is sampled (py-spy, ``--nonblocking``) for the load
generator's measuring window. Kept in ``bench/profiles/``:

- ``<server>-<scenario>.svg``: the flame graph;
- ``<server>-<scenario>.txt``: collapsed stacks (py-spy ``raw``) ;
- ``summary.md``: per scenario, the top functions by own samples and by inclusive samples.

Needs ``pip install py-spy`` (and permission to read the worker's memory: root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.run import (
    ROOT,
    SERVERS,
    Scenario,
    _scenarios,
    _warm,
    free_port,
    run_scenario,
    start_server,
    stop_server,
    tree,
)

__all__ = ["hot_spots", "profile_server", "main"]

logger = logging.getLogger(__name__)

PROFILES = ROOT / "bench" / "profiles"


class _Recorders:
    """Two py-spy recorders on one pid: a flame graph and collapsed stacks."""

    def __init__(self, pid: int, svg: Path, raw: Path, seconds: float) -> None:
        """
        :param pid: the process to sample.
        :param svg: flame graph output.
        :param raw: collapsed-stack output.
        :param seconds: how long to record.
        """
        self.cmds = [
            [
                "py-spy",
                "record",
                "--nonblocking",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--duration",
                str(max(1, int(seconds))),
                "--format",
                fmt,
                "--output",
                str(out),
            ]
            for fmt, out in (("flamegraph", svg), ("raw", raw))
        ]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start both recorders."""
        self.procs = [
            subprocess.Popen(
                c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
            )
            for c in self.cmds
        ]

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for both to write their files (killing them, by pid, after ``timeout``).

        :param timeout: seconds.
        """
        for p in self.procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGINT)
                p.wait(10)
            if p.stderr:
                p.stderr.close()


def hot_spots(
    raw: Path, top: int = 12
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """Own-time and inclusive-time leaders from a py-spy ``raw`` file.

    :param raw: collapsed stacks, ``frame;frame;... count`` per line.
    :param top: how many to return.
    :returns: total samples, ``[(function, % own)]``, ``[(function, % inclusive)]``.
    """
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return 0, [], []

    def pct(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, 100.0 * k / total) for f, k in c.most_common(top)]

    return total, pct(own), pct(incl)


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py:12)``.

    :param frame: a py-spy frame.
    :returns: a shorter label.
    """
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else where
    return f"{name} ({short}:{line})" if line else f"{name} ({where})"


def profile_server(server: str, scenarios: list[Scenario]) -> list[str]:
    """Start ``server``, profile its worker under each scenario, return summary lines.

    :param server: a name from :data:`bench.run.SERVERS`.
    :param scenarios: the scenarios.
    :returns: Markdown lines.
    """
    spec = next(s for s in SERVERS if s.name == server)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(spec, port, ROOT / "bench" / "logs")
    lines: list[str] = []
    try:
        _warm(url, proc.pid)
        workers = [p for p in tree(proc.pid) if p != proc.pid]
        pid = workers[0] if workers else proc.pid
        for sc in scenarios:
            svg = PROFILES / f"{server}-{sc.name}.svg"
            raw = PROFILES / f"{server}-{sc.name}.txt"
            secs = float(sc.args.get("duration", 6))
            rec = _Recorders(pid, svg, raw, secs)
            run_scenario(sc, proc.pid, url, on_start=rec.start)
            rec.wait()
            lines += _summary(server, sc, raw)
            time.sleep(0.5)
    finally:
        stop_server(proc)
    return lines


def _summary(server: str, sc: Scenario, raw: Path) -> list[str]:
    if not raw.exists():
        return [f"### {server} {sc.name}", "", "no profile", ""]
    total, own, incl = hot_spots(raw)
    out = [
        f"### {server} {sc.name} ({total} samples, [flame graph]({raw.with_suffix('.svg').name}))",
        "",
        "| own % | function | | inclusive % | function |",
        "|---|---|---|---|---|",
    ]
    for (f1, p1), (f2, p2) in zip(own, incl, strict=False):
        out.append(f"| {p1:.1f} | `{f1}` | | {p2:.1f} | `{f2}` |")
    return [*out, ""]


def main(argv: list[str] | None = None) -> int:
    """Profile and write ``bench/profiles/summary.md``.

    :param argv: arguments.
    :returns: exit status.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description="profile sio_wsgi per scenario")
    p.add_argument("--servers", default="sio_wsgi-gevent")
    p.add_argument(
        "--scenarios", default="storm1000,echo50,echo500,poll50,binary64k,fanout1000,fanout5000"
    )
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--summary", default=str(PROFILES / "summary.md"))
    opts = p.parse_args(argv)
    if not shutil.which("py-spy"):
        raise SystemExit("pip install py-spy")
    PROFILES.mkdir(parents=True, exist_ok=True)
    wanted = opts.scenarios.split(",")
    scenarios = [s for s in _scenarios(opts.duration, False) if s.name in wanted]
    lines = ["# sio_wsgi profiles (py-spy, worker process, measuring window only)", ""]
    for server in opts.servers.split(","):
        lines += profile_server(server, scenarios)
    Path(opts.summary).write_text("\n".join(lines))
    logger.info("wrote %s", opts.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
