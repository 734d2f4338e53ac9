"""Middlewares and observers around the handlers (Node's ``io.use``, ``socket.use``,
``onAny`` and ``onAnyOutgoing``).

Four kinds, each registered for a namespace key (a name, ``'*'`` or a dynamic
namespace family, see :mod:`sio_wsgi.namespace`) and run in registration order for
every concrete namespace the key covers:

- ``use`` (connect): ``fn(sid, environ, auth)``, before the connect handler;
- ``use_event`` (event): ``fn(sid, event, args) -> None | (event, args)``, before
  ``on_any`` and the event's handler;
- ``on_any``: ``fn(event, sid, *args)`` (``fn(event, namespace, sid, *args)`` under
  ``'*'`` or a family), after the event middlewares, for every event, handled or not;
- ``on_outgoing``: ``fn(sid, namespace, event, args)``, every event delivered to a
  local client.

A connect or event middleware that declares a parameter named ``namespace`` also
gets the concrete namespace as that keyword. Trailing arguments a function does not
declare are left out (as for handlers). A connect middleware refuses with
:class:`~sio_wsgi.exceptions.ConnectionRefusedError` (or by returning ``False``);
an event middleware drops the event with :class:`~sio_wsgi.exceptions.EventRejected`.
``any`` and ``outgoing`` functions only observe: what they raise is logged.

The dispatcher and the manager ask :attr:`Hooks.connect`, :attr:`Hooks.incoming`
and their own ``outgoing`` attribute (None until an outgoing hook exists) before
calling in, so a server without hooks pays one truth test per event.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sio_wsgi.exceptions import ConnectionRefusedError, EventRejected
from sio_wsgi.namespace import CATCH_ALL, HandlerRegistry, NamespaceSpec, positional_capacity

__all__ = ["Hooks", "Hook", "CONNECT", "EVENT", "ANY", "OUTGOING"]

logger = logging.getLogger(__name__)

CONNECT = "connect"
EVENT = "event"
ANY = "any"
OUTGOING = "outgoing"
_KINDS = (CONNECT, EVENT, ANY, OUTGOING)

_REFUSED = {"message": "Connection rejected by server"}
_REJECTED = "Event rejected by server"


def _wants_namespace(fn: Callable[..., object]) -> bool:
    try:
        return "namespace" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass(frozen=True)
class Hook:
    """One registered function.

    :param key: the namespace key it was registered for.
    :param fn: the function.
    :param capacity: its positional parameters (``None``: ``*args``).
    :param wants_namespace: it declares a ``namespace`` parameter.
    """

    key: str
    fn: Callable[..., Any]
    capacity: int | None
    wants_namespace: bool

    def call(self, namespace: str, *args: Any) -> Any:
        """Run it with ``args`` (trimmed to its capacity) and maybe ``namespace=``."""
        if self.capacity is not None:
            args = args[: self.capacity]
        if self.wants_namespace:
            return self.fn(*args, namespace=namespace)
        return self.fn(*args)


class Hooks:
    """The registered middlewares and observers, and their runners.

    :param registry: the handler registry (namespace keys, family children).
    """

    def __init__(self, registry: HandlerRegistry) -> None:
        self.registry = registry
        self._hooks: dict[str, list[Hook]] = {kind: [] for kind in _KINDS}
        self._chains: dict[tuple[str, str], tuple[Hook, ...]] = {}
        #: any connect middleware at all (checked before each connect handler)
        self.connect = False
        #: any event middleware or ``on_any`` observer (checked for each event)
        self.incoming = False
        #: any outgoing observer
        self.outgoing = False
        #: any event middleware with a ``forget(sid)`` method (the rate limiter)
        self.forgetting = False
        registry.on_child = self._chains.clear

    # ------------------------------------------------------------- registration

    def add(self, kind: str, fn: Callable[..., Any], namespace: NamespaceSpec) -> None:
        """Register ``fn`` as a hook of ``kind`` for ``namespace``.

        :param kind: :data:`CONNECT`, :data:`EVENT`, :data:`ANY` or :data:`OUTGOING`.
        :raises TypeError: when ``fn`` is not callable.
        """
        if not callable(fn):
            raise TypeError(f"a {kind} hook must be callable, not {fn!r}")
        key = self.registry.key(namespace)
        named = kind in (CONNECT, EVENT) and _wants_namespace(fn)
        capacity = positional_capacity(fn)
        if named and capacity is not None and capacity > 0:
            params = list(inspect.signature(fn).parameters.values())
            if any(
                p.name == "namespace" and p.kind is not inspect.Parameter.KEYWORD_ONLY
                for p in params
            ):
                capacity -= 1  # given as a keyword, not positionally
        self._hooks[kind].append(Hook(key, fn, capacity, named))
        self._chains.clear()
        hooks = self._hooks
        self.connect = bool(hooks[CONNECT])
        self.incoming = bool(hooks[EVENT] or hooks[ANY])
        self.outgoing = bool(hooks[OUTGOING])
        self.forgetting = any(callable(getattr(h.fn, "forget", None)) for h in hooks[EVENT])

    def chain(self, kind: str, namespace: str) -> tuple[Hook, ...]:
        """The hooks of ``kind`` that cover ``namespace``, in registration order."""
        chain = self._chains.get((kind, namespace))
        if chain is None:
            keys = {namespace, CATCH_ALL}
            family = self.registry.family_of(namespace)
            if family is not None:
                keys.add(family)
            chain = tuple(h for h in self._hooks[kind] if h.key in keys)
            self._chains[(kind, namespace)] = chain
        return chain

    # ------------------------------------------------------------- runners

    def run_connect(
        self, sid: str, namespace: str, environ: Any, auth: Any
    ) -> dict[str, Any] | None:
        """Run the connect middlewares of ``namespace`` in order.

        :returns: None (accepted), or the CONNECT_ERROR payload of the first refusal
            (a :class:`ConnectionRefusedError`'s, else the generic one; a failure is logged).
        """
        for hook in self.chain(CONNECT, namespace):
            try:
                result = hook.call(namespace, sid, environ, auth)
            except ConnectionRefusedError as exc:
                return exc.error_args
            except Exception:
                logger.exception("connect middleware %r failed [%s]", hook.fn, namespace)
                return _REFUSED
            if result is False:
                return _REFUSED
        return None

    def run_event(
        self, sid: str, namespace: str, event: str, args: list[Any]
    ) -> tuple[str, list[Any]]:
        """Run the event middlewares, then the ``on_any`` observers.

        :returns: the event and arguments, as the middlewares left them.
        :raises EventRejected: a middleware dropped the event (one that failed
            otherwise too: logged, and the client gets a generic ``error``).
        """
        for hook in self.chain(EVENT, namespace):
            try:
                result = hook.call(namespace, sid, event, args)
                if result is not None:
                    event, new_args = result
                    args = list(new_args)
            except EventRejected:
                raise
            except Exception as exc:  # a bad return value too
                logger.exception("event middleware %r failed [%s]", hook.fn, namespace)
                raise EventRejected(_REJECTED) from exc
        for hook in self.chain(ANY, namespace):
            exact = hook.key == namespace
            try:
                if exact:
                    hook.call(namespace, event, sid, *args)
                else:
                    hook.call(namespace, event, namespace, sid, *args)
            except Exception:
                logger.exception("on_any hook %r failed [%s]", hook.fn, namespace)
        return event, args

    def run_outgoing(self, sid: str, namespace: str, event: str, args: Sequence[Any]) -> None:
        """Tell the outgoing observers of ``namespace`` about one delivered event
        (the manager's ``outgoing``); what they raise is logged."""
        for hook in self.chain(OUTGOING, namespace):
            try:
                hook.fn(sid, namespace, event, list(args))
            except Exception:
                logger.exception("outgoing hook %r failed [%s]", hook.fn, namespace)

    def forget(self, sid: str, namespace: str) -> None:
        """``sid`` left ``namespace``: event middlewares with a ``forget(sid)`` method
        (per-client state, the rate limiter's buckets) drop what they keep of it."""
        for hook in self.chain(EVENT, namespace):
            forget = getattr(hook.fn, "forget", None)
            if callable(forget):
                try:
                    forget(sid)
                except Exception:
                    logger.exception("forget of %r failed", hook.fn)
