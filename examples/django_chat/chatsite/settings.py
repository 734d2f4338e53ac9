"""Settings of the chat example: a plain Django project plus sio_wsgi.

Development defaults; for production set ``DJANGO_SECRET_KEY``,
``DJANGO_DEBUG=0`` and ``DJANGO_ALLOWED_HOSTS``.

The chat itself (Socket.IO events, templates, ``chat.js``) is the package
``examples/chat_core``, shared with the Flask example: this file puts it on
``sys.path`` (every entry point, ``manage.py`` or ``chatsite.wsgi``, reads the
settings first) and adds its templates and static files to Django's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
CHAT_CORE = BASE_DIR.parent / "chat_core"
if str(CHAT_CORE.parent) not in sys.path:
    sys.path.append(str(CHAT_CORE.parent))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-for-the-chat-example")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "sio_wsgi.django",  # python manage.py runsio, and the SIO_WSGI_* settings below
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
# runsio and gunicorn both load this: Django wrapped by sio_wsgi.
WSGI_APPLICATION = "chatsite.wsgi.application"

# sio_wsgi.django: the Server that chatsite/wsgi.py (sio_wsgi.django.get_wsgi_application)
# wraps Django with, and what that WSGIApp serves besides: /static/ (chat_core's files, the
# one STATICFILES_DIRS entry, so no collectstatic is needed, under gunicorn too) and the
# official JavaScript client, installed by `npm install` in this directory.
SIO_WSGI_SERVER = "chat.sockets.sio"
SIO_WSGI_STATIC_FILES = {"/static/": CHAT_CORE / "static"}
SIO_WSGI_CLIENT_JS = BASE_DIR / "node_modules" / "socket.io-client" / "dist"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [CHAT_CORE / "templates"],  # chat_core/base.html, chat_core/chat.html
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chat.context_processors.chat_page",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_CHAT_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [CHAT_CORE / "static"]  # chat_core/chat.js, chat_core/chat.css
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# When set, POST /announce needs "Authorization: Bearer <token>" (staff users never do).
ANNOUNCE_TOKEN = os.environ.get("CHAT_ANNOUNCE_TOKEN", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "chat": {"handlers": ["console"], "level": os.environ.get("CHAT_LOG_LEVEL", "WARNING")}
    },
}
