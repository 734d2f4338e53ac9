"""atheris target: the Socket.IO packet decoder and the attachment assembler.

The input is split into a short sequence of Engine.IO messages (text or binary,
chosen by the fuzzer) fed the way the server feeds them: ``decode`` each text
packet, and when it announces attachments, hand the next messages to an
:class:`~sio_wsgi.protocol.sio.AttachmentAssembler`. The same bytes are also
decoded as a msgpack whole packet.
"""

from __future__ import annotations

import atheris
from fuzz_common import run

with atheris.instrument_imports():
    from sio_wsgi.exceptions import RemoteProtocolError
    from sio_wsgi.protocol import sio
    from sio_wsgi.protocol.serializers import JSONSerializer, MsgpackSerializer

JSON = JSONSerializer()
MSGPACK = MsgpackSerializer()
LIMITS = sio.Limits(max_attachments=4, max_json_depth=16)


def _messages(fdp: atheris.FuzzedDataProvider) -> list[str | bytes]:
    out: list[str | bytes] = []
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        size = fdp.ConsumeIntInRange(0, 256)
        if fdp.ConsumeBool():
            out.append(fdp.ConsumeBytes(size))
        else:
            out.append(fdp.ConsumeUnicodeNoSurrogates(size))
    return out


def _feed(messages: list[str | bytes]) -> None:
    assembler: sio.AttachmentAssembler | None = None
    for message in messages:
        if assembler is not None:
            packet = assembler.add(message)
            if packet is not None:
                assembler = None
                if packet.attachments:
                    raise AssertionError("completed packet still expects attachments")
            continue
        packet = sio.decode(message, JSON, LIMITS)
        if packet.attachments > LIMITS.max_attachments:
            raise AssertionError("attachment limit not enforced")
        if packet.attachments:
            assembler = sio.AttachmentAssembler(packet)


def test_one_input(data: bytes) -> None:
    """Decode one message sequence; only RemoteProtocolError may come out."""
    try:
        sio.decode(data, MSGPACK, LIMITS)
    except RemoteProtocolError:
        pass
    fdp = atheris.FuzzedDataProvider(data)
    try:
        _feed(_messages(fdp))
    except RemoteProtocolError:
        pass


if __name__ == "__main__":
    run(test_one_input)
