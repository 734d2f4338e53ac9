"""nginx (ip_hash) in front of three nodes; official JS clients chat across nodes through it.

The nginx config is the one of docs/multinode.md plus ``real_ip_header
X-Forwarded-For`` so that clients on one machine can present distinct
addresses (each JS client sends its own ``X-Forwarded-For``) and spread over
the nodes the way real clients would.

Also checked: a request for a session of another node is relayed to it (the
session relay, on by default with a client manager), and with ``relay=False``
it gets a clear 400 JSON error.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.multinode.mn_support import (
    HERE,
    Cluster,
    ClusterFactory,
    Nginx,
    Node,
    broker_url,
    running,
)
from tests.support import ROOT, skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(120)]

WORKERS = ["gevent", "threading", "eventlet"]
CLIENT_IPS = [f"10.{i}.0.7" for i in range(1, 10)]
REALIP = """
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
"""


def _needs_nginx_and_node() -> tuple[str, str]:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        skip_or_fail("nginx is not installed (apt-get install -y nginx)")
    node = shutil.which("node")
    if node is None or not (ROOT / "tests/js/node_modules/socket.io-client").is_dir():
        skip_or_fail("node or tests/js/node_modules/socket.io-client is missing")
    assert nginx is not None and node is not None
    return nginx, node


@pytest.mark.browser
def test_js_clients_chat_across_nodes_behind_nginx_ip_hash(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    _, node_bin = _needs_nginx_and_node()
    cluster = make_cluster("redis", WORKERS)
    upstreams = [f"127.0.0.1:{n.port}" for n in cluster.nodes]
    nginx = Nginx(upstreams, tmp_path / "nginx", server_extra=REALIP)
    nginx.workdir.mkdir()
    nginx.start()
    with running(nginx):
        scenario = {"url": f"http://127.0.0.1:{nginx.port}", "ips": CLIENT_IPS, "room": "lobby"}
        done = subprocess.run(
            [node_bin, str(HERE / "js" / "chat.js"), json.dumps(scenario)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.stdout, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        detail = f"{report}\n{cluster.dump()}\n{done.stderr}"
        assert report["ok"], detail
        clients = report["clients"]
        assert all(c["upgraded"] and c["transport"] == "websocket" for c in clients), detail
        assert len({c["node"] for c in clients}) >= 2, detail  # the room spans nodes
        access = (nginx.workdir / "access.log").read_text()
        assert " 400 " not in access, access  # sticky: no request reached the wrong node
        assert re.search(r"GET /socket\.io/\?EIO=4&transport=polling", access)
        assert re.search(r"GET /socket\.io/\?EIO=4&transport=websocket.* 101 ", access)


def test_session_of_another_node_is_relayed(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("redis", WORKERS[:2])
    a, b = cluster.nodes
    with urllib.request.urlopen(f"{a.url}/socket.io/?EIO=4&transport=polling", timeout=5) as r:
        sid = json.loads(r.read().decode()[1:])["sid"]
    request = urllib.request.Request(
        f"{b.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"40", method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as r:
        assert r.read() == b"ok"
    with urllib.request.urlopen(
        f"{b.url}/socket.io/?EIO=4&transport=polling&sid={sid}", timeout=5
    ) as r:
        assert r.read().startswith(b"40{")  # the CONNECT reply, from node a


class _NoRelayNode(Node):
    app_env = {"MN_RELAY": "0"}


def test_without_relay_another_nodes_session_is_a_clear_400(tmp_path: Path) -> None:
    cluster = Cluster("redis", broker_url("redis"), tmp_path, WORKERS[:2], _NoRelayNode)
    with running(cluster):
        cluster.start()
        a, b = cluster.nodes
        with urllib.request.urlopen(f"{a.url}/socket.io/?EIO=4&transport=polling", timeout=5) as r:
            sid = json.loads(r.read().decode()[1:])["sid"]
        _expect_unknown_sid(b.url, sid)


def _expect_unknown_sid(url: str, sid: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}", timeout=5)
    assert info.value.code == 400
    assert info.value.headers["Content-Type"] == "application/json"
    assert json.loads(info.value.read()) == {"code": 1, "message": "Session ID unknown"}
