"""What metrics cost, A/B: the same sio_wsgi server with and without ``metrics=True``, both
running at once, the echo load generator alternating between them in short windows.

``python -m bench`` runs each server in turn, so on a shared machine a change of load
between the two lands in the ratio; here both see the same minutes. Each round runs one
window on each (the order alternating), and the figure is the median of the rounds'
ratios of server CPU per ack (with / without), with the ratio of the summed CPU::

    python -m bench.metrics_ab --family gevent --rounds 10 --duration 2
    python -m bench.metrics_ab --family gevent --same    # A/A: the harness's own spread
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import tempfile
from pathlib import Path

from bench.run import (
    METRICS_SERVERS,
    SERVERS,
    Scenario,
    _result,
    _warm,
    free_port,
    run_scenario,
    start_server,
    stop_server,
)

logger = logging.getLogger("bench.metrics_ab")


def main(argv: list[str] | None = None) -> int:
    """Run the A/B rounds and print one line per round and the summary.

    :param argv: command line arguments.
    :returns: the exit status.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="gevent", choices=("gevent", "eventlet", "gthread"))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--duration", type=float, default=2.0, help="seconds per window")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--same", action="store_true", help="A/A: the server without metrics twice")
    opts = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    specs = [
        next(s for s in SERVERS if s.name == f"sio_wsgi-{opts.family}"),
        next(s for s in METRICS_SERVERS if s.name == f"sio_wsgi+metrics-{opts.family}"),
    ]
    if opts.same:  # the harness's own bias: both sides the same server
        specs[1] = dataclasses.replace(specs[0], name=specs[0].name + "#2")
    sc = Scenario(
        f"echo{opts.clients}",
        "",
        {"scenario": "echo", "clients": opts.clients, "duration": opts.duration},
        "",
    )
    log_dir = Path(tempfile.mkdtemp(prefix="metrics_ab-"))
    servers = []
    try:
        for spec in specs:
            port = free_port()
            proc = start_server(spec, port, log_dir)
            url = f"http://127.0.0.1:{port}"
            servers.append((spec, proc, url))
            _warm(url, proc.pid)
        cpu: dict[str, list[float]] = {spec.name: [] for spec in specs}
        ratios = []
        for n in range(opts.rounds):
            order = servers if n % 2 == 0 else servers[::-1]
            got = {}
            for spec, proc, url in order:
                res = _result(spec, sc, n, run_scenario(sc, proc.pid, url))
                if not res.ok or res.cpu_us is None:
                    raise RuntimeError(f"{spec.name}: {res.error}")
                got[spec.name] = res.cpu_us
                cpu[spec.name].append(res.cpu_us)
            off, on = got[specs[0].name], got[specs[1].name]
            ratios.append(on / off)
            logger.info("round %d: without %.1f us, with %.1f us: %.3fx", n, off, on, on / off)
        off_all, on_all = (cpu[s.name] for s in specs)
        print(  # noqa: T201 - the result
            f"{opts.family} echo{opts.clients}, {opts.rounds} rounds of {opts.duration:g} s: "
            f"CPU per ack without {statistics.median(off_all):.1f} us, "
            f"with {statistics.median(on_all):.1f} us (medians); with / without: "
            f"median of rounds {statistics.median(ratios):.3f}x "
            f"[{min(ratios):.2f}-{max(ratios):.2f}], summed {sum(on_all) / sum(off_all):.3f}x"
        )
    finally:
        for _, proc, _ in servers:
            stop_server(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
