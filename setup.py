"""Setuptools shim: the metadata lives in setup.cfg, the build requirements in pyproject.toml.

All this file adds is the optional mypyc build of three protocol modules (issue 16):
``sio_wsgi/protocol/websocket.py``, ``sio.py`` and ``eio.py`` are compiled into C extension
modules next to their sources (one shared library, ``sio_wsgi/protocol/_accel__mypyc.*``,
and one small module per source). The install never fails for them: with
``SIO_WSGI_PURE_PYTHON=1`` set, without mypyc, when mypyc rejects the code or when there is
no working C compiler, the build says why on stderr (``pip install -v`` shows it) and the
package installs as pure Python. ``sio_wsgi/protocol/__init__.py`` chooses at run time which
ones load; ``sio_wsgi.protocol.compiled()`` tells.

mypyc runs when the ``build_ext`` command does (``pip install .``, ``pip install -e .``,
``python -m build``), not when pip only asks for the metadata.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

PURE_ENV = "SIO_WSGI_PURE_PYTHON"
PACKAGE = "sio_wsgi.protocol"
COMPILED = ("websocket", "sio", "eio")  # never serializers.py: mypyc rejects it
GROUP = f"{PACKAGE}._accel"  # the shared library: sio_wsgi/protocol/_accel__mypyc.<suffix>
#: every extension module of the build, shared library first (mypyc's order too)
EXT_NAMES = (f"{GROUP}__mypyc", *(f"{PACKAGE}.{name}" for name in COMPILED))
#: what a failed compile or link raises (BaseError is distutils' DistutilsError)
BUILD_ERRORS = (CCompilerError, BaseError, OSError)


def pure_requested() -> bool:
    """The same reading of SIO_WSGI_PURE_PYTHON as sio_wsgi/protocol/__init__.py's."""
    return os.environ.get(PURE_ENV, "").strip() not in ("", "0")


def note(message: str) -> None:
    print(f"sio_wsgi: {message}", file=sys.stderr)  # noqa: T201 - a build step, not the library


class OptionalMypycBuildExt(build_ext):
    """build_ext that compiles the three modules with mypyc, or nothing, never failing.

    ``ext_modules`` names the extensions mypyc makes, without sources, so that setuptools
    runs this command, prepares them and tags the wheel for the platform; :meth:`run` fills
    them in from what ``mypycify`` returns (or drops them), so that mypy and mypyc run only
    when something is built, not each time pip asks for the metadata.
    """

    def run(self) -> None:
        if not self._fill_from_mypyc():
            self.extensions[:] = []  # the distribution's ext_modules list too
            self._remove_outputs()
            return
        inplace = self.inplace
        try:
            super().run()
        except BUILD_ERRORS as exc:
            note(f"compiling with mypyc failed ({exc}); installing pure Python")
            self.inplace = inplace  # setuptools clears it while building, restores it after
            self.extensions[:] = []
            self._remove_outputs()
            return
        # Stamp the results: sio_wsgi.protocol compares them with the .py files' mtimes,
        # and an unchanged C file is not relinked.
        for path in self._outputs():
            if os.path.exists(path):
                os.utime(path)
        note(f"compiled {', '.join(COMPILED)} with mypyc")

    def _fill_from_mypyc(self) -> bool:
        """Give the placeholders mypyc's sources and flags; False for a pure-Python build."""
        if pure_requested():
            note(f"{PURE_ENV} is set: installing pure Python")
            return False
        try:
            from mypyc.build import mypycify
        except ImportError as exc:
            note(f"mypyc is not available ({exc}); installing pure Python")
            return False
        paths = [os.path.join(*PACKAGE.split("."), f"{name}.py") for name in COMPILED]
        # Errors in the modules they import are not theirs: the build environment lacks the
        # optional dependencies (redis, bcrypt, ...) that the strict check sees elsewhere.
        options = ["--follow-imports=silent"]
        try:
            made = {ext.name: ext for ext in mypycify([*options, *paths], group_name=GROUP)}
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - mypyc fails with sys.exit
            note(f"mypyc could not compile {paths} ({exc!r}); installing pure Python")
            return False
        if set(made) != {ext.name for ext in self.extensions}:
            note(f"mypyc made {sorted(made)}, not {list(EXT_NAMES)}; installing pure Python")
            return False
        for ext in self.extensions:
            # everything mypyc set (sources, flags, its marker) over the placeholder's fields;
            # what setuptools added when it finalized this command stays. Not ``optional``:
            # the first failure stops the build, and run() drops the group, which would not
            # import half built.
            vars(ext).update(vars(made[ext.name]))
        return True

    def _outputs(self) -> list[str]:
        """The extension files in the build folder and, for in-place builds, in the sources."""
        paths = [os.path.join(self.build_lib, self.get_ext_filename(name)) for name in EXT_NAMES]
        if self.inplace:
            package_dir = self.get_finalized_command("build_py").get_package_dir(PACKAGE)
            paths += [
                os.path.join(package_dir, os.path.basename(self.get_ext_filename(name)))
                for name in EXT_NAMES
            ]
        return paths

    def _remove_outputs(self) -> None:
        """A pure build leaves no compiled module behind, neither built nor copied in place."""
        for path in self._outputs():
            if os.path.exists(path):
                os.remove(path)
                note(f"removed {path}")


setup(
    ext_modules=[Extension(name, sources=[]) for name in EXT_NAMES],  # filled in by run()
    cmdclass={"build_ext": OptionalMypycBuildExt},
)
