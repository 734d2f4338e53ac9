"""Driver on plain OS threads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ThreadingDriver"]


class _Thread:
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self._thread = threading.Thread(target=fn, args=args, kwargs=kwargs, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


class ThreadingDriver:
    """Every task is a daemon OS thread; primitives come from :mod:`threading`."""

    name = "threading"

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> _Thread:
        return _Thread(fn, args, kwargs)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def event(self) -> threading.Event:
        return threading.Event()

    def thread_event(self) -> threading.Event:
        """An OS-level event (the same as :meth:`event` here)."""
        return threading.Event()

    def lock(self) -> Any:
        return threading.Lock()

    def monotonic(self) -> float:
        return time.monotonic()

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)

    def try_send(self, sock: Any, data: bytes) -> int:
        try:
            return int(sock.send(data, socket.MSG_DONTWAIT))
        except (BlockingIOError, InterruptedError):
            return 0

    def in_foreign_thread(self) -> bool:
        return False
