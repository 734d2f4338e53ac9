"""engine.http.origin_allowed with malformed headers (found by the hostile catalogue).

A malformed ``Origin`` (``http://a:xyz``, ``http://[::1``) or ``Host`` header made the
same-origin check raise ``ValueError``: a 500 with a traceback instead of 403.
"""

from __future__ import annotations

import pytest

from sio_wsgi.engine.http import origin_allowed


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://a:xyz", "127.0.0.1:5000"),
        ("http://[::1", "127.0.0.1:5000"),
        ("http://127.0.0.1:99999", "127.0.0.1:5000"),
        ("http://127.0.0.1:5000", "127.0.0.1:xyz"),
        ("http://127.0.0.1:5000", "[::1"),
    ],
)
def test_malformed_origin_or_host_is_refused_not_raised(origin: str, host: str) -> None:
    assert origin_allowed(origin, None, host, "http") is False
