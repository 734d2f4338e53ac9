"""Helpers for the example tests: example servers in subprocesses, the Playwright driver.

Every process is started on a free 127.0.0.1 port and killed by PID
(:class:`ExampleServer` is a :class:`tests.support.ServerProcess` running an
example's own command).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support import ROOT, ServerProcess, skip_or_fail

__all__ = [
    "ROOT",
    "OUTPUT",
    "output_path",
    "CHROMIUM",
    "ExampleServer",
    "EXPECTED_STEPS",
    "WORKERS",
    "example_env",
    "gunicorn_argv",
    "need_browser",
    "need_client_js",
    "run_scenario",
    "check_scenario",
    "png_bytes",
    "report",
]

OUTPUT = ROOT / "tests" / "output"
BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = Path(os.environ.get("SIO_CHROMIUM", "/usr/bin/chromium"))
START_TIMEOUT = 30.0  # gunicorn and Django may start slowly on a busy host
STOP_TIMEOUT = 5.0

# The gunicorn commands of the examples' READMEs (one worker: the chat state is in memory).
GUNICORN = [
    sys.executable,
    "-m",
    "gunicorn",
    "-w",
    "1",
    "--graceful-timeout",
    "2",
    "-b",
    "127.0.0.1:{port}",
]
WORKERS = {
    "gevent": ["-k", "gevent"],
    "eventlet": ["-k", "sio_wsgi.gunicorn.EventletWorker"],
    "gthread": ["-k", "gthread", "--threads", "50"],
}

# What tests/browser/chat_scenario.js must report for either example.
EXPECTED_STEPS = frozenset(
    {
        "transports",
        "private message reaches only its target",
        "typing indicator",
        "binary image",
        "POST /announce reaches every page",
        "reload reconnects",
    }
)


def gunicorn_argv(worker: str, app: str) -> list[str]:
    """A README gunicorn command.

    :param worker: a key of :data:`WORKERS`.
    :param app: the WSGI application (``app:app``, ``chatsite.wsgi:application``).
    :returns: the argv, with ``{port}`` to fill in.
    """
    return [*GUNICORN, *WORKERS[worker], app]


def output_path(name: str) -> Path:
    """A file in tests/output/ (created, and ignored by git through its own .gitignore).

    :param name: the file name.
    :returns: its path.
    """
    OUTPUT.mkdir(parents=True, exist_ok=True)
    ignore = OUTPUT / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# test artefacts (screenshots); never committed\n*\n")
    return OUTPUT / name


def need_browser() -> str:
    """Check Chromium, node and playwright-core; skip (fail under CI) when missing.

    :returns: the node executable.
    """
    node = shutil.which("node")
    needs = {
        f"{CHROMIUM} is missing: apt-get install -y chromium": CHROMIUM.exists(),
        "node is not installed": node is not None,
        "tests/browser/node_modules missing: cd tests/browser && npm install": (
            BROWSER_DIR / "node_modules" / "playwright-core"
        ).is_dir(),
    }
    for reason in (reason for reason, present in needs.items() if not present):
        skip_or_fail(reason)
    assert node is not None
    return node


def need_client_js(example: Path) -> None:
    """Skip (fail under CI) when the example's ``npm install`` was not run.

    :param example: the example directory.
    """
    if not (example / "node_modules" / "socket.io-client" / "dist" / "socket.io.js").is_file():
        skip_or_fail(f"{example.relative_to(ROOT)}/node_modules missing: run npm install there")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int = 48, height: int = 32) -> bytes:
    """A small valid RGB PNG (a gradient), made without any imaging library.

    :param width: pixels.
    :param height: pixels.
    :returns: the file's bytes.
    """
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 5 % 256, y * 8 % 256, 160)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def example_env(cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment an example's processes get on top of :class:`ExampleServer`'s.

    :param cwd: the example's directory (importable, like the README's commands have it).
    :param extra: more variables.
    :returns: the environment (``PYTHONPATH``: the checkout's root, then ``cwd``).
    """
    path = os.pathsep.join([str(ROOT), str(cwd)])
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", **(extra or {}))


class ExampleServer(ServerProcess):
    """An example app in a subprocess on 127.0.0.1, ready once ``GET /health`` answers.

    :param argv: the command, with ``{port}`` replaced by the port.
    :param cwd: working directory (put on ``PYTHONPATH`` too).
    :param log_path: file receiving stdout and stderr.
    :param env: extra environment variables.
    """

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            argv,
            log_path,
            cwd=cwd,
            env={"PYTHONUNBUFFERED": "1", **(env or {})},
            pythonpath=[cwd],
            name=Path(cwd).name,
            start_timeout=START_TIMEOUT,
        )


def run_scenario(
    node: str,
    scenario: dict[str, Any],
    timeout: float = 180.0,
    script: str = "chat_scenario.js",
) -> list[dict[str, Any]]:
    """Run a driver of ``tests/browser/`` (``chat_scenario.js`` by default); kill it
    by PID on timeout.

    :param node: node executable.
    :param scenario: the scenario (see the script).
    :param timeout: seconds.
    :param script: the driver's file name in tests/browser/.
    :returns: the JSON lines it printed.
    """
    scenario = {
        "chromium": str(CHROMIUM),
        "png_b64": base64.b64encode(png_bytes()).decode(),
        **scenario,
    }
    proc = subprocess.Popen(
        [node, str(BROWSER_DIR / script)],
        cwd=str(BROWSER_DIR),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(json.dumps(scenario), timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=STOP_TIMEOUT)
        stdout += json.dumps({"done": True, "ok": False, "error": f"killed after {timeout} s"})
    lines: list[dict[str, Any]] = []
    for raw in stdout.splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(raw))
    if stderr.strip():
        lines.append({"type": "stderr", "text": stderr[-3000:]})
    return lines


def report(lines: list[dict[str, Any]]) -> str:
    """Render the driver output for an assertion message.

    :param lines: the driver's lines.
    :returns: text.
    """
    return "\n".join(json.dumps(line) for line in lines)


def check_scenario(
    scenario: dict[str, Any], server: ExampleServer, screenshot: Path
) -> list[dict[str, Any]]:
    """Run the browser scenario against an example and check every common step passed.

    :param scenario: ``kind`` and ``users`` (see chat_scenario.js); the URL and
        screenshot are added.
    :param server: the running example.
    :param screenshot: where the driver saves the page.
    :returns: the driver's lines, for example-specific checks.
    """
    node = need_browser()
    lines = run_scenario(
        node, {"base_url": server.url, "screenshot": str(screenshot), "users": {}, **scenario}
    )
    done = [line for line in lines if line.get("done")]
    assert done and done[-1]["ok"], report(lines) + "\n--- server log:\n" + server.log_tail()
    steps = {line["step"] for line in lines if line.get("ok") and "step" in line}
    assert steps >= EXPECTED_STEPS, report(lines)
    assert screenshot.is_file()
    return lines
