"""Inbox: this process's mailbox on the bus, for the session relay.

The session relay (:mod:`sio_wsgi.engine.relay`) sends messages to one process
rather than to every node. Such a message starts with ``DIRECT_MESSAGE_PREFIX``
and goes, in order of preference:

- over a direct link (:mod:`sio_wsgi.managers.direct`) when the receiving
  process announced one in its heartbeats and it can be reached from here;
- else through the broker, to the receiver's inbox channel (the caller's job).

:class:`Inbox` keeps what that needs: the handler for this process's own inbox
messages, its :class:`~sio_wsgi.managers.direct.DirectLinks` (opened with the first
handler), the addresses other processes announced, and the handler told when a
link to one of them closes. It does no broker I/O: :class:`~sio_wsgi.managers.link.BusLink`
publishes and subscribes, and asks the inbox what to announce and where to send.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable

from sio_wsgi.engine.ports import DIRECT_MESSAGE_PREFIX
from sio_wsgi.managers import messages as bus
from sio_wsgi.managers.direct import DirectLinks
from sio_wsgi.runtime.base import Driver

__all__ = ["Inbox", "MACHINE", "reachable"]

#: this machine's name, announced with a direct links address
MACHINE = socket.gethostname()


def reachable(address: str, machine: str) -> bool:
    """Whether a node's announced direct links address can be reached from here:
    a loopback address only from the same machine.

    :param address: ``ip:port`` (IPv6 in brackets) as announced.
    :param machine: the announcing machine's name.
    """
    ip = address.rpartition(":")[0].strip("[]")
    try:
        loopback = ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False
    return not loopback or machine == MACHINE


class Inbox:
    """This process's inbox messages, its direct links and the other processes' addresses.

    :param host_id: this process's id on the bus.
    :param log: where failures to open the links are logged.
    :param relay_address: the IP address the direct links listen on (``None``: no
        direct links; inbox messages then always go through the broker).
    """

    def __init__(self, host_id: str, log: logging.Logger, relay_address: str | None) -> None:
        self.host_id = host_id
        self.log = log
        self.relay_address = relay_address
        #: this process's direct links, once :meth:`set_handler` opened them
        self.links: DirectLinks | None = None
        #: host id -> (``ip:port``, token) of the other processes' direct links
        self.peers: dict[str, tuple[str, str]] = {}
        #: bus messages that came over a direct link (dropped: links carry inbox messages only)
        self.dropped = 0
        self._handler: Callable[[bytes], None] | None = None
        self._lost_handler: Callable[[str], None] | None = None

    # ------------------------------------------------------------ handlers

    def set_handler(self, handler: Callable[[bytes], None] | None, driver: Driver | None) -> bool:
        """Deliver this process's inbox messages to ``handler``.

        The first handler also opens the direct links, as tasks of ``driver``
        (when ``relay_address`` is set and ``driver`` is given).

        :returns: True when the links were opened now (the caller announces them).
        """
        self._handler = handler
        if handler is None or self.links is not None or self.relay_address is None:
            return False
        if driver is None:
            return False
        try:
            self.links = DirectLinks(
                self.host_id, driver, self._receive_link, self.relay_address, lost=self._link_lost
            )
        except OSError as exc:
            self.log.error(
                "cannot listen for direct links on %s (%s): relaying through the broker",
                self.relay_address,
                exc,
            )
            return False
        return True

    def set_lost_handler(self, handler: Callable[[str], None] | None) -> None:
        """Call ``handler(host)`` when the direct link to process ``host`` closes."""
        self._lost_handler = handler

    def deliver(self, raw: bytes) -> None:
        """Hand one inbox message (from the broker or a link) to the handler."""
        handler = self._handler
        if handler is None:
            return
        try:
            handler(raw)
        except Exception:  # one bad message must not stop the listener
            self.log.exception("error handling a direct bus message")

    def _receive_link(self, raw: bytes) -> None:
        """A message of a direct link: inbox messages only (bus messages go through
        the broker, to every node)."""
        if raw[:1] == DIRECT_MESSAGE_PREFIX:
            self.deliver(raw)
        else:
            self.dropped += 1

    def _link_lost(self, host: str) -> None:
        handler = self._lost_handler
        if handler is not None:
            handler(host)

    # ------------------------------------------------------------ sending

    def send(self, host: str, data: bytes) -> bool:
        """Send ``data`` to process ``host`` over its direct link.

        :returns: False when there is no usable link (send it through the broker).
        """
        links = self.links
        peer = self.peers.get(host)
        return links is not None and peer is not None and links.send(host, *peer, data)

    def counts(self) -> tuple[int, int]:
        """Messages sent and received over the direct links."""
        if self.links is None:
            return 0, 0
        return self.links.counts["sent"], self.links.counts["received"]

    # ------------------------------------------------------------ announcements

    def hello(self, reply: bool = False) -> bus.Hello:
        """This node's heartbeat, with its direct links' address when it has them."""
        links = self.links
        if links is None:
            return bus.Hello(reply=reply)
        return bus.Hello(reply=reply, direct=links.address, token=links.token, machine=MACHINE)

    def heard(self, host: str, msg: bus.Hello) -> None:
        """Process ``host``'s heartbeat: note (or forget) its direct links address."""
        if msg.direct and msg.token and reachable(msg.direct, msg.machine):
            self.peers[host] = (msg.direct, msg.token)
        else:
            self.forget(host)

    def forget(self, host: str) -> None:
        """Process ``host`` left or went silent: drop its address and link."""
        self.peers.pop(host, None)
        if self.links is not None:
            self.links.forget(host)

    def close(self) -> None:
        """Close the direct links (at shutdown)."""
        if self.links is not None:
            self.links.close()
