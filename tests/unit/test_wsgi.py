"""WSGIApp's static files: python-socketio's documented forms, and no way out of a mapped folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug.test import Client

from sio_wsgi.wsgi import StaticFiles, WSGIApp


class _NoServer:
    def handle_request(self, environ: object, start_response: object) -> list[bytes]:
        raise AssertionError("not a Socket.IO request")


@pytest.fixture
def public(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello")
    (root / "index.html").write_text("<h1>index</h1>")
    (root / "sub" / "index.html").write_text("sub index")
    (root / "sub" / "page.html").write_text("page")
    (tmp_path / "secret.txt").write_text("secret")
    return root


def get(mapping: dict[str, object], path: str) -> tuple[int, bytes]:
    app = WSGIApp(_NoServer(), static_files=mapping)  # type: ignore[arg-type]
    response = Client(app).get(path)
    return response.status_code, response.get_data()


@pytest.mark.parametrize("key", ["/static", "/static/"])
def test_a_directory_with_or_without_the_trailing_slash(public: Path, key: str) -> None:
    mapping = {key: str(public)}
    assert get(mapping, "/static/hello.txt") == (200, b"hello")
    assert get(mapping, "/static/sub/page.html") == (200, b"page")
    assert get(mapping, "/static/") == (200, b"<h1>index</h1>")
    assert get(mapping, "/static/sub/") == (200, b"sub index")
    assert get(mapping, "/staticfoo/hello.txt")[0] == 404  # a prefix of a name is not a folder


def test_python_socketio_documented_forms(public: Path) -> None:
    mapping: dict[str, object] = {
        "/": str(public / "index.html"),
        "/files": {"filename": str(public), "content_type": "text/x-test"},
        "": "hello.txt",  # the file served for a directory
    }
    assert get(mapping, "/") == (200, b"<h1>index</h1>")
    assert get(mapping, "/files/hello.txt") == (200, b"hello")
    assert get(mapping, "/files") == (200, b"hello")
    app = WSGIApp(_NoServer(), static_files=mapping)  # type: ignore[arg-type]
    assert Client(app).get("/files/hello.txt").headers["Content-Type"] == "text/x-test"


def test_the_longest_key_wins(public: Path) -> None:
    mapping = {"/static": str(public), "/static/sub": str(public / "sub")}
    assert get(mapping, "/static/sub/page.html") == (200, b"page")
    assert get(mapping, "/static/sub/") == (200, b"sub index")


@pytest.mark.parametrize(
    "rest",
    ["../secret.txt", "sub/../../secret.txt", "..\\secret.txt", "%00/hello.txt", "/etc/passwd"],
)
@pytest.mark.parametrize("key", ["/static", "/static/"])
def test_no_way_out_of_the_mapped_folder(public: Path, key: str, rest: str) -> None:
    resolved = StaticFiles({key: str(public)})._resolve("/static/" + rest.replace("%00", "\x00"))
    assert resolved is None or Path(resolved[0]).resolve().is_relative_to(public.resolve())
    status, body = get({key: str(public)}, "/static/" + rest)
    assert body != b"secret" and status in (200, 404)
