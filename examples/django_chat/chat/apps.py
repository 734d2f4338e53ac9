"""The chat app."""

from __future__ import annotations

from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Django app config of the chat."""

    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"
