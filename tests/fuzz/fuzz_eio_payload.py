"""atheris target: the Engine.IO polling payload decoder and ``decode_wire``.

The input is a POST body: it goes through strict UTF-8 decoding (the polling
transport answers 400 on failure) and then :func:`sio_wsgi.protocol.eio.decode_payload`;
the raw bytes also go through ``decode_wire`` as a WebSocket binary message.
"""

from __future__ import annotations

import atheris
from fuzz_common import run

with atheris.instrument_imports():
    from sio_wsgi.exceptions import RemoteProtocolError
    from sio_wsgi.protocol import eio


def test_one_input(data: bytes) -> None:
    """Decode one polling body; only RemoteProtocolError may come out."""
    eio.decode_wire(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        packets = eio.decode_payload(text)
    except RemoteProtocolError:
        return
    if len(packets) != text.count(eio.SEPARATOR) + 1:
        raise AssertionError("packet count does not match the separators")
    for packet in packets:
        if not isinstance(packet.type, eio.PacketType):
            raise AssertionError(f"bad packet type {packet.type!r}")
    try:
        eio.decode_wire(text)
    except RemoteProtocolError:
        pass


if __name__ == "__main__":
    run(test_one_input)
