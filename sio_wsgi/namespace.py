"""Class-based namespaces and the event handler registry.

Handlers get python-socketio's arguments:

===========================  =============================================
registration                 call
===========================  =============================================
``on('ev', ns='/x')``        ``handler(sid, *args)``
``on('*', ns='/x')``         ``handler(event, sid, *args)``
``on('ev', ns='*')``         ``handler(namespace, sid, *args)``
``on('*', ns='*')``          ``handler(event, namespace, sid, *args)``
``Namespace('/x')``          ``ns.trigger_event('ev', sid, *args)``
``Namespace('*')``           ``ns.trigger_event('ev', namespace, sid, *args)``
===========================  =============================================

A *dynamic namespace family* (Node's ``io.of(/regex/)`` / ``io.of(fn)``) is a
``namespace=`` given as a compiled regular expression (searched in the name, as a
JavaScript ``RegExp.test``: anchor it with ``^`` and ``$``) or a function
``(name, auth) -> bool``; its handlers get the arguments of the ``'*'`` rows (the
concrete namespace first). A client's CONNECT to a namespace no exact registration
names is offered to each family in registration order; the first that accepts it
makes it one of its *children* for as long as it has clients (rooms and sessions
are the child's own).

``connect`` receives ``(sid, environ, auth)`` and ``disconnect`` ``(sid, reason)``;
the trailing arguments a handler does not declare are left out. The number of
positional parameters is read once with :func:`inspect.signature` when the handler
is registered, never probed by catching ``TypeError``. The ``'*'`` event handler
never receives ``connect`` or ``disconnect``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sio_wsgi.config import MAX_CHILD_NAMESPACES
from sio_wsgi.protocol.serializers import Payload

if TYPE_CHECKING:
    from sio_wsgi.server import Server

__all__ = [
    "Namespace",
    "HandlerRegistry",
    "Resolved",
    "positional_capacity",
    "CATCH_ALL",
    "ROOT_NAMESPACE",
    "NamespaceSpec",
    "Family",
]

logger = logging.getLogger(__name__)

CATCH_ALL = "*"
"""Event or namespace name that matches anything."""

ROOT_NAMESPACE = "/"
"""The namespace of a packet or call that names none."""

_FIXED_ARITY_EVENTS = frozenset({"connect", "disconnect"})

Handler = Callable[..., Any]

NamespaceSpec = str | re.Pattern[str] | Callable[[str, Any], bool] | None
"""What ``namespace=`` accepts: a name, ``'*'``, ``None`` (``'/'``), or a dynamic
namespace family (a compiled regular expression or a ``(name, auth) -> bool`` function)."""

_FAMILY_KEY = "~family:"
"""The registry key of a family is this and a number (never a namespace: those start with '/')."""


@dataclasses.dataclass(frozen=True)
class Family:
    """A dynamic namespace family.

    :param key: its key in the registry (``'~family:<n>'``).
    :param matcher: a compiled regular expression or a ``(name, auth) -> bool`` function.
    """

    key: str
    matcher: re.Pattern[str] | Callable[[str, Any], bool]

    def accepts(self, name: str, auth: Any) -> bool:
        """Whether ``name`` belongs to the family (a failing function says no, logged)."""
        matcher = self.matcher
        if isinstance(matcher, re.Pattern):
            return matcher.search(name) is not None
        try:
            return bool(matcher(name, auth))
        except Exception:
            logger.exception("the namespace function of %s failed for %r", self.key, name)
            return False


def positional_capacity(fn: Callable[..., object]) -> int | None:
    """How many positional arguments ``fn`` accepts.

    :param fn: a function or bound method.
    :returns: the count, or ``None`` when it takes ``*args`` (or has no signature).
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A handler chosen for one event, with the arguments to put in front.

    :param call: the callable to run with ``(*prefix, sid, *args)``.
    :param prefix: leading arguments (event name and/or namespace).
    :param capacity: positional arguments accepted (``None``: all); used to trim
        the trailing arguments of ``connect`` / ``disconnect``.
    """

    call: Handler
    prefix: tuple[str, ...]
    capacity: int | None

    def __call__(self, *args: object) -> Payload:
        """Run the handler with the prefix and ``args`` (trimmed to its capacity).

        :param args: ``sid`` followed by the event arguments.
        :returns: the handler's return value.
        """
        full = (*self.prefix, *args)
        if self.capacity is not None:
            full = full[: self.capacity]
        return self.call(*full)


class Namespace:
    """Base class for class-based namespaces.

    Events are dispatched to methods named ``on_<event>``::

        class Chat(sio_wsgi.Namespace):
            def on_connect(self, sid, environ, auth):
                self.enter_room(sid, "lobby")

            def on_message(self, sid, data):
                self.emit("message", data, room="lobby", skip_sid=sid)

        sio.register_namespace(Chat("/chat"))

    :param namespace: the namespace handled, ``'/'`` by default, ``'*'`` for any, or a
        dynamic namespace family (a compiled regular expression or a function; see the
        module docstring): its methods then get the concrete namespace first, and the
        helpers below need ``namespace=``.
    """

    def __init__(self, namespace: NamespaceSpec = None) -> None:
        self.namespace: NamespaceSpec = namespace or "/"
        self.server: Server | None = None

    def _set_server(self, server: Server) -> None:
        self.server = server

    def _server(self) -> Server:
        if self.server is None:
            raise RuntimeError("the namespace is not registered with a server")
        return self.server

    def handler_for(self, event: str) -> Handler | None:
        """The ``on_<event>`` method, or ``None``."""
        method = getattr(self, "on_" + event, None)
        return method if callable(method) else None

    def trigger_event(self, event: str, *args: Any) -> Payload:
        """Dispatch an event to its ``on_<event>`` method.

        Override to add behaviour around every handler.

        :param args: the handler arguments (``sid`` first).
        :returns: the handler's return value (the acknowledgement), ``None`` when
            there is no handler.
        """
        handler = self.handler_for(event)
        if handler is None:
            return None
        return handler(*args)

    def _ns(self, namespace: str | None) -> str:
        if namespace:
            return namespace
        if not isinstance(self.namespace, str):
            raise ValueError("a dynamic namespace family needs namespace= (the concrete one)")
        return self.namespace

    def emit(
        self,
        event: str,
        data: Payload = None,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., object] | None = None,
        ignore_queue: bool = False,
        volatile: bool = False,
        compress: bool = True,
    ) -> None:
        """:meth:`Server.emit` defaulting to this namespace."""
        self._server().emit(
            event,
            data,
            to=to,
            room=room,
            skip_sid=skip_sid,
            namespace=self._ns(namespace),
            callback=callback,
            ignore_queue=ignore_queue,
            volatile=volatile,
            compress=compress,
        )

    def send(
        self,
        data: Payload,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., object] | None = None,
        ignore_queue: bool = False,
        compress: bool = True,
    ) -> None:
        """:meth:`Server.send` defaulting to this namespace."""
        self._server().send(
            data,
            to=to,
            room=room,
            skip_sid=skip_sid,
            namespace=self._ns(namespace),
            callback=callback,
            ignore_queue=ignore_queue,
            compress=compress,
        )

    def call(
        self,
        event: str,
        data: Payload = None,
        to: str | None = None,
        sid: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        ignore_queue: bool = False,
    ) -> Payload:
        """:meth:`Server.call` defaulting to this namespace (and the server's timeout)."""
        server = self._server()
        kwargs: dict[str, float] = {} if timeout is None else {"timeout": timeout}
        return server.call(
            event,
            data,
            to=to,
            sid=sid,
            namespace=self._ns(namespace),
            ignore_queue=ignore_queue,
            **kwargs,
        )

    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """:meth:`Server.enter_room` defaulting to this namespace."""
        self._server().enter_room(sid, room, namespace=self._ns(namespace))

    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """:meth:`Server.leave_room` defaulting to this namespace."""
        self._server().leave_room(sid, room, namespace=self._ns(namespace))

    def close_room(self, room: str, namespace: str | None = None) -> None:
        """:meth:`Server.close_room` defaulting to this namespace."""
        self._server().close_room(room, namespace=self._ns(namespace))

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        """:meth:`Server.rooms` defaulting to this namespace."""
        return self._server().rooms(sid, namespace=self._ns(namespace))

    def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """:meth:`Server.get_session` defaulting to this namespace."""
        return self._server().get_session(sid, namespace=self._ns(namespace))

    def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """:meth:`Server.save_session` defaulting to this namespace."""
        self._server().save_session(sid, session, namespace=self._ns(namespace))

    def session(
        self, sid: str, namespace: str | None = None
    ) -> AbstractContextManager[dict[str, Any]]:
        """:meth:`Server.session` defaulting to this namespace."""
        return self._server().session(sid, namespace=self._ns(namespace))

    def disconnect(self, sid: str, namespace: str | None = None) -> None:
        """:meth:`Server.disconnect` defaulting to this namespace."""
        self._server().disconnect(sid, namespace=self._ns(namespace))


@dataclasses.dataclass(frozen=True)
class _Entry:
    handler: Handler
    capacity: int | None


class HandlerRegistry:
    """Function handlers and class-based namespaces, by namespace and event."""

    def __init__(self) -> None:
        self._functions: dict[str, dict[str, _Entry]] = {}
        self._classes: dict[str, Namespace] = {}
        self._class_capacity: dict[tuple[str, str], int | None] = {}
        #: dynamic namespace families, by matcher (the same pattern or function: one family)
        self.families: dict[object, Family] = {}
        #: concrete namespace -> the key of the family that accepted it
        self._children: dict[str, str] = {}
        self._children_lock = threading.Lock()
        #: called with no argument when a child is added (the hooks' caches)
        self.on_child: Callable[[], None] | None = None

    def key(self, namespace: NamespaceSpec) -> str:
        """The registry key of a ``namespace=`` argument (a family is created on first use).

        :raises TypeError: for anything but a name, a compiled pattern or a function.
        """
        if namespace is None or namespace == "":
            return ROOT_NAMESPACE
        if isinstance(namespace, str):
            return namespace
        if isinstance(namespace, re.Pattern) or callable(namespace):
            family = self.families.get(namespace)
            if family is None:
                family = Family(f"{_FAMILY_KEY}{len(self.families)}", namespace)
                self.families[namespace] = family
            return family.key
        raise TypeError(f"namespace must be a str, a compiled pattern or a function: {namespace!r}")

    def family_of(self, namespace: str) -> str | None:
        """The key of the family ``namespace`` is a child of, or None."""
        return self._children.get(namespace) if self._children else None

    def admit(self, namespace: str, auth: Any, in_use: Callable[[str], bool]) -> bool:
        """Whether a family takes ``namespace`` (a CONNECT to it); the first that accepts
        it makes it its child. Names with an exact registration, and ``'/'``, are never
        children.

        :param auth: the CONNECT's auth (for family functions).
        :param in_use: whether a namespace has clients (children without any are
            forgotten when :data:`~sio_wsgi.config.MAX_CHILD_NAMESPACES` are known).
        """
        if namespace in self._children:
            return True
        if namespace == ROOT_NAMESPACE or namespace in self._functions:
            return False
        if namespace in self._classes:
            return False
        for family in list(self.families.values()):
            if family.accepts(namespace, auth):
                with self._children_lock:
                    if len(self._children) >= MAX_CHILD_NAMESPACES:
                        for name in [n for n in self._children if not in_use(n)]:
                            del self._children[name]
                        if len(self._children) >= MAX_CHILD_NAMESPACES:
                            logger.warning("too many dynamic namespaces: %r refused", namespace)
                            return False
                    self._children.setdefault(namespace, family.key)
                if self.on_child is not None:
                    self.on_child()
                return True
        return False

    def on(self, event: str, handler: Handler, namespace: NamespaceSpec = None) -> None:
        """Register a function handler.

        :param event: the event name, or ``'*'``.
        :param namespace: the namespace, ``'/'`` when ``None``, ``'*'``, or a family.
        """
        entry = _Entry(handler, positional_capacity(handler))
        self._functions.setdefault(self.key(namespace), {})[event] = entry

    def register_namespace(self, namespace_handler: Namespace) -> None:
        """Register a class-based namespace.

        :raises ValueError: when it is not a :class:`Namespace`.
        """
        if not isinstance(namespace_handler, Namespace):
            raise ValueError("not a Namespace instance")
        name = self.key(namespace_handler.namespace)
        self._classes[name] = namespace_handler
        for event in _FIXED_ARITY_EVENTS:
            method = namespace_handler.handler_for(event)
            capacity = None if method is None else positional_capacity(method)
            self._class_capacity[(name, event)] = capacity

    def namespaces(self) -> Iterator[str]:
        """Every namespace with a handler (may include ``'*'``)."""
        yield from dict.fromkeys([*self._functions, *self._classes])

    def namespace_objects(self) -> list[Namespace]:
        """Every registered :class:`Namespace`."""
        return list(self._classes.values())

    def resolve(self, namespace: str, event: str) -> Resolved | None:
        """Choose the handler for ``event`` in ``namespace``.

        Order: exact function handler, ``'*'`` event function, class-based
        namespace, then the same three under the namespace's family (if it is a
        child of one) and under the ``'*'`` namespace.

        :param namespace: the namespace of the packet.
        :returns: the handler with its leading arguments, or ``None``.
        """
        found = self._resolve_in(namespace, event, ())
        if found is None and self._children:
            family = self._children.get(namespace)
            if family is not None:
                found = self._resolve_in(family, event, (namespace,))
        if found is None and namespace != CATCH_ALL:
            found = self._resolve_in(CATCH_ALL, event, (namespace,))
        return found

    def _resolve_in(
        self, namespace: str, event: str, ns_prefix: tuple[str, ...]
    ) -> Resolved | None:
        functions = self._functions.get(namespace, {})
        entry = functions.get(event)
        if entry is not None:
            return Resolved(entry.handler, ns_prefix, entry.capacity)
        catch_all = functions.get(CATCH_ALL)
        if catch_all is not None and event not in _FIXED_ARITY_EVENTS:
            return Resolved(catch_all.handler, (event, *ns_prefix), catch_all.capacity)
        obj = self._classes.get(namespace)
        if obj is None:
            return None
        capacity = self._class_capacity.get((namespace, event))
        if capacity is not None:
            capacity += 1  # trigger_event's own event-name argument
        return Resolved(obj.trigger_event, (event, *ns_prefix), capacity)
