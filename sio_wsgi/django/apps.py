"""The Django app config of ``sio_wsgi.django`` (it brings the ``runsio`` command)."""

from __future__ import annotations

from django.apps import AppConfig


class SioWsgiConfig(AppConfig):  # type: ignore[misc]
    """``INSTALLED_APPS = [..., "sio_wsgi.django"]``."""

    name = "sio_wsgi.django"
    label = "sio_wsgi"
    verbose_name = "sio_wsgi (Socket.IO)"
