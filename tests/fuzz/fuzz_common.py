"""Shared code of the atheris fuzz targets (``fuzz_*.py``, run by run_atheris.sh).

Each target imports sio_wsgi under ``atheris.instrument_imports()`` (coverage
guidance) and lets any exception other than
:class:`~sio_wsgi.exceptions.RemoteProtocolError` escape: atheris reports it as a
crash with the input that caused it. run_atheris.sh puts the checkout's root on
``PYTHONPATH``, so the targets import this checkout's ``sio_wsgi``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["run"]


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Hand ``test_one_input`` to atheris with the command-line options.

    :param test_one_input: the target.
    """
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
