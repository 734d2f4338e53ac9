"""URLs: the chat page, Django's login/logout views, the announce endpoint."""

from __future__ import annotations

from chat import views
from django.urls import include, path

urlpatterns = [
    path("", views.index, name="index"),
    path("announce", views.announce, name="announce"),
    path("health", views.health, name="health"),
    path("accounts/", include("django.contrib.auth.urls")),
]
