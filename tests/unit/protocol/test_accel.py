"""The optional mypyc build of protocol/websocket.py, sio.py and eio.py (issue 16).

``sio_wsgi/protocol/__init__.py`` chooses, once, between the compiled modules and the
``.py`` sources: the sources with ``SIO_WSGI_PURE_PYTHON=1`` or a stale or incomplete
build, the compiled ones otherwise. The build itself comes from ``pip install -e .``
(setup.py); without one the tests that need it skip, except under ``CI=true``, as CI
installs with a C compiler.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from sio_wsgi import protocol
from tests.support import skip_or_fail

PACKAGE_DIR = pathlib.Path(protocol.__file__).resolve().parent
#: the folder whose sio_wsgi the tests import (the checkout's, setup.cfg's pythonpath)
ROOT = PACKAGE_DIR.parents[1]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
NAMES = protocol.ACCELERATED

#: what a child process reports: compiled() and each module's file
PROBE = """
import json, sio_wsgi.protocol as p
result = p.compiled()
print(json.dumps({"compiled": result, "files": [
    __import__(f"sio_wsgi.protocol.{n}", fromlist=["_"]).__file__ for n in p.ACCELERATED
]}))
"""


def _probe(cwd: pathlib.Path, *, pure: bool) -> tuple[dict[str, object], str]:
    """Run PROBE in a fresh interpreter that imports the sio_wsgi in ``cwd``."""
    env = {k: v for k, v in os.environ.items() if k not in (protocol.PURE_ENV, "PYTHONPATH")}
    if pure:
        env[protocol.PURE_ENV] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def _require_build() -> None:
    built = [PACKAGE_DIR / f"{name}{SUFFIX}" for name in (*NAMES, protocol.SHARED_LIB)]
    missing = [path.name for path in built if not path.exists()]
    if missing:
        skip_or_fail(f"no mypyc build in {PACKAGE_DIR} (missing {missing}): pip install -e .")
    problem = protocol.build_problem(str(PACKAGE_DIR))
    if problem is not None:
        skip_or_fail(f"the mypyc build is not usable ({problem}): pip install -e .")


def test_compiled_agrees_with_the_modules_files() -> None:
    files = [importlib.import_module(f"sio_wsgi.protocol.{name}").__file__ for name in NAMES]
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert protocol.compiled() == all((f or "").endswith(suffixes) for f in files)
    # the three are chosen together: all compiled or all sources
    assert len({(f or "").endswith(".py") for f in files}) == 1


def test_pure_python_variable_loads_the_sources() -> None:
    report, _ = _probe(ROOT, pure=True)
    assert report["compiled"] is False
    files = report["files"]
    assert isinstance(files, list)
    assert [pathlib.Path(f) for f in files] == [PACKAGE_DIR / f"{name}.py" for name in NAMES]


def test_a_build_loads_compiled() -> None:
    _require_build()
    report, stderr = _probe(ROOT, pure=False)
    assert report["compiled"] is True, stderr
    files = report["files"]
    assert isinstance(files, list)
    assert [pathlib.Path(f) for f in files] == [PACKAGE_DIR / f"{name}{SUFFIX}" for name in NAMES]


def test_a_stale_build_loads_the_sources_and_says_so(tmp_path: pathlib.Path) -> None:
    _require_build()
    shutil.copytree(
        ROOT / "sio_wsgi", tmp_path / "sio_wsgi", ignore=shutil.ignore_patterns("__pycache__")
    )
    copy = tmp_path / "sio_wsgi" / "protocol"
    later = os.path.getmtime(copy / f"{protocol.SHARED_LIB}{SUFFIX}") + 60
    os.utime(copy / "sio.py", (later, later))  # as if edited a minute after the build
    report, stderr = _probe(tmp_path, pure=False)
    assert report["compiled"] is False
    files = report["files"]
    assert isinstance(files, list)
    assert all(f.startswith(str(tmp_path)) and f.endswith(".py") for f in files)
    assert stderr.count("pip install -e .") == 1, stderr
    assert "sio.py is newer than its compiled module" in stderr


def _fake_build(directory: pathlib.Path, *, stems: tuple[str, ...], mtime: float) -> None:
    for name in NAMES:
        source = directory / f"{name}.py"
        source.write_text("")
        os.utime(source, (1000.0, 1000.0))
    for stem in stems:
        path = directory / f"{stem}{SUFFIX}"
        path.write_bytes(b"")
        os.utime(path, (mtime, mtime))


def test_build_problem_without_a_build(tmp_path: pathlib.Path) -> None:
    _fake_build(tmp_path, stems=(), mtime=0)
    assert protocol.build_problem(str(tmp_path)) is None


@pytest.mark.parametrize(
    ("built_at", "usable"),
    [(1000.0, True), (999.0, True), (1000.0 - protocol.MTIME_SLACK - 1, False)],
    ids=["same-time", "within-slack", "stale"],
)
def test_build_problem_compares_mtimes(
    tmp_path: pathlib.Path, built_at: float, usable: bool
) -> None:
    _fake_build(tmp_path, stems=(*NAMES, protocol.SHARED_LIB), mtime=built_at)
    problem = protocol.build_problem(str(tmp_path))
    assert (problem is None) == usable, problem
    if not usable:
        assert problem is not None
        assert "newer than its compiled module" in problem


@pytest.mark.parametrize(
    "stems",
    [(*NAMES,), (NAMES[0], protocol.SHARED_LIB)],
    ids=["no-shared-library", "one-module-missing"],
)
def test_build_problem_incomplete_build(tmp_path: pathlib.Path, stems: tuple[str, ...]) -> None:
    _fake_build(tmp_path, stems=stems, mtime=2000.0)
    assert "incomplete" in (protocol.build_problem(str(tmp_path)) or "")
