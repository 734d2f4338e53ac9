"""The Admin UI's protocol on a real cluster: two gunicorn nodes (gevent and gthread
workers) on Redis or RabbitMQ, a python-socketio client as the UI on node n0.

Each node reports its own ``server_stats`` and its sockets' events to the admin
namespace, which reaches the UI through the bus; the UI's actions on a socket of
node n1, sent to n0, work through the manager (join, disconnect).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.multinode.mn_support import Cluster, Node, broker_url
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ADMIN = "/admin"
USER, PASSWORD = "admin", "s3cret"


class AdminNode(Node):
    """A node that calls ``sio.instrument()`` (``MN_ADMIN``)."""

    app_env = {"MN_ADMIN": f"{USER}:{PASSWORD}"}


class AdminClient:
    """A python-socketio client on the admin namespace, recording what it gets."""

    def __init__(self, url: str, auth: dict[str, str]) -> None:
        import socketio  # the reference client, used as a peer only

        self.received: list[tuple[str, list[Any]]] = []
        self.sio = socketio.Client(reconnection=False)

        @self.sio.on("*", namespace=ADMIN)
        def catch_all(event: str, *args: Any) -> None:
            self.received.append((event, list(args)))

        self.sio.connect(
            url, namespaces=[ADMIN], auth=auth, transports=["websocket"], wait_timeout=10
        )

    def find(self, event: str, where: Any = lambda args: True, timeout: float = 10) -> list[Any]:
        """The arguments of the first ``event`` whose arguments satisfy ``where``."""

        def found() -> list[Any] | None:
            for name, args in list(self.received):
                if name == event and where(args):
                    return args
            return None

        return wait_until(found, timeout, f"{event} arrived")

    def emit(self, event: str, *args: Any) -> None:
        self.sio.emit(event, args, namespace=ADMIN)

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture
def cluster(broker: str, tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(broker, broker_url(broker), tmp_path, ["gevent", "threading"], AdminNode)
    try:
        yield nodes.start()
    finally:
        nodes.stop()


def test_admin_ui_protocol_across_nodes(cluster: Cluster) -> None:
    import socketio

    url = cluster.nodes[0].url
    refused = socketio.Client(reconnection=False)
    errors: list[Any] = []
    refused.on("connect_error", errors.append, namespace=ADMIN)
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(
            url, namespaces=[ADMIN], auth={"username": USER, "password": "wrong"}, wait_timeout=10
        )
    assert errors == [{"message": "invalid credentials"}]
    a, b = cluster.client(0), cluster.client(1)
    admin = AdminClient(url, {"username": USER, "password": PASSWORD})
    try:
        assert isinstance(admin.find("session")[0], str)
        assert "MDISCONNECT" in admin.find("config")[0]["supportedFeatures"]
        listed = admin.find("all_sockets")[0]
        assert a.sid in {s["id"] for s in listed}
        # node n1 sends its sockets when the UI connects to n0
        remote = admin.find("socket_connected", lambda args: args[0]["id"] == b.sid)[0]
        assert remote["nsp"] == "/" and b.sid in remote["rooms"]
        for name in ("n0", "n1"):
            stats = admin.find("server_stats", lambda args, n=name: args[0]["serverId"] == n)[0]
            assert stats["clientsCount"] >= 1 and stats["namespaces"]
        # live events of a socket of n1
        assert b.call("echo", "hi") == "hi"
        admin.find("event_received", lambda args: args[:3] == ["/", b.sid, ["echo", "hi"]])
        # the UI's actions, sent to n0, on the socket of n1
        admin.emit("join", "/", "from-admin", b.sid)
        admin.find("room_joined", lambda args: args[:3] == ["/", "from-admin", b.sid])
        assert "from-admin" in a.call("rooms_of", b.sid)
        admin.emit("_disconnect", "/", False, b.sid)
        wait_until(lambda: not b.sio.connected, 10, "b disconnected by the UI")
        gone = ["/", b.sid, "server disconnect"]
        admin.find("socket_disconnected", lambda args: args[:3] == gone)
        assert a.sio.connected and b.sid not in a.call("members", None)
    finally:
        admin.close()
