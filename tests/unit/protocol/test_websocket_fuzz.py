"""Property tests (hypothesis) of the WebSocket frame parser."""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sio_wsgi.exceptions import RemoteProtocolError
from sio_wsgi.protocol.websocket import (
    BinaryMessage,
    CloseReceived,
    Event,
    FrameError,
    FrameParser,
    Ping,
    Pong,
    TextMessage,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def client_frame(
    opcode: int, payload: bytes, mask: bytes, *, fin: bool = True, rsv: int = 0
) -> bytes:
    """Build a masked client frame with minimal length encoding.

    :param opcode: raw opcode.
    :param payload: clear payload.
    :param mask: 4-byte masking key.
    :param fin: FIN bit.
    :param rsv: RSV bits.
    :return: frame bytes.
    """
    size = len(payload)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    if size <= 125:
        head = bytes([first, 0x80 | size])
    elif size <= 0xFFFF:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@dataclass
class Outcome:
    """Everything a parser produced for a stream."""

    events: list[Event]
    error: tuple[int, str] | None


def run(stream: bytes, cuts: list[int], max_size: int = 1_000_000) -> Outcome:
    """Feed ``stream`` split at ``cuts``; collect events and the error.

    :param stream: bytes to feed.
    :param cuts: split offsets (any order, may repeat or exceed the length).
    :param max_size: parser message limit.
    :return: the outcome.
    """
    parser = FrameParser(max_message_size=max_size)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    events: list[Event] = []
    for start, end in itertools.pairwise(bounds):
        try:
            events.extend(parser.feed(stream[start:end]))
        except FrameError as exc:
            events.extend(exc.events)
            return Outcome(events, (exc.close_code, str(exc)))
    return Outcome(events, None)


masks = st.binary(min_size=4, max_size=4)


@st.composite
def message_stream(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    """A valid stream of fragmented messages with interleaved control frames.

    :param draw: hypothesis draw.
    :return: the stream and the events it must decode to.
    """
    frames: list[bytes] = []
    expected: list[Event] = []
    for _ in range(draw(st.integers(0, 5))):
        is_text = draw(st.booleans())
        if is_text:
            text = draw(st.text(max_size=300))
            raw = text.encode("utf-8")
            message: Event = TextMessage(text)
        else:
            raw = draw(st.binary(max_size=300))
            message = BinaryMessage(raw)
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        for index, piece in enumerate(pieces):
            opcode = (0x1 if is_text else 0x2) if index == 0 else 0x0
            last = index == len(pieces) - 1
            frames.append(client_frame(opcode, piece, draw(masks), fin=last))
            if last:
                expected.append(message)
            if draw(st.booleans()):
                data = draw(st.binary(max_size=125))
                is_ping = draw(st.booleans())
                frames.append(client_frame(0x9 if is_ping else 0xA, data, draw(masks)))
                expected.append(Ping(data) if is_ping else Pong(data))
    if draw(st.booleans()):
        reason = draw(st.text(max_size=20))
        frames.append(client_frame(0x8, b"\x03\xe8" + reason.encode(), draw(masks)))
        expected.append(CloseReceived(1000, reason))
    return b"".join(frames), expected


@SETTINGS
@given(message_stream(), st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_decodes_identically(sample: tuple[bytes, list[Event]], cuts: list[int]) -> None:
    stream, expected = sample
    assert run(stream, []) == Outcome(expected, None)
    assert run(stream, cuts) == Outcome(expected, None)


@SETTINGS
@given(message_stream())
def test_byte_by_byte_decodes_identically(sample: tuple[bytes, list[Event]]) -> None:
    stream, expected = sample
    assert run(stream, list(range(len(stream)))) == Outcome(expected, None)


@SETTINGS
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0), max_size=10))
def test_random_bytes_only_raise_remote_protocol_error(data: bytes, cuts: list[int]) -> None:
    parser = FrameParser(max_message_size=1000)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        try:
            parser.feed(data[start:end])
        except RemoteProtocolError as exc:
            assert exc.close_code in (1002, 1007, 1009)
            return


@st.composite
def arbitrary_frames(draw: st.DrawFn) -> bytes:
    """Masked frames with random (often invalid) header fields.

    :param draw: hypothesis draw.
    :return: the stream.
    """
    frames = []
    for _ in range(draw(st.integers(1, 6))):
        opcode = draw(st.sampled_from([0, 1, 2, 8, 9, 10, 3, 11]))
        payload = draw(
            st.one_of(
                st.binary(max_size=150),
                st.text(max_size=40).map(str.encode),
                st.integers(0, 5000).map(lambda c: struct.pack("!H", c)),
            )
        )
        fin = draw(st.booleans())
        rsv = draw(st.sampled_from([0, 0, 0, 0, 1, 4]))
        frames.append(client_frame(opcode, payload, draw(masks), fin=fin, rsv=rsv))
    return b"".join(frames)


@SETTINGS
@given(arbitrary_frames(), st.lists(st.integers(min_value=0), max_size=20))
def test_outcome_including_errors_is_split_invariant(stream: bytes, cuts: list[int]) -> None:
    assert run(stream, cuts, max_size=200) == run(stream, [], max_size=200)
