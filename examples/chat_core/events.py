"""The chat's Socket.IO side: nicknames, rooms, private messages, typing, files.

Framework-free on purpose, and shared by both examples: :func:`register` only
needs a :class:`sio_wsgi.Server` and a function that tells who a new connection
is. The Flask app (``flask_chat/app.py``) names people from Flask's session
cookie; the Django project (``django_chat/chat/sockets.py``) from Django's auth.

Events the browser sends (every one but ``typing`` asks for an ack)::

    join     {"room"}                         -> {"ok", "room", "members"}
    leave    {"room"}                         -> {"ok"}
    message  {"id", "room", "text"}           -> {"ok", "ts"}     ("sent")
    private  {"id", "to", "text"}             -> {"ok", "ts"} | {"ok": false, "error"}
    file     {"id", "room", "name", "type", "data": <binary>}  -> {"ok", "ts"}
    typing   {"room"}                         (volatile, no ack)

Events the server sends::

    welcome {"sid", "name", "rooms"} · rooms [{"name", "count"}] · members {"room", "members"}
    message / private / file (the browser acks them; the sender then gets ``delivered {"id"}``)
    typing {"room", "name"} (volatile) · notice {"room", "text"} · announcement {"text", "ts"}
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import sio_wsgi

__all__ = [
    "ChatEvents",
    "ChatState",
    "register",
    "announce",
    "DEFAULT_ROOMS",
    "MAX_FILE_BYTES",
    "MAX_TEXT",
]

logger = logging.getLogger(__name__)

DEFAULT_ROOMS = ("lobby", "python", "random")
MAX_FILE_BYTES = 512 * 1024
MAX_TEXT = 2000
MAX_ROOM_NAME = 32

Identify = Callable[[str, dict[str, Any], Any], str]
Handler = Callable[..., Any]


def _clean_room(value: Any) -> str:
    """Normalise a room name, raising ValueError when it is not usable.

    :param value: what the browser sent.
    :returns: the room name.
    """
    room = str(value or "").strip().lower().replace(" ", "-")[:MAX_ROOM_NAME]
    if not room or not all(c.isalnum() or c in "-_" for c in room):
        raise ValueError("room names are letters, digits, '-' and '_'")
    return room


class ChatState:
    """Who is connected and in which rooms (one process, in memory).

    Several connections may share a name (two tabs, or a reload racing the
    old connection's timeout); private messages reach all of them.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.names: dict[str, str] = {}
        self.rooms: dict[str, set[str]] = {room: set() for room in DEFAULT_ROOMS}

    def add(self, sid: str, name: str) -> None:
        """Remember a new connection.

        :param sid: its Socket.IO sid.
        :param name: its display name.
        """
        with self.lock:
            self.names[sid] = name

    def remove(self, sid: str) -> list[str]:
        """Forget a connection.

        :param sid: its sid.
        :returns: the rooms it was in.
        """
        with self.lock:
            self.names.pop(sid, None)
            left = [room for room, sids in self.rooms.items() if sid in sids]
            for room in left:
                self.rooms[room].discard(sid)
            return left

    def join(self, sid: str, room: str) -> None:
        """Put a connection in a room (created on first use).

        :param sid: its sid.
        :param room: the room.
        """
        with self.lock:
            self.rooms.setdefault(room, set()).add(sid)

    def leave(self, sid: str, room: str) -> None:
        """Take a connection out of a room.

        :param sid: its sid.
        :param room: the room.
        """
        with self.lock:
            self.rooms.get(room, set()).discard(sid)

    def members(self, room: str) -> list[str]:
        """Sorted, distinct names in a room.

        :param room: the room.
        """
        with self.lock:
            return sorted({self.names[s] for s in self.rooms.get(room, ()) if s in self.names})

    def room_list(self) -> list[dict[str, Any]]:
        """Every room with its member count (default rooms first)."""
        with self.lock:
            counts = {
                room: len({self.names.get(s) for s in sids}) for room, sids in self.rooms.items()
            }
        order = list(DEFAULT_ROOMS) + sorted(r for r in counts if r not in DEFAULT_ROOMS)
        return [{"name": room, "count": counts.get(room, 0)} for room in order]

    def sids_of(self, name: str) -> list[str]:
        """Every connection using ``name``.

        :param name: a display name.
        """
        with self.lock:
            return [sid for sid, n in self.names.items() if n == name]

    def name(self, sid: str) -> str:
        """The display name of a connection (``'?'`` once it is gone).

        :param sid: its sid.
        """
        with self.lock:
            return self.names.get(sid, "?")

    def in_room(self, sid: str, room: str) -> bool:
        """Whether a connection is in a room.

        :param sid: its sid.
        :param room: the room.
        """
        with self.lock:
            return sid in self.rooms.get(room, ())


class ChatEvents:
    """The Socket.IO handlers of the chat, one method per event.

    :param sio: the server.
    :param identify: ``identify(sid, environ, auth) -> name``.
    :param state: who is where.
    """

    EVENTS = ("connect", "disconnect", "join", "leave", "message", "private", "file", "typing")

    def __init__(self, sio: sio_wsgi.Server, identify: Identify, state: ChatState) -> None:
        self.sio = sio
        self.identify = identify
        self.state = state

    # -------------------------------------------------------------- helpers

    @staticmethod
    def now() -> int:
        """Milliseconds since the epoch, the browser's clock unit."""
        return round(time.time() * 1000)

    def broadcast_rooms(self) -> None:
        """Send every room's member count to everyone."""
        self.sio.emit("rooms", self.state.room_list())

    def broadcast_members(self, room: str) -> None:
        """Send a room's member list to that room.

        :param room: the room.
        """
        self.sio.emit("members", {"room": room, "members": self.state.members(room)}, to=room)

    def receipt_to(self, sender: str, msg_id: str) -> Callable[..., None]:
        """An ack callback telling ``sender`` that ``msg_id`` was delivered.

        :param sender: the sender's sid.
        :param msg_id: the message id chosen by the sender's page.
        :returns: the callback (called once per recipient that acked).
        """

        def acked(*_args: Any) -> None:
            self.sio.emit("delivered", {"id": msg_id}, to=sender)

        return acked

    def notice(self, room: str, text: str, skip_sid: str | None = None) -> None:
        """A grey line in a room's log.

        :param room: the room.
        :param text: the text.
        :param skip_sid: who should not get it.
        """
        self.sio.emit("notice", {"room": room, "text": text}, to=room, skip_sid=skip_sid)

    def do_join(self, sid: str, room: str) -> None:
        """Put a connection in a room and tell everyone.

        :param sid: its sid.
        :param room: the room.
        """
        self.sio.enter_room(sid, room)
        self.state.join(sid, room)
        self.notice(room, f"{self.state.name(sid)} joined #{room}", skip_sid=sid)
        self.broadcast_members(room)
        self.broadcast_rooms()

    def relay(
        self, sid: str, event: str, msg: dict[str, Any], to: str | list[str]
    ) -> dict[str, Any]:
        """Emit a message asking each recipient for an ack; answer the sender.

        :param sid: the sender.
        :param event: the event to emit.
        :param msg: the message (with its ``id``).
        :param to: a room or a list of sids.
        :returns: the sender's ack (``{"ok": True, "ts"}``).
        """
        msg["ts"] = self.now()
        self.sio.emit(event, msg, to=to, skip_sid=sid, callback=self.receipt_to(sid, msg["id"]))
        return {"ok": True, "ts": msg["ts"]}

    # -------------------------------------------------------------- handlers

    def connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        """Name the connection (or refuse it), welcome it, put it in the lobby."""
        name = self.identify(sid, environ, auth)
        self.state.add(sid, name)
        logger.info("%s connected as %s", sid, name)
        welcome = {"sid": sid, "name": name, "rooms": self.state.room_list()}
        self.sio.emit("welcome", welcome, to=sid)
        self.do_join(sid, "lobby")

    def disconnect(self, sid: str, reason: str) -> None:
        """Forget the connection; update the member lists it was on."""
        name = self.state.name(sid)
        for room in self.state.remove(sid):
            self.notice(room, f"{name} left")
            self.broadcast_members(room)
        self.broadcast_rooms()
        logger.info("%s (%s) disconnected: %s", sid, name, reason)

    def join(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        """``join {"room"}``: enter (or create) a room."""
        try:
            room = _clean_room(data.get("room"))
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        self.do_join(sid, room)
        return {"ok": True, "room": room, "members": self.state.members(room)}

    def leave(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        """``leave {"room"}``: leave a room (not the lobby)."""
        room = str(data.get("room", ""))
        if room == "lobby":
            return {"ok": False, "error": "everyone stays in #lobby"}
        self.sio.leave_room(sid, room)
        self.state.leave(sid, room)
        self.notice(room, f"{self.state.name(sid)} left #{room}")
        self.broadcast_members(room)
        self.broadcast_rooms()
        return {"ok": True}

    def message(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        """``message {"id", "room", "text"}``: to everyone else in the room."""
        room = str(data.get("room", ""))
        if not self.state.in_room(sid, room):
            return {"ok": False, "error": f"you are not in #{room}"}
        msg = {
            "id": str(data.get("id", "")),
            "room": room,
            "from": self.state.name(sid),
            "text": str(data.get("text", ""))[:MAX_TEXT],
        }
        return self.relay(sid, "message", msg, room)

    def private(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        """``private {"id", "to", "text"}``: to every connection of one user, nobody else."""
        targets = self.state.sids_of(str(data.get("to", "")))
        if not targets:
            return {"ok": False, "error": f"nobody called {data.get('to')!r} is online"}
        msg = {
            "id": str(data.get("id", "")),
            "from": self.state.name(sid),
            "to": data["to"],
            "text": str(data.get("text", ""))[:MAX_TEXT],
        }
        return self.relay(sid, "private", msg, targets)

    def file(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        """``file {"id", "room", "name", "type", "data": bytes}``: binary, to the room."""
        room, blob = str(data.get("room", "")), data.get("data")
        error = self._file_error(sid, room, blob)
        if error:
            return {"ok": False, "error": error}
        msg = {
            "id": str(data.get("id", "")),
            "room": room,
            "from": self.state.name(sid),
            "name": str(data.get("name", "file"))[:200],
            "type": str(data.get("type") or "application/octet-stream")[:100],
            "data": blob,
        }
        return self.relay(sid, "file", msg, room)

    def _file_error(self, sid: str, room: str, blob: Any) -> str | None:
        if not isinstance(blob, bytes):
            return "the file must be sent as binary"
        if len(blob) > MAX_FILE_BYTES:
            return f"files are limited to {MAX_FILE_BYTES // 1024} kB"
        if not self.state.in_room(sid, room):
            return f"you are not in #{room}"
        return None

    def typing(self, sid: str, data: dict[str, Any]) -> None:
        """``typing {"room"}``: volatile, so a slow client just misses some."""
        room = str(data.get("room", ""))
        if self.state.in_room(sid, room):
            typing = {"room": room, "name": self.state.name(sid)}
            self.sio.emit("typing", typing, to=room, skip_sid=sid, volatile=True)


def register(
    sio: sio_wsgi.Server,
    identify: Identify,
    state: ChatState | None = None,
    wrap: Callable[[Handler], Handler] | None = None,
) -> ChatState:
    """Register the chat's handlers on ``sio``.

    :param sio: the server.
    :param identify: ``identify(sid, environ, auth) -> name``; raise
        :class:`sio_wsgi.ConnectionRefusedError` to refuse the connection.
    :param state: shared state (a new one by default).
    :param wrap: applied to every handler before it is registered (the Flask
        app uses :meth:`sio_wsgi.flask.FlaskContext.wrap`).
    :returns: the state, for tests and HTTP views.
    """
    state = state or ChatState()
    events = ChatEvents(sio, identify, state)
    for name in ChatEvents.EVENTS:
        handler = getattr(events, name)
        sio.on(name, wrap(handler) if wrap else handler)
    return state


def announce(sio: sio_wsgi.Server, text: str) -> dict[str, Any]:
    """Send an announcement to every connected browser (used by the HTTP route).

    :param sio: the server.
    :param text: the announcement.
    :returns: what was sent.
    """
    payload = {"text": text[:MAX_TEXT], "ts": round(time.time() * 1000)}
    sio.emit("announcement", payload)
    return payload
