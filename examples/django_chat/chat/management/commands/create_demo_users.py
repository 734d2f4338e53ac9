"""``python manage.py create_demo_users``: alice, bob and carol, to try the chat."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

DEMO_USERS = ("alice", "bob", "carol")
DEMO_PASSWORD = "chat-demo"


class Command(BaseCommand):
    """Create (or reset) the demo users."""

    help = "Create the demo users alice, bob and carol (password: chat-demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Add ``--password``.

        :param parser: the argument parser.
        """
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args: Any, **options: Any) -> None:
        """Create or reset each user.

        :param args: unused.
        :param options: parsed options.
        """
        model = get_user_model()
        for name in DEMO_USERS:
            user, created = model.objects.get_or_create(username=name)
            user.set_password(options["password"])
            user.save()
            self.stdout.write(f"{'created' if created else 'reset'} {name} / {options['password']}")
