"""What the shared chat_core templates need, in every template (settings.TEMPLATES)."""

from __future__ import annotations

import chat_core
from django.http import HttpRequest
from django.templatetags.static import static

__all__ = ["chat_page"]


def chat_page(request: HttpRequest) -> dict[str, str]:
    """The URLs of chat.js / chat.css and this example's folder.

    :param request: the request (unused).
    :returns: :func:`chat_core.page_context`'s variables.
    """
    return chat_core.page_context(static, "examples/django_chat/")
