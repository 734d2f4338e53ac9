"""The sio_wsgi benchmark suite: ``python -m bench`` (see bench/run.py)."""

from __future__ import annotations

__all__: list[str] = []
