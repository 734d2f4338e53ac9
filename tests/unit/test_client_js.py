"""Serving the official JavaScript client: lookup, ETag/304, gzip, missing client."""

from __future__ import annotations

import gzip
import pathlib

import pytest
from werkzeug.test import Client

import sio_wsgi
from sio_wsgi.client_js import find_client_dist


class _Nothing:
    def handle_request(self, environ: dict[str, object], start_response: object) -> list[bytes]:
        raise AssertionError("the client file must not reach the server")


@pytest.fixture
def dist(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "node_modules" / "socket.io-client" / "dist"
    folder.mkdir(parents=True)
    (folder / "socket.io.js").write_text("/* client */ var io = 1;\n" * 200)
    (folder / "socket.io.min.js").write_text("var io=1;")
    (folder / "socket.io.min.js.map").write_text("{}")
    return folder


def test_found_in_node_modules_from_a_subdirectory(
    dist: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    sub = tmp_path / "app" / "pkg"
    sub.mkdir(parents=True)
    assert find_client_dist(str(sub)) == str(dist)


def test_etag_304_and_gzip(dist: pathlib.Path) -> None:
    client = Client(sio_wsgi.WSGIApp(_Nothing(), client_js_path=str(dist)))
    first = client.get("/socket.io/socket.io.js")
    assert first.status_code == 200
    assert first.headers["Content-Type"].startswith("application/javascript")
    etag = first.headers["ETag"]
    assert first.get_data() == (dist / "socket.io.js").read_bytes()
    again = client.get("/socket.io/socket.io.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    zipped = client.get("/socket.io/socket.io.js", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()) == first.get_data()
    assert client.get("/socket.io/socket.io.min.js").get_data() == b"var io=1;"
    assert client.get("/socket.io/socket.io.min.js.map").status_code == 200


def test_missing_client_says_so(tmp_path: pathlib.Path) -> None:
    client = Client(sio_wsgi.WSGIApp(_Nothing(), client_js_path=str(tmp_path / "nowhere")))
    response = client.get("/socket.io/socket.io.js")
    assert response.status_code == 404
    assert b"socket.io-client is not installed" in response.get_data()
    assert b"npm install socket.io-client" in response.get_data()
