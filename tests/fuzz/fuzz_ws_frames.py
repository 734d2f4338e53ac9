"""atheris target: the WebSocket frame parser (RFC 6455, client frames).

The input is fed to :class:`~sio_wsgi.protocol.websocket.FrameParser` in pieces
whose sizes come from the fuzzer; the events must not depend on the split.
"""

from __future__ import annotations

import atheris
from fuzz_common import run

with atheris.instrument_imports():
    from sio_wsgi.exceptions import RemoteProtocolError
    from sio_wsgi.protocol import websocket as ws

MAX = 4096


def _parse(stream: bytes, cuts: list[int]) -> tuple[list[object], int | None]:
    parser = ws.FrameParser(MAX)
    events: list[object] = []
    pos = 0
    try:
        for cut in [*cuts, len(stream)]:
            end = min(max(cut, pos), len(stream))
            events.extend(parser.feed(stream[pos:end]))
            pos = end
    except RemoteProtocolError as exc:
        events.extend(getattr(exc, "events", []))
        return events, exc.close_code
    return events, None


def test_one_input(data: bytes) -> None:
    """Parse a client byte stream, whole and in pieces; only RemoteProtocolError may come out."""
    fdp = atheris.FuzzedDataProvider(data)
    cuts = sorted(fdp.ConsumeIntInRange(0, 512) for _ in range(fdp.ConsumeIntInRange(0, 6)))
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    whole = _parse(stream, [])
    split = _parse(stream, cuts)
    if whole != split:
        raise AssertionError(f"split-dependent result: {whole!r} != {split!r}")


if __name__ == "__main__":
    run(test_one_input)
