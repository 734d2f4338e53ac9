"""Django management commands of sio_wsgi: ``runsio``."""
