"""Private Redis-protocol servers for the URL-scheme tests: a unix socket only, or TLS only.

- :func:`make_certs` writes a throwaway CA and a server certificate for
  ``127.0.0.1`` (CN and IP SAN) with the ``openssl`` command line.
- :class:`PrivateServer` runs ``redis-server`` (or ``valkey-server``, same
  options) with ``--port 0``, so the only way in is the unix socket or the TLS
  port; it is killed by PID (through a :class:`tests.support.ServerProcess`).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.support import HOST, ServerProcess, free_port, port_open

__all__ = ["BINARIES", "Certs", "PrivateServer", "make_certs", "server_binary", "short_tmpdir"]

#: ``name -> binary`` of the Redis-protocol servers the tests try
BINARIES = {"redis": "redis-server", "valkey": "valkey-server"}

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_SERVER_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
"""


def server_binary(name: str) -> str | None:
    """:returns: the path of ``redis-server`` / ``valkey-server``, or None when missing.

    :param name: a key of :data:`BINARIES`.
    """
    return shutil.which(BINARIES[name])


@dataclass(frozen=True)
class Certs:
    """Paths of the generated PEM files."""

    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


def make_certs(directory: Path) -> Certs:
    """Write ``ca.pem`` (a throwaway CA) and ``server.pem`` / ``server.key`` for 127.0.0.1.

    :param directory: where the files go.
    :returns: their paths.
    """
    _openssl(
        "req",
        "-x509",
        *_EC_KEY,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sio-wsgi test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    _openssl(
        "req",
        "-new",
        *_EC_KEY,
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        f"/CN={HOST}",
        cwd=directory,
    )
    (directory / "server.ext").write_text(_SERVER_EXT)
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        cwd=directory,
    )
    return Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key")


def _unix_open(path: Path) -> bool:
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(0.5)
        sock.connect(str(path))
        return True
    return False


class PrivateServer:
    """A private ``redis-server`` / ``valkey-server`` with no plain TCP port.

    :param binary: the server binary.
    :param workdir: its working directory (log, socket); keep the path short
        (a unix socket path is limited to ~107 bytes).
    :param unix_socket: listen on ``workdir/r.sock``.
    :param certs: listen with TLS on a free port.
    """

    def __init__(
        self, binary: str, workdir: Path, unix_socket: bool = False, certs: Certs | None = None
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.socket_path = workdir / "r.sock" if unix_socket else None
        self.certs = certs
        self.tls_port = free_port() if certs is not None else None
        self.log_path = workdir / "server.log"
        self.process = ServerProcess(
            self.command(),
            self.log_path,
            port=self.tls_port,
            ready=self._ready,
            cwd=workdir,
            name=Path(binary).name,
            start_timeout=10,
        )

    def command(self) -> list[str]:
        """:returns: the command line."""
        cmd = [
            self.binary,
            "--port",
            "0",
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.workdir),
        ]
        if self.socket_path is not None:
            cmd += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        if self.certs is not None:
            certs = self.certs
            cmd += [
                "--tls-port",
                str(self.tls_port),
                "--tls-cert-file",
                str(certs.cert),
                "--tls-key-file",
                str(certs.key),
                "--tls-ca-cert-file",
                str(certs.ca),
                "--tls-auth-clients",
                "no",
            ]
        return cmd

    def _ready(self) -> bool:
        if self.socket_path is not None and not _unix_open(self.socket_path):
            return False
        return self.tls_port is None or port_open(self.tls_port)

    def start(self) -> None:
        """Start it and wait (10 s at most) until it accepts connections.

        :raises RuntimeError: when it does not.
        """
        self.process.start()

    def url(self, **query: Any) -> str:
        """:returns: the ``unix://`` or ``rediss://`` URL (with ``query`` arguments).

        :param query: URL query arguments (``ssl_ca_certs=...``).
        """
        args = urlencode({k: str(v) for k, v in query.items()})
        if self.socket_path is not None:
            return f"unix://{self.socket_path}?db=0" + (f"&{args}" if args else "")
        return f"rediss://{HOST}:{self.tls_port}/0" + (f"?{args}" if args else "")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, by PID."""
        self.process.stop()


def short_tmpdir() -> Path:
    """:returns: a fresh directory with a short path (for unix sockets)."""
    return Path(tempfile.mkdtemp(prefix="siow-r-"))
