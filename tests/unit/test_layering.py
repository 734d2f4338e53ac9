"""Dependencies point down only, and sio_wsgi never imports another Socket.IO server."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "sio_wsgi"

# package -> the sio_wsgi packages/modules it may import
ALLOWED = {
    "protocol": {"protocol", "exceptions", "config"},
    "runtime": {"runtime", "exceptions"},
    "engine": {"engine", "transports", "protocol", "runtime", "config", "exceptions"},
    "transports": {"transports", "engine", "protocol", "runtime", "config", "exceptions"},
}
FORBIDDEN_TOP = {"socketio", "engineio", "flask_socketio", "pickle"}


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(level, dotted name) of every import in ``path``; level > 0 for relative ones."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and not module:
                found.extend((node.level, alias.name) for alias in node.names)
            else:
                found.append((node.level, module))
    return found


def _target(path: pathlib.Path, level: int, name: str) -> str | None:
    """The first sio_wsgi component (package or module) an import reaches."""
    rel = path.relative_to(ROOT).parts[:-1]
    if level == 0:
        parts = name.split(".")
        return parts[1] if parts[0] == "sio_wsgi" and len(parts) > 1 else None
    base = list(rel[: len(rel) - (level - 1)])
    full = base + [p for p in name.split(".") if p]
    return full[0] if full else None


FILES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_foreign_socketio_and_no_pickle(path: pathlib.Path) -> None:
    for level, name in _imports(path):
        if level == 0:
            assert name.split(".")[0] not in FORBIDDEN_TOP, f"{path} imports {name}"


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if p.relative_to(ROOT).parts[0] in ALLOWED],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_layers_point_down(path: pathlib.Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    for level, name in _imports(path):
        target = _target(path, level, name)
        if target is None:
            continue
        assert target.removesuffix(".py") in ALLOWED[package], (
            f"{path.relative_to(ROOT)} ({package}) imports {target}"
        )
