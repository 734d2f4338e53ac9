"""Django views: the chat page, and an HTTP endpoint that emits to every browser."""

from __future__ import annotations

import json

from chat_core import announce as send_announcement
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .sockets import sio, state


def index(request: HttpRequest) -> HttpResponse:
    """The chat page; anonymous visitors see it too, and the socket tells them to log in."""
    return render(request, "chat/index.html")


def _allowed(request: HttpRequest) -> bool:
    token = settings.ANNOUNCE_TOKEN
    if not token:
        return True
    staff = request.user.is_authenticated and request.user.is_staff
    return bool(staff) or request.headers.get("Authorization") == f"Bearer {token}"


@csrf_exempt  # an API endpoint for scripts (curl); protect it with ANNOUNCE_TOKEN
@require_POST
def announce(request: HttpRequest) -> JsonResponse:
    """Send an announcement to every connected browser.

    ``curl -d text=hello http://127.0.0.1:8000/announce`` (or a JSON body ``{"text": ...}``).
    """
    if not _allowed(request):
        return JsonResponse({"ok": False, "error": "bad token"}, status=403)
    text = request.POST.get("text", "")
    if not text and request.content_type == "application/json":
        text = str(json.loads(request.body or b"{}").get("text", ""))
    if not text.strip():
        return JsonResponse({"ok": False, "error": "nothing to announce"}, status=400)
    return JsonResponse({"ok": True, "sent": send_announcement(sio, text.strip())})


def health(request: HttpRequest) -> JsonResponse:
    """Liveness probe (used by the tests)."""
    return JsonResponse({"ok": True, "async_mode": sio.driver.name, "online": len(state.names)})
