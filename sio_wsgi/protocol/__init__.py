"""Internal package; see docs/DESIGN.md.

Three of its modules, :mod:`.websocket`, :mod:`.sio` and :mod:`.eio`, may also be
compiled with mypyc when the package is installed (``setup.py``). This file runs before
any of them is imported and decides once, for the three together, which ones load:

* ``SIO_WSGI_PURE_PYTHON=1`` in the environment: the ``.py`` sources;
* a compiled module older than its source (an edited checkout, a stale build), or a
  build missing some of its files: the ``.py`` sources, with one warning logged that
  says to rebuild (``pip install -e .``);
* otherwise the compiled modules, where there are any (the import system prefers an
  extension module to the ``.py`` next to it).

:func:`compiled` tells which ones are in use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["compiled"]

#: set (to anything but "" or "0") to run the ``.py`` sources even where a build exists
PURE_ENV = "SIO_WSGI_PURE_PYTHON"
#: the modules setup.py compiles, and the shared library that holds their code (its
#: COMPILED and GROUP + "__mypyc": keep them in step)
ACCELERATED = ("websocket", "sio", "eio")
SHARED_LIB = "_accel__mypyc"
#: a source this much newer than the build still counts as built with it: installers
#: write a wheel's files one after the other, the .py after the extension modules
MTIME_SLACK = 2.0

_HERE = os.path.dirname(os.path.abspath(__file__))


def _extension_file(directory: str, stem: str) -> str | None:
    """The extension module the import system would load for ``stem``, if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(directory, stem + suffix)
        if os.path.isfile(path):
            return path
    return None


def build_problem(directory: str) -> str | None:
    """Why the compiled modules in ``directory`` must not load; None when they may.

    None too when there is no build at all: the ``.py`` sources load by themselves then.
    """
    modules = {name: _extension_file(directory, name) for name in ACCELERATED}
    built = [path for path in modules.values() if path is not None]
    if not built:
        return None
    shared = _extension_file(directory, SHARED_LIB)
    if shared is None or len(built) < len(ACCELERATED):
        return f"the compiled modules in {directory} are incomplete"
    built_at = min(os.path.getmtime(path) for path in [shared, *built])
    for name in ACCELERATED:
        source = os.path.join(directory, f"{name}.py")
        if os.path.isfile(source) and os.path.getmtime(source) > built_at + MTIME_SLACK:
            return f"{source} is newer than its compiled module"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` files of the accelerated modules ahead of their compiled twins."""

    def __init__(self, directory: str) -> None:
        self._files = {
            f"{__name__}.{name}": os.path.join(directory, f"{name}.py") for name in ACCELERATED
        }

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        source = self._files.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _choose() -> None:
    if os.environ.get(PURE_ENV, "").strip() in ("", "0"):
        problem = build_problem(_HERE)
        if problem is None:
            return
        logging.getLogger(__name__).warning(
            "%s: running the pure-Python protocol modules; rebuild with `pip install -e .` "
            "(or set %s=1 to silence this)",
            problem,
            PURE_ENV,
        )
    sys.meta_path.insert(0, _SourceFinder(_HERE))


def compiled() -> bool:
    """True when the protocol modules in use are the ones compiled by mypyc.

    Imports ``sio_wsgi.protocol.websocket``, ``.sio`` and ``.eio`` if they are not yet,
    and looks at the files they were loaded from: extension modules, or ``.py`` sources
    (with ``SIO_WSGI_PURE_PYTHON=1``, a stale build, or no build at all).
    """
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return all(
        (importlib.import_module(f"{__name__}.{name}").__file__ or "").endswith(suffixes)
        for name in ACCELERATED
    )


_choose()
