"""The polling-to-WebSocket upgrade handshake as a pure object (no I/O here).

On the new WebSocket the client sends ``2probe``; the server answers
``3probe`` and makes the pending polling GET (if any) return ``6`` (noop), so
the client's polling transport goes quiet; the client then sends ``5`` and the
WebSocket carries the session from there on. Anything else fails the upgrade.
"""

from __future__ import annotations

import enum

from ..protocol.eio import PING_PROBE, UPGRADE

__all__ = ["ProbeStep", "UpgradeProbe"]


class ProbeStep(enum.Enum):
    """What the transport does after a text frame of the upgrade handshake."""

    ANSWER = "answer"  # send 3probe; answer a waiting GET with a noop
    COMPLETE = "complete"  # the WebSocket takes over the session
    FAIL = "fail"  # not the handshake: drop the WebSocket, keep polling


class UpgradeProbe:
    """Follows the client's side of one upgrade handshake."""

    __slots__ = ("probed",)

    def __init__(self) -> None:
        self.probed = False

    def receive(self, text: str) -> ProbeStep:
        """The next step for a text frame received during the upgrade."""
        if not self.probed and text == PING_PROBE:
            self.probed = True
            return ProbeStep.ANSWER
        if self.probed and text == UPGRADE:
            return ProbeStep.COMPLETE
        return ProbeStep.FAIL
