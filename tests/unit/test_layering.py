"""Dependencies point down only, and sio_wsgi never imports another Socket.IO server.

Every module of the package has a layer (docs/DESIGN.md draws them); an import,
type-only ones under ``TYPE_CHECKING`` included, may reach a lower layer, or a
module of the same layer and the same unit. On top of that, a few edges are
named explicitly: the engine server composes the transports (never the other
way round), and the managers never reach up to the ``Server``.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "sio_wsgi"

#: module or package (dotted, relative to sio_wsgi) -> (layer, unit); the longest prefix wins
LAYERS: dict[str, tuple[int, str]] = {
    # the foundation of L0, which every module may use: options and the error tree
    "config": (-1, "foundation"),
    "exceptions": (-1, "foundation"),
    "protocol": (0, "protocol"),
    "stats": (0, "stats"),  # the metrics' counters, incremented by every layer
    "runtime.base": (0, "interfaces"),  # the Driver protocols only: no I/O
    "engine.ports": (1, "engine-core"),
    "engine.session": (1, "engine-core"),
    "engine.outgoing": (1, "engine-core"),
    "engine.upgrade": (1, "engine-core"),
    "engine.http": (1, "engine-core"),
    "runtime": (2, "runtime"),
    "transports": (3, "transports"),
    "engine.server": (3, "engine-server"),
    "engine": (3, "engine-server"),  # engine/__init__
    "server": (4, "socketio"),
    "registration": (4, "socketio"),
    "rooms": (4, "socketio"),
    "cluster": (4, "socketio"),
    "namespace": (4, "socketio"),
    "manager": (4, "socketio"),
    "membership": (4, "socketio"),
    "connecting": (4, "socketio"),
    "managers": (4, "socketio"),
    "clients": (4, "socketio"),
    "acks": (4, "socketio"),
    "dispatch": (4, "socketio"),
    "recovering": (4, "socketio"),
    "recovery": (4, "socketio"),
    "hooks": (4, "socketio"),
    "ratelimit": (4, "socketio"),
    "observers": (4, "socketio"),
    "admin": (4, "socketio"),
    "wsgi": (5, "app"),
    "metrics": (5, "app"),
    "client_js": (5, "app"),
    "engineio": (5, "app"),
    "flask": (5, "app"),
    "testing": (5, "app"),
    "polling_client": (5, "app"),
    "gunicorn": (5, "app"),
    "runner": (5, "app"),
    "django": (5, "app"),
    "__main__": (6, "package"),
    "__init__": (6, "package"),
}

#: (importer prefix, imported prefix) edges allowed across units of one layer
ALLOWED_SIDEWAYS = {("engine.server", "transports"), ("engine.relay", "transports")}

#: edges forbidden whatever the layers say (spelled out for the reader)
FORBIDDEN = {
    ("transports", "engine.server"),
    ("transports", "engine.relay"),
    ("managers", "server"),
    ("manager", "server"),
    ("membership", "server"),
    # the Server's bases are the Server too
    ("managers", "rooms"),
    ("managers", "cluster"),
    ("manager", "rooms"),
    ("manager", "cluster"),
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
                found.extend((node.level, f"{module}.{alias.name}") for alias in node.names)
    return found


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _target(path: pathlib.Path, level: int, name: str) -> str | None:
    """The sio_wsgi module (dotted, relative to the package) an import reaches."""
    if level == 0:
        parts = name.split(".")
        return ".".join(parts[1:]) if parts[0] == "sio_wsgi" and len(parts) > 1 else None
    package = list(path.relative_to(ROOT).parts[:-1])
    base = package[: len(package) - (level - 1)]
    full = base + [p for p in name.split(".") if p]
    return ".".join(full) if full else None


def _match(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(name: str) -> tuple[int, str]:
    """The (layer, unit) of a module, by its longest matching prefix."""
    best = max((p for p in LAYERS if _match(name, p)), key=len, default=None)
    assert best is not None, f"sio_wsgi.{name} has no layer in LAYERS: add it"
    return LAYERS[best]


def edge_allowed(importer: str, imported: str) -> bool:
    """Whether module ``importer`` may import ``imported`` (both relative to sio_wsgi)."""
    if any(_match(importer, a) and _match(imported, b) for a, b in FORBIDDEN):
        return False
    (low, low_unit), (high, high_unit) = layer_of(imported), layer_of(importer)
    if low < high:
        return True
    if low == high and low_unit == high_unit:
        return True
    return any(_match(importer, a) and _match(imported, b) for a, b in ALLOWED_SIDEWAYS)


FILES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_foreign_socketio_and_no_pickle(path: pathlib.Path) -> None:
    for level, name in _imports(path):
        if level == 0:
            assert name.split(".")[0] not in FORBIDDEN_TOP, f"{path} imports {name}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_point_down(path: pathlib.Path) -> None:
    importer = _module_name(path)
    for level, name in _imports(path):
        imported = _target(path, level, name)
        if imported is None or imported == "__init__":
            continue
        if _match(importer, "__init__") or importer == "":
            continue
        assert edge_allowed(importer, imported), (
            f"sio_wsgi.{importer} (layer {layer_of(importer)}) imports "
            f"sio_wsgi.{imported} (layer {layer_of(imported)})"
        )


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("transports.websocket", "engine.server", False),
        ("transports.polling", "engine.server", False),
        ("engine.server", "transports.websocket", True),
        ("managers.pubsub", "server", False),
        ("manager", "server", False),
        ("managers.queries", "cluster", False),
        ("manager", "rooms", False),
        ("server", "cluster", True),
        ("engine.session", "runtime.scheduler", False),  # below L4 never above itself
        ("protocol.eio", "engine.outgoing", False),
        ("engine.outgoing", "protocol.websocket", True),
        ("runtime.scheduler", "runtime.base", True),
        ("server", "engine.server", True),
        ("engine.ports", "transports.polling", False),
    ],
)
def test_the_rules_themselves(importer: str, imported: str, allowed: bool) -> None:
    assert edge_allowed(importer, imported) is allowed
