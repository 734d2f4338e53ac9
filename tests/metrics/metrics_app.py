"""The server of tests/metrics: metrics on, served at /metrics (run by gunicorn).

Events: ``echo`` (acks its argument), ``ask`` (calls the client's ``question`` and
acks the answer: an ack round trip), ``boom`` (a handler that raises).
``GET /release`` emits ``release`` to everyone; ``GET /health`` answers 200.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sio_wsgi

sio = sio_wsgi.Server(metrics=True, cors_allowed_origins="*")


@sio.on("echo")  # type: ignore[untyped-decorator]
def echo(sid: str, data: Any = None) -> Any:
    return data


@sio.on("ask")  # type: ignore[untyped-decorator]
def ask(sid: str) -> Any:
    return sio.call("question", "ready?", to=sid, timeout=5)


@sio.on("boom")  # type: ignore[untyped-decorator]
def boom(sid: str) -> None:
    raise RuntimeError("a failing handler (the metrics test expects it)")


def plain(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/release":
        sio.emit("release", "go")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = sio_wsgi.WSGIApp(sio, plain, metrics_path="/metrics")
