"""The CONNECT phase of the Socket.IO layer (a base of :class:`~sio_wsgi.dispatch.Dispatcher`).

A CONNECT packet for a namespace:

1. is refused with CONNECT_ERROR "Invalid namespace" unless the namespace is
   allowed (the server's ``namespaces`` option, a registered handler, or a dynamic
   namespace family that admits it);
2. restores a recovered session (connection state recovery) or registers a new sid,
   whose emits wait in the client's *pending buffer* from now on;
3. runs, in the client's serial queue, the connect middlewares (skipped for a
   recovered session when ``skip_middlewares``) and the ``connect`` handler;
4. sends the CONNECT reply followed by what was held back, in order (with
   ``always_connect`` the reply goes first and a refusal becomes a DISCONNECT), or
   CONNECT_ERROR with the refusal's payload.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from sio_wsgi.clients import Client
from sio_wsgi.config import ServerOptions
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.exceptions import ConnectionRefusedError
from sio_wsgi.hooks import Hooks
from sio_wsgi.manager import Manager
from sio_wsgi.namespace import CATCH_ALL, ROOT_NAMESPACE, HandlerRegistry
from sio_wsgi.observers import Observers
from sio_wsgi.protocol.sio import Packet, PacketType
from sio_wsgi.recovering import SessionRecovery
from sio_wsgi.recovery import RecoveryStore

__all__ = ["ConnectPhase", "REFUSED", "INVALID_NAMESPACE"]

#: the CONNECT_ERROR payload of a refusal that gives no reason
REFUSED = {"message": "Connection rejected by server"}
#: the CONNECT_ERROR payload for a namespace the server does not serve
INVALID_NAMESPACE = {"message": "Invalid namespace"}


class ConnectPhase:
    """CONNECT handling; the Dispatcher provides the attributes declared here."""

    options: ServerOptions
    handlers: HandlerRegistry
    manager: Manager
    hooks: Hooks
    observers: Observers
    logger: logging.Logger
    always_connect: bool
    recovery: RecoveryStore | None
    recovering: SessionRecovery | None
    _skip_recovered: bool
    _submit: Callable[..., None]
    _send: Callable[..., bool]

    def encode(self, packet: Packet) -> Outgoing:
        """Encode one packet (the Dispatcher's)."""
        raise NotImplementedError

    def _send_packet(self, client: Client, packet: Packet) -> bool:
        raise NotImplementedError

    def _in_use(self, namespace: str) -> bool:
        return any(True for _ in self.manager.get_participants(namespace, None))

    def _namespace_allowed(self, namespace: str, auth: Any) -> bool:
        handlers = self.handlers
        if handlers.families and handlers.admit(namespace, auth, self._in_use):
            return True
        allowed = self.options.namespaces
        if allowed == CATCH_ALL:
            return True
        if allowed is None:
            registered = set(self.handlers.namespaces())
            return namespace == ROOT_NAMESPACE or namespace in registered or CATCH_ALL in registered
        return namespace in ((allowed,) if isinstance(allowed, str) else allowed)

    def _on_connect_packet(self, client: Client, packet: Packet) -> None:
        ns = packet.namespace
        if not self._namespace_allowed(ns, packet.data):
            self._send_packet(client, Packet(PacketType.CONNECT_ERROR, ns, INVALID_NAMESPACE))
            return
        recovering = self.recovering
        recovered = None if recovering is None else recovering.recover(client, ns, packet.data)
        already = False
        if recovered is None:
            with client.lock:
                already = ns in client.namespaces
                if not already:
                    sid = self.manager.connect(client.eio_sid, ns)
                    client.namespaces[ns] = sid
                    client.pending[sid] = []
                    if self.recovery is not None:
                        client.pids[ns] = secrets.token_urlsafe(15)
            if self.recovery is not None and not already:
                self.recovery.changed(ns, sid)
        else:
            already, sid = recovered is False, str(recovered)
        if already:
            self.logger.warning("%s is already connected to %s", client.eio_sid, ns)
            return
        self._submit(client, self._run_connect, client, sid, ns, packet.data)

    def _run_connect(self, client: Client, sid: str, ns: str, auth: Any) -> None:
        answer = {"sid": sid}
        pid = client.pids.get(ns)
        if pid is not None:
            answer["pid"] = pid
        reply = self.encode(Packet(PacketType.CONNECT, ns, answer))
        if self.always_connect:
            self._flush_connect(client, sid, reply)
        refusal = self._call_connect_handler(client, sid, ns, auth)
        with client.lock:
            gone = client.closed or client.namespaces.get(ns) != sid
        if refusal is None and gone:
            refusal = REFUSED
        if refusal is None:
            client.ever_connected = True
            if not self.always_connect:
                self._flush_connect(client, sid, reply)
            self.observers.connected(sid, ns, client.eio_sid)  # observers: "connection" hook
        else:
            self._refuse(client, sid, ns, refusal)

    def _call_connect_handler(
        self, client: Client, sid: str, ns: str, auth: Any
    ) -> dict[str, Any] | None:
        """Run the connect middlewares and the connect handler; the CONNECT_ERROR
        payload when one refuses."""
        hooks = self.hooks
        if hooks.connect and not (self._skip_recovered and sid in client.recovered):
            refusal = hooks.run_connect(sid, ns, client.environ, auth)
            if refusal is not None:
                return refusal
        handler = self.handlers.resolve(ns, "connect")
        if handler is None:
            return None
        try:
            result = handler(sid, client.environ, auth)
        except ConnectionRefusedError as exc:
            return exc.error_args
        except Exception:
            self.logger.exception("connect handler for %s failed", ns)
            return REFUSED
        return REFUSED if result is False else None

    def _refuse(self, client: Client, sid: str, ns: str, refusal: dict[str, Any]) -> None:
        """Drop what was held back for ``sid``, forget it, tell the client."""
        with client.lock:
            client.pending.pop(sid, None)
            client.missed.pop(sid, None)
            client.pids.pop(ns, None)
            client.recovered.pop(sid, None)
            if client.namespaces.get(ns) == sid:
                del client.namespaces[ns]
        self.manager.disconnect(sid, ns)
        if self.always_connect:  # it got a CONNECT reply already
            self._send_packet(client, Packet(PacketType.DISCONNECT, ns))
        else:
            self._send_packet(client, Packet(PacketType.CONNECT_ERROR, ns, refusal))

    def _flush_connect(self, client: Client, sid: str, first: Outgoing) -> None:
        """Send the CONNECT reply, then what was held back meanwhile, in order (a
        recovered session's missed packets come first, as the Node server sends them)."""
        with client.lock:
            missed = client.missed.pop(sid, None)
        batch = [*missed, first] if missed else [first]
        while True:
            with client.lock:
                queued = client.pending.get(sid)
                if queued is None:
                    return
                if not queued and not batch:
                    del client.pending[sid]
                    if not client.pending:
                        client.pending = {}  # an emptied dict keeps its table (184 bytes)
                    return
                client.pending[sid] = []
            batch.extend(queued)
            self._send(client.eio_sid, batch[0] if len(batch) == 1 else Outgoing.join(batch))
            batch = []
