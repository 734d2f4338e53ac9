"""The documentation site (docs/): it builds with warnings as errors, and its API
reference documents every public name.

tests/run.sh builds the site too (its ``docs`` group, the command CI runs); this
test adds what a clean build does not prove: that everything in
``sio_wsgi.__all__``, the public modules, and every guide made it into the site.
It builds in a subprocess (Sphinx imports and patches modules for autodoc), and is
skipped when Sphinx is not installed, outside CI.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
import zlib

import pytest

import sio_wsgi
from tests.support import skip_or_fail

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

#: modules users import that the reference must document (it may list more)
PUBLIC_MODULES = {
    "sio_wsgi",
    "sio_wsgi.config",
    "sio_wsgi.exceptions",
    "sio_wsgi.testing",
    "sio_wsgi.flask",
    "sio_wsgi.gunicorn",
    "sio_wsgi.managers",
    "sio_wsgi.recovery",
    "sio_wsgi.engineio",
}

BUILD_TIMEOUT = 240


def _reference_modules() -> list[str]:
    text = (DOCS / "reference" / "index.rst").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.startswith("   sio_wsgi")]


def test_the_reference_lists_every_public_module() -> None:
    listed = _reference_modules()
    assert set(listed) >= PUBLIC_MODULES, PUBLIC_MODULES - set(listed)
    assert len(listed) == len(set(listed))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The site, built as CI builds it: ``sphinx-build -W --keep-going -b html``."""
    if importlib.util.find_spec("sphinx") is None:
        skip_or_fail("Sphinx is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", DOCS, out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _inventory(site: pathlib.Path) -> set[tuple[str, str]]:
    """``objects.inv`` (Sphinx's format 2: four header lines, then zlib): (name, role)s."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    lines = zlib.decompress(data[header_end:]).decode("utf-8").splitlines()
    return {(line.split(" ")[0], line.split(" ")[1]) for line in lines}


@pytest.mark.slow
def test_every_public_name_is_documented(site: pathlib.Path) -> None:
    inventory = _inventory(site)
    documented = {name for name, role in inventory if role.startswith("py:")}
    missing = [name for name in sio_wsgi.__all__ if f"sio_wsgi.{name}" not in documented]
    assert missing == []
    modules = {name for name, role in inventory if role == "py:module"}
    assert set(_reference_modules()) <= modules
    assert "sio_wsgi.Server.emit" in documented  # the Server's API, from its bases too
    assert "sio_wsgi.Server.enter_room" in documented


@pytest.mark.slow
def test_every_guide_is_a_page(site: pathlib.Path) -> None:
    guides = sorted(path.stem for path in (DOCS / "guide").glob("*.md"))
    assert "getting_started" in guides
    index = (site / "index.html").read_text(encoding="utf-8")
    for guide in guides:
        assert (site / "guide" / f"{guide}.html").is_file(), guide
        assert f'href="guide/{guide}.html"' in index, f"{guide} is not in the index's toctree"
    assert (site / "_images" / "benchmarks.png").is_file()  # the chart, with its page
