"""Run Autobahn|Testsuite's fuzzingclient against the echo endpoint (echo_app.py).

Used by ``test_autobahn.py`` and runnable on its own, printing the summary table
that ``docs/hardening.md`` shows::

    python -m tests.autobahn.autobahn_support                  # all three modes
    python -m tests.autobahn.autobahn_support --modes gevent   # one mode
    python -m tests.autobahn.autobahn_support --deflate full   # 12-13 whole (~14 min a mode)

Each mode runs under a real server on a free 127.0.0.1 port, one gunicorn worker:
``-k gthread`` (threading), ``-k sio_wsgi.gunicorn.EventletWorker`` (eventlet),
``-k gevent`` (gevent). ``wstest`` comes from ``install_wstest.sh`` (Python 2.7,
installed once into a cache folder). Every process started here is ended by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import HOST, ServerProcess

__all__ = [
    "MODES",
    "BASE_CASES",
    "DEFLATE_CASES",
    "DEFLATE_CI_CASES",
    "DEFLATE_SHORT_CASES",
    "DEFLATE_RUNS",
    "CaseResult",
    "EchoServer",
    "ERROR_PATTERN",
    "WstestUnavailable",
    "cases",
    "install_wstest",
    "run_fuzzingclient",
    "rating",
    "problems",
    "summary_table",
    "running_echo_server",
]

HERE = Path(__file__).resolve().parent
INSTALL_SCRIPT = HERE / "install_wstest.sh"

#: async mode -> the gunicorn worker serving it
WORKERS: dict[str, list[str]] = {
    "threading": ["-k", "gthread", "--threads", "4"],
    "eventlet": ["-k", "sio_wsgi.gunicorn.EventletWorker"],
    "gevent": ["-k", "gevent"],
}
MODES = tuple(WORKERS)

#: sections 1-7 (framing, pings, reserved bits, opcodes, fragmentation, UTF-8,
#: closing), 9 (limits, performance) and 10 (auto-fragmentation)
BASE_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
#: permessage-deflate, every case (about 14 minutes a mode here)
DEFLATE_CASES = ["12.*", "13.*"]


def _deflate_cases(sizes: int) -> list[str]:
    """Every group of sections 12 and 13, with its first ``sizes`` payload sizes."""
    return [
        f"{section}.{group}.{n}"
        for section, groups in ((12, 5), (13, 7))
        for group in range(1, groups + 1)
        for n in range(1, sizes + 1)
    ]


#: permessage-deflate in CI: every group of both sections (each offer and parameter set of
#: section 13), with the first nine payload sizes of each (about 2.5 minutes a mode); the
#: larger sizes take most of the time and are run whole with ``--deflate full``
DEFLATE_CI_CASES = _deflate_cases(9)
#: the same groups with their first seven sizes (up to 16 KiB, about 1 minute a mode):
#: what CI runs in the modes other than gevent. The compression code is the same in
#: every mode, and sections 9-10 send the large messages through each mode's reader
DEFLATE_SHORT_CASES = _deflate_cases(7)
#: which deflate cases a run adds: none, the short or the CI subset, or all
DEFLATE_RUNS = {
    "off": [],
    "short": DEFLATE_SHORT_CASES,
    "ci": DEFLATE_CI_CASES,
    "full": DEFLATE_CASES,
}

INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 8.0
#: one mode's run takes ~25 s here (~3 min with the CI deflate cases, ~14 with all of
#: them); the bound leaves room for a loaded machine
RUN_TIMEOUT = 2400.0

#: The suite rates each case twice: ``behavior`` (the exchange) and
#: ``behaviorClose`` (the closing handshake). Its report shows them as these classes
#: (autobahntestsuite/fuzzing.py): a wrong close code, or a client that had to
#: fail the connection itself, in the "non-strict" colour; anything unknown as failed.
BEHAVIOR_CLASS = {
    "OK": "OK",
    "NON-STRICT": "NON-STRICT",
    "NO CLOSE": "NON-STRICT",
    "INFORMATIONAL": "INFORMATIONAL",
    "UNIMPLEMENTED": "UNIMPLEMENTED",
}
CLOSE_CLASS = {
    "OK": "OK",
    "WRONG CODE": "NON-STRICT",
    "FAILED BY CLIENT": "NON-STRICT",
    "INFORMATIONAL": "INFORMATIONAL",
    "UNIMPLEMENTED": "UNIMPLEMENTED",
}
#: worst first
RATINGS = ("FAILED", "NON-STRICT", "UNIMPLEMENTED", "INFORMATIONAL", "OK")

#: What the test accepts. The exchange: OK, NON-STRICT, INFORMATIONAL (the issue's
#: rule). The closing handshake, stricter than the suite's colours: OK or
#: INFORMATIONAL only -- a wrong close code or an unclean close fails the test.
ACCEPTED_BEHAVIOR = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
ACCEPTED_CLOSE = frozenset({"OK", "INFORMATIONAL"})
DEFLATE_SECTIONS = frozenset({12, 13})


class WstestUnavailable(RuntimeError):
    """``wstest`` cannot be installed here (no Python 2.7, or the install failed)."""


# ---------------------------------------------------------------------------
# wstest
# ---------------------------------------------------------------------------


def install_wstest() -> str:
    """Install ``wstest`` if needed (fast when it is) and return its command.

    :raises WstestUnavailable: no Python 2.7 interpreter, or the install failed.
    """
    try:
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise WstestUnavailable(f"installing wstest took over {INSTALL_TIMEOUT:.0f} s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise WstestUnavailable(
            f"{INSTALL_SCRIPT.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return lines[-1]


def cases(deflate: str = "off") -> list[str]:
    """The case patterns to run: sections 1-7, 9, 10, and 12-13 as ``deflate`` says
    (a key of :data:`DEFLATE_RUNS`)."""
    return BASE_CASES + DEFLATE_RUNS[deflate]


def write_spec(path: Path, outdir: Path, agents: dict[str, str], deflate: str) -> None:
    """Write a fuzzingclient spec: one server (agent) per entry of ``agents``."""
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": url} for agent, url in agents.items()],
        "cases": cases(deflate),
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    path.write_text(json.dumps(spec, indent=2))


@dataclass
class CaseResult:
    """One case as the suite rated it (from ``index.json`` and the case's own report)."""

    case: str
    behavior: str
    behavior_close: str
    duration_ms: int
    remote_close_code: int | None
    report: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def section(self) -> int:
        return int(self.case.split(".")[0])

    def key(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.case.split("."))

    def describe(self) -> str:
        """The case id, the ratings, what the suite expected and what happened."""
        r = self.report
        return (
            f"{self.case}: behavior {self.behavior}, close {self.behavior_close} "
            f"(remote close code {self.remote_close_code})\n"
            f"    case: {_plain(r.get('description', ''))}\n"
            f"    expected: {_plain(r.get('expectation', ''))}\n"
            f"    result: {_plain(r.get('result', ''))} / {_plain(r.get('resultClose', ''))}"
        )


def _plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", str(html))).strip()[:400]


def run_fuzzingclient(
    wstest: str, agents: dict[str, str], workdir: Path, deflate: str = "off"
) -> tuple[dict[str, list[CaseResult]], float]:
    """Run the fuzzingclient against ``agents`` (name -> ws:// URL), one after the other.

    :returns: the results per agent, sorted by case, and the seconds the run took.
    :raises RuntimeError: wstest failed, timed out or wrote no report.
    """
    outdir = workdir / "report"
    spec = workdir / "fuzzingclient.json"
    write_spec(spec, outdir, agents, deflate)
    log_path = workdir / "wstest.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [wstest, "-m", "fuzzingclient", "-s", str(spec)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(workdir),
        )
        try:
            code = proc.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
            raise RuntimeError(
                f"wstest did not finish within {RUN_TIMEOUT:.0f} s; its log ends:\n"
                f"{_tail(log_path)}"
            ) from None
    elapsed = time.monotonic() - started
    index_path = outdir / "index.json"
    if code != 0 or not index_path.exists():
        raise RuntimeError(
            f"wstest exited {code}, report: {index_path.exists()}:\n{_tail(log_path)}"
        )
    return read_report(outdir), elapsed


def read_report(outdir: Path) -> dict[str, list[CaseResult]]:
    """Parse ``index.json`` (and each case's report) of a fuzzingclient run."""
    index = json.loads((outdir / "index.json").read_text())
    results: dict[str, list[CaseResult]] = {}
    for agent, by_case in index.items():
        rows = []
        for case, entry in by_case.items():
            report_file = outdir / entry.get("reportfile", "")
            report = json.loads(report_file.read_text()) if report_file.is_file() else {}
            rows.append(
                CaseResult(
                    case=case,
                    behavior=entry["behavior"],
                    behavior_close=entry["behaviorClose"],
                    duration_ms=int(entry.get("duration", 0)),
                    remote_close_code=entry.get("remoteCloseCode"),
                    report=report,
                )
            )
        results[agent] = sorted(rows, key=CaseResult.key)
    return results


def rating(result: CaseResult) -> str:
    """One word per case, as the suite's report colours it: the worse of the classes
    of its two ratings (FAILED, NON-STRICT, UNIMPLEMENTED, INFORMATIONAL, OK)."""
    behavior = BEHAVIOR_CLASS.get(result.behavior, "FAILED")
    close = CLOSE_CLASS.get(result.behavior_close, "FAILED")
    return min(behavior, close, key=RATINGS.index)


def problems(results: Sequence[CaseResult]) -> list[CaseResult]:
    """The cases the test does not accept (see :data:`ACCEPTED_BEHAVIOR`)."""
    bad = []
    for result in results:
        if result.behavior not in ACCEPTED_BEHAVIOR or result.behavior_close not in ACCEPTED_CLOSE:
            bad.append(result)
    return bad


#: what each section of the suite tests
SECTIONS = {
    1: "framing",
    2: "pings / pongs",
    3: "reserved bits",
    4: "opcodes",
    5: "fragmentation",
    6: "UTF-8 handling",
    7: "close handling",
    9: "limits / performance",
    10: "auto-fragmentation",
    12: "permessage-deflate (payloads)",
    13: "permessage-deflate (parameters)",
}


def summary_table(results: dict[str, Sequence[CaseResult]]) -> str:
    """A Markdown table: a row per section, a column per mode, each cell the number
    of cases rated OK / NON-STRICT / INFORMATIONAL / FAILED (/ UNIMPLEMENTED when
    there are any, in the deflate sections)."""
    words = ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED"]  # + UNIMPLEMENTED if any
    everything = Counter(rating(r) for rows in results.values() for r in rows)
    words += sorted(word for word in everything if word not in words)
    modes = list(results)
    sections = sorted({r.section for rows in results.values() for r in rows})
    lines = [
        "| section | cases | " + " | ".join(modes) + " |",
        "|---|---|" + "---|" * len(modes),
    ]
    for section in [*sections, None]:
        cells = []
        count = 0
        for mode in modes:
            picked = [r for r in results[mode] if section is None or r.section == section]
            count = max(count, len(picked))
            tally = Counter(rating(r) for r in picked)
            cells.append(" / ".join(str(tally.get(word, 0)) for word in words))
        label = "**all**" if section is None else f"{section} {SECTIONS.get(section, '')}"
        lines.append(f"| {label.strip()} | {count} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Each cell: cases rated " + " / ".join(words) + ".")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the echo server
# ---------------------------------------------------------------------------


def _gunicorn_extra() -> list[str]:
    """``--no-control-socket`` where gunicorn has one (27+): no file under ~/.gunicorn."""
    import gunicorn.config

    settings = (getattr(c, "name", None) for c in vars(gunicorn.config).values())
    return ["--no-control-socket"] if "control_socket_disable" in settings else []


def _tail(path: Path, size: int = 4000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-size:]
    return ""


#: what the server prints when it failed (as opposed to a client going away)
ERROR_PATTERN = re.compile(r"Traceback|\[ERROR\]|\[CRITICAL\]|Exception in|Unhandled")


def _command(mode: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-b",
        f"{HOST}:{{port}}",
        "-w",
        "1",
        *WORKERS[mode],
        "--graceful-timeout",
        "3",
        "--timeout",
        "120",
        "--log-level",
        "info",
        *_gunicorn_extra(),
        "--pythonpath",
        str(HERE),
        "echo_app:app",
    ]


class EchoServer(ServerProcess):
    """``echo_app:app`` under gunicorn's worker for ``mode`` (one worker), ready once
    ``GET /info`` answers; stopped by PID with its worker.

    :param mode: threading, eventlet or gevent.
    :param log_dir: where its log goes.
    """

    def __init__(self, mode: str, log_dir: Path) -> None:
        super().__init__(
            _command(mode),
            log_dir / f"gunicorn-{mode}.log",
            health="/info",
            cwd=log_dir,
            env={"PYTHONUNBUFFERED": "1", "SIO_ECHO_MODE": mode},
            name=f"gunicorn ({mode})",
            start_timeout=START_TIMEOUT,
            stop_timeout=STOP_TIMEOUT,
        )
        self.mode = mode

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/"

    def errors(self) -> list[str]:
        """Log lines that report a failure in the server (not a client going away)."""
        return [line for line in self.log_text().splitlines() if ERROR_PATTERN.search(line)]

    def info(self) -> dict[str, Any]:
        """What ``GET /info`` says: the mode and driver the echo host runs."""
        with urllib.request.urlopen(f"{self.url}/info", timeout=10) as resp:
            info: dict[str, Any] = json.loads(resp.read())
        return info


@contextlib.contextmanager
def running_echo_server(mode: str, log_dir: Path) -> Iterator[EchoServer]:
    """An :class:`EchoServer`, started, and stopped by PID on the way out."""
    server = EchoServer(mode, log_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES), help="comma separated async modes")
    parser.add_argument(
        "--deflate", choices=tuple(DEFLATE_RUNS), default="ci", help="sections 12-13 cases"
    )
    parser.add_argument("--keep", action="store_true", help="keep the reports (path printed)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    wstest = install_wstest()
    workdir = Path(tempfile.mkdtemp(prefix="sio-autobahn-"))
    results: dict[str, list[CaseResult]] = {}
    timings: dict[str, float] = {}
    failed = False
    for mode in modes:
        run_dir = workdir / mode
        run_dir.mkdir()
        with running_echo_server(mode, run_dir) as server:
            by_agent, timings[mode] = run_fuzzingclient(
                wstest, {mode: server.ws_url}, run_dir, args.deflate
            )
            errors = server.errors()
        results[mode] = by_agent[mode]
        bad = problems(results[mode])
        print(
            f"{mode}: {len(results[mode])} cases in {timings[mode]:.1f} s, {len(bad)} not accepted"
        )
        for result in bad:
            print("  " + result.describe())
        for line in errors:
            print(f"  server log: {line}")
        failed = failed or bool(bad) or bool(errors)
    print()
    print(summary_table(results))
    print()
    print("| mode | seconds |\n|---|---|")
    for mode, seconds in timings.items():
        print(f"| {mode} | {seconds:.0f} |")
    if args.keep:
        print(f"\nreports under {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
