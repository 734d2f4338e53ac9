"""The CONNECT side of connection state recovery, and the task that keeps live
sessions in a shared store (the dispatcher's part; what is kept and replayed is in
:mod:`sio_wsgi.recovery`)."""

from __future__ import annotations

import logging
from typing import Any

from sio_wsgi.clients import Client
from sio_wsgi.manager import Manager
from sio_wsgi.recovery import NO_OFFSET, PERSIST_EVERY, RecoveryStore, Saved
from sio_wsgi.runtime.base import Driver, Task

__all__ = ["SessionRecovery"]


class SessionRecovery:
    """Recovers dropped sessions at CONNECT and persists live ones (shared stores).

    :param store: the recovery store.
    :param manager: the client manager (rooms).
    :param logger: the server's logger.
    :param clients: the dispatcher's ``eio_sid -> Client`` table.
    """

    def __init__(
        self,
        store: RecoveryStore,
        manager: Manager,
        logger: logging.Logger,
        clients: dict[str, Client],
    ) -> None:
        self.store = store
        self.manager = manager
        self.logger = logger
        self.clients = clients
        self._persister: Task | None = None
        self._closing = False

    def ended(self, client: Client, sid: str, ns: str, recoverable: bool) -> None:
        """``sid`` left ``ns`` (its disconnect handler ran): forget it in the manager,
        and keep it for its recovery when the connection dropped (``recoverable``)."""
        rooms = self.manager.memberships(sid, ns) if recoverable else None
        self.manager.disconnect(sid, ns)
        with client.lock:
            data = client.sessions.pop(ns, None)
            pid = client.pids.pop(ns, None)
            client.recovered.pop(sid, None)
        if pid is not None:
            if rooms:  # kept after the manager forgot it: a restore can only follow
                self.store.save(Saved(pid, sid, ns, rooms, data))
            else:
                self.store.forget(pid)

    def _client_of(self, sid: str, namespace: str) -> Client | None:
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        return None if eio_sid is None else self.clients.get(eio_sid)

    def recover(self, client: Client, ns: str, auth: Any) -> str | bool | None:
        """Connection state recovery: take back the dropped session named in ``auth``
        (its ``pid`` and ``offset``), its missed packets held back until the CONNECT
        reply. The sid; None: nothing to recover (a new session); False: the client is
        in ``ns`` already."""
        store = self.store
        if not isinstance(auth, dict) or "pid" not in auth:
            return None
        with client.lock:
            if ns in client.namespaces:
                return False
        saved = store.take(auth.get("pid"), ns)
        if saved is None or self.manager.is_connected(saved.sid, ns):
            # unknown, expired, or still connected here (the old connection's drop not
            # seen yet): a new session
            self.logger.info("%s: no session to recover in %s, a new one", client.eio_sid, ns)
            return None
        sid = saved.sid
        with store.lock:  # atomic with deliveries: each missed packet replayed or live, once
            with client.lock:
                if ns in client.namespaces:
                    return False
                self.manager.restore(client.eio_sid, ns, sid, saved.rooms)
                client.namespaces[ns] = sid
                client.pending[sid] = []  # what comes live from now on waits for the reply
            upto = store.head
        missed = store.missed(saved, auth.get("offset", NO_OFFSET), upto)
        if missed is None:  # some of what it missed is gone: a new session after all
            with client.lock:
                client.namespaces.pop(ns, None)
                client.pending.pop(sid, None)
            self.manager.disconnect(sid, ns)
            self.logger.info("%s: %s missed too much to recover, a new one", client.eio_sid, sid)
            return None
        with client.lock:
            client.missed[sid] = missed
            client.pids[ns] = saved.pid
            client.recovered[sid] = None
            if isinstance(saved.data, dict):
                client.sessions[ns] = saved.data
        store.changed(ns, sid)  # a shared store keeps the live state again
        self.logger.info(
            "%s recovered %s in %s with %d missed packets", client.eio_sid, sid, ns, len(missed)
        )
        return sid

    def start(self, driver: Driver) -> None:
        """Start the task that keeps live sessions' state in a shared recovery store
        (one that has live state: a process that dies leaves its sessions there)."""
        store = self.store
        if store.shared and self._persister is None:
            self._persister = driver.spawn(self._persist_forever, driver)

    def stop(self) -> None:
        """Stop the persisting task (at shutdown)."""
        self._closing = True

    def _persist_forever(self, driver: Driver) -> None:
        store = self.store
        every = PERSIST_EVERY
        refresh_every = max(every, store.options.max_disconnection_duration / 3)
        refreshed = driver.monotonic()
        while not self._closing:
            driver.sleep(every)
            try:
                if driver.monotonic() - refreshed >= refresh_every:
                    refreshed = driver.monotonic()
                    store.take_dirty()
                    wanted = [
                        (ns, sid)
                        for client in list(self.clients.values())
                        for ns, sid in list(client.namespaces.items())
                    ]
                else:
                    wanted = store.take_dirty()
                snapshots = [s for s in map(self._snapshot, wanted) if s is not None]
                store.persist(snapshots)
            except Exception:  # one bad round must not stop the task
                self.logger.exception("keeping recovery state failed")

    def _snapshot(self, key: tuple[str, str]) -> Saved | None:
        ns, sid = key
        client = self._client_of(sid, ns)
        if client is None:
            return None
        with client.lock:
            pid = client.pids.get(ns)
            data = client.sessions.get(ns)
        if pid is None or client.namespaces.get(ns) != sid:
            return None
        return Saved(pid, sid, ns, self.manager.memberships(sid, ns), data)
