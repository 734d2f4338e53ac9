"""The Django chat example: in headless Chromium, and its session-based socket auth.

The browser scenario is the Flask one (see test_flask_chat_browser.py), with
Django's login form, plus an anonymous page whose socket is refused. The other
tests check the refusal and the acceptance with python-socketio's client as a peer.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from tests.examples.examples_support import (
    ROOT,
    WORKERS,
    ExampleServer,
    check_scenario,
    example_env,
    gunicorn_argv,
    need_browser,
    need_client_js,
    output_path,
)

EXAMPLE = ROOT / "examples" / "django_chat"
CHAT_CORE = ROOT / "examples" / "chat_core"
PASSWORD = "chat-demo"

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def django_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh database with the demo users.

    :param tmp_path_factory: for the database.
    :returns: the environment variables pointing the project at it.
    """
    pytest.importorskip("django")
    tmp = tmp_path_factory.mktemp("django_chat")
    env = {"DJANGO_CHAT_DB": str(tmp / "db.sqlite3")}
    for cmd in (["migrate", "-v0"], ["create_demo_users", "--password", PASSWORD]):
        done = subprocess.run(
            [sys.executable, "manage.py", *cmd],
            cwd=EXAMPLE,
            env=example_env(EXAMPLE, env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return env


@pytest.fixture(scope="module")
def django_chat(
    django_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleServer]:
    """``manage.py runsio`` (the README command, sio_wsgi.django's) on a free port.

    :param django_env: the database settings.
    :param tmp_path_factory: for the log.
    :returns: the running server.
    """
    log = tmp_path_factory.mktemp("runsio") / "runsio.log"
    argv = [sys.executable, "manage.py", "runsio", "127.0.0.1:{port}", "--noreload"]
    with ExampleServer(argv, EXAMPLE, log, env=django_env) as server:
        yield server


def login_cookie(base: str, user: str) -> str:
    """Log in through Django's login form; return the Cookie header to send.

    :param base: server URL.
    :param user: username.
    :returns: ``"csrftoken=...; sessionid=..."``.
    """
    with requests.Session() as http:
        page = http.get(f"{base}/accounts/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        # timeout: Django hashes the password (PBKDF2), slow on a loaded CI host
        done = http.post(
            f"{base}/accounts/login/",
            timeout=30,
            allow_redirects=False,
            data={
                "username": user,
                "password": PASSWORD,
                "next": "/",
                "csrfmiddlewaretoken": token.group(1),
            },
        )
        assert done.status_code == 302, done.text[:500]
        return "; ".join(f"{k}={v}" for k, v in http.cookies.items())


def test_anonymous_socket_is_refused(django_chat: ExampleServer) -> None:
    client = socketio.Client(reconnection=False)
    errors: list[object] = []
    client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError) as info:
        client.connect(django_chat.url, transports=["polling"], wait_timeout=10)
    assert "failed to connect" in str(info.value)
    assert errors == [
        {
            "message": "authentication required: log in to chat",
            "data": {"login_url": "/accounts/login/"},
        }
    ], errors


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_logged_in_socket_is_accepted(django_chat: ExampleServer, transport: str) -> None:
    cookie = login_cookie(django_chat.url, "alice")
    client = socketio.Client(reconnection=False)
    welcome: list[dict[str, object]] = []
    client.on("welcome", welcome.append)
    client.connect(
        django_chat.url, headers={"Cookie": cookie}, transports=[transport], wait_timeout=10
    )
    try:
        for _ in range(100):
            if welcome:
                break
            client.sleep(0.05)
        assert welcome and welcome[0]["name"] == "alice"
        assert client.call("join", {"room": "python"}, timeout=10)["ok"] is True
    finally:
        client.disconnect()


@pytest.mark.browser
@pytest.mark.slow
def test_django_chat_in_chromium(django_chat: ExampleServer) -> None:
    need_browser()
    need_client_js(EXAMPLE)
    screenshot = output_path("django_chat.png")
    users = dict.fromkeys(("alice", "bob", "carol"), PASSWORD)
    lines = check_scenario({"kind": "django", "users": users}, django_chat, screenshot)
    refused = [line for line in lines if line.get("step") == "anonymous socket is refused"]
    assert refused and "authentication required" in refused[0]["message"]
    print(f"\nscreenshot of the Django chat: {screenshot}")


def assert_serves_chat_core(base: str) -> None:
    """The page links the shared chat_core files, which WSGIApp's static_files serve.

    :param base: server URL.
    """
    page = requests.get(f"{base}/", timeout=10).text
    for name in ("chat.js", "chat.css"):
        url = f"/static/chat_core/{name}"
        assert url in page, page[:2000]
        served = requests.get(base + url, timeout=10)
        assert served.status_code == 200
        assert served.content == (CHAT_CORE / "static" / "chat_core" / name).read_bytes()


@pytest.mark.parametrize("worker", list(WORKERS))
def test_gunicorn_workers(django_env: dict[str, str], tmp_path: Path, worker: str) -> None:
    """README gunicorn commands: polling and WebSocket users chat; /announce reaches both."""
    argv = gunicorn_argv(worker, "chatsite.wsgi:application")
    with ExampleServer(argv, EXAMPLE, tmp_path / "gunicorn.log", env=django_env) as server:
        clients: dict[str, socketio.Client] = {}
        seen: dict[str, list[tuple[str, object]]] = {"alice": [], "bob": []}
        try:
            for user, transport in (("alice", "polling"), ("bob", "websocket")):
                client = socketio.Client(reconnection=False)
                client.on("*", lambda event, *args, u=user: seen[u].append((event, args)))
                client.connect(
                    server.url,
                    headers={"Cookie": login_cookie(server.url, user)},
                    transports=[transport],
                    wait_timeout=10,
                )
                clients[user] = client
            assert clients["bob"].transport() == "websocket"
            ack = clients["alice"].call(
                "message", {"id": "m1", "room": "lobby", "text": "hi"}, timeout=10
            )
            assert ack["ok"] is True
            r = requests.post(
                f"{server.url}/announce", data={"text": f"hello {worker}"}, timeout=10
            )
            assert r.json()["ok"] is True
            assert_serves_chat_core(server.url)

            def arrived() -> bool:
                bob_got = any(e == "message" and a[0]["text"] == "hi" for e, a in seen["bob"])
                both = all(any(e == "announcement" for e, _ in seen[u]) for u in seen)
                return bob_got and both

            for _ in range(200):
                if arrived():
                    break
                clients["alice"].sleep(0.05)
            assert arrived(), (seen, server.log_tail())
        finally:
            for client in clients.values():
                client.disconnect()
