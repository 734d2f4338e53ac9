"""Where the memory of an idle WebSocket connection goes.

    python -m bench.memory [--server sio_wsgi-gevent] [--clients 1000]

Two runs of the benchmark app under the server's gunicorn worker, each holding ``--clients`` idle
WebSocket clients (the Node load generator's connect storm, with a hold):

1. untraced: RSS growth of the server's process tree per connection (what ``storm1000`` reports);
2. traced (``BENCH_TRACEMALLOC=1``): the growth of Python allocations per connection, by source
   file (``/_bench/memory`` in ``bench/app.py``).

RSS minus the traced Python memory is what Python's tracer cannot see: green-thread C stacks
saved on the heap, the interpreter's frame stacks, allocator slack, the libraries' C objects.
Diagnosis only; not part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.run import LOADGEN, ROOT, SERVERS, free_port, rss_kib, start_server, stop_server

__all__ = ["measure"]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def _hold(url: str, clients: int, while_held: Any) -> Any:
    """Connect ``clients`` idle WebSocket clients, call ``while_held()`` once they are all up.

    :returns: what ``while_held`` returned.
    """
    cmd = [
        "node",
        str(LOADGEN),
        "--url",
        url,
        "--scenario",
        "storm",
        "--clients",
        str(clients),
        "--hold",
        "8",
        "--concurrency",
        "100",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line).get("phase") == "connected":
                time.sleep(1.0)  # let the last handshakes settle
                return while_held()
        raise RuntimeError("the load generator ended before its clients were connected")
    finally:
        proc.wait(timeout=60)


def measure(server: str, clients: int, log_dir: Path) -> dict[str, Any]:
    """Both runs for one server.

    :param server: a name from ``bench.run.SERVERS`` (not the Node one).
    :param clients: idle clients to hold.
    :param log_dir: server logs.
    :returns: ``rss_per_conn``, ``python_per_conn`` (bytes) and ``by_file`` (bytes per connection).
    """
    spec = next(s for s in SERVERS if s.name == server)
    out: dict[str, Any] = {"server": server, "clients": clients}
    for traced in (False, True):
        port = free_port()
        env = {"BENCH_TRACEMALLOC": "1"} if traced else {}
        proc = start_server(spec, port, log_dir, extra_env=env, log_name=f"memory-{server}")
        url = f"http://127.0.0.1:{port}"
        try:
            _hold(url, 5, lambda: None)  # first-use costs out of the way
            time.sleep(0.5)
            if traced:
                _get(url + "/_bench/memory?mark")
                growth = _hold(url, clients, lambda u=url: _get(u + "/_bench/memory"))
                out["python_per_conn"] = growth["traced_growth"] / clients
                out["by_file"] = [
                    [name, size / clients, count / clients]
                    for name, size, count in growth["by_file"]
                ]
            else:
                before = rss_kib(proc.pid)
                after = _hold(url, clients, lambda pid=proc.pid: rss_kib(pid))
                out["rss_per_conn"] = (after - before) * 1024 / clients
        finally:
            stop_server(proc)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="sio_wsgi-gevent")
    p.add_argument("--clients", type=int, default=1000)
    opts = p.parse_args()
    r = measure(opts.server, opts.clients, ROOT / "bench" / "logs")
    rss, py = r["rss_per_conn"], r["python_per_conn"]
    lines = [
        f"{r['server']}, {r['clients']} idle WebSocket clients, per connection:",
        f"  RSS growth (untraced run)      {rss / 1024:6.1f} KiB",
        f"  Python allocations (traced)    {py / 1024:6.1f} KiB",
        f"  the rest (C stacks, slack...)  {(rss - py) / 1024:6.1f} KiB",
        "  Python allocations by file (bytes, blocks per connection):",
    ]
    for name, size, count in r["by_file"][:20]:
        short = name.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        lines.append(f"    {size:8.0f} B {count:6.1f}  {short}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
