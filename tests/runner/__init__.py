"""The runner (``python -m sio_wsgi``, ``sio_wsgi.run``), Django's ``runsio``: in subprocesses."""
