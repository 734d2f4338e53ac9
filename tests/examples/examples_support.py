"""Helpers for the example tests: example servers in subprocesses, the Playwright driver.

Every process is started on a free 127.0.0.1 port and killed by PID.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "ROOT",
    "OUTPUT",
    "output_path",
    "CHROMIUM",
    "ExampleServer",
    "free_port",
    "in_ci",
    "need_browser",
    "need_client_js",
    "run_scenario",
    "png_bytes",
]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "tests" / "output"
BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = Path(os.environ.get("SIO_CHROMIUM", "/usr/bin/chromium"))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


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


def in_ci() -> bool:
    """Whether ``CI=true`` (then missing tools fail instead of skipping).

    :returns: True under CI.
    """
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail under CI.

    :param reason: what is missing.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    :returns: the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def need_browser() -> str:
    """Check Chromium, node and playwright-core; skip (fail under CI) when missing.

    :returns: the node executable.
    """
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        skip_or_fail("tests/browser/node_modules missing: cd tests/browser && npm install")
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


class ExampleServer:
    """An example app in a subprocess on 127.0.0.1, killed by PID on :meth:`stop`.

    :param argv: the command, with ``{port}`` replaced by the port.
    :param cwd: working directory.
    :param log_path: file receiving stdout and stderr.
    :param env: extra environment variables.
    :param ready_path: URL path answering 200 once the server is up.
    """

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        ready_path: str = "/health",
    ) -> None:
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.cwd = cwd
        self.log_path = log_path
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(cwd)]),
                        PYTHONUNBUFFERED="1", **(env or {}))  # fmt: skip
        self.ready_path = ready_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ExampleServer:
        """Start and wait for the ready URL.

        :returns: self.
        :raises RuntimeError: when it does not come up.
        """
        with open(self.log_path, "ab") as log:
            log.write(f"=== {' '.join(self.argv)}\n".encode())
            self.proc = subprocess.Popen(
                self.argv, cwd=str(self.cwd), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as r:
                    if r.status == 200:
                        return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.argv} did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, by PID; reaps the process."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)

    def log_tail(self, n: int = 80) -> str:
        """The end of the server log.

        :param n: lines.
        :returns: the text.
        """
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> ExampleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_scenario(
    node: str, scenario: dict[str, Any], timeout: float = 180.0
) -> list[dict[str, Any]]:
    """Run ``tests/browser/chat_scenario.js``; kill it by PID on timeout.

    :param node: node executable.
    :param scenario: the scenario (see the script).
    :param timeout: seconds.
    :returns: the JSON lines it printed.
    """
    scenario = {"chromium": str(CHROMIUM), "png_b64": base64.b64encode(png_bytes()).decode(),
                **scenario}  # fmt: skip
    proc = subprocess.Popen(
        [node, str(BROWSER_DIR / "chat_scenario.js")], cwd=str(BROWSER_DIR),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
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


def python() -> str:
    """The interpreter running the tests.

    :returns: its path.
    """
    return sys.executable
