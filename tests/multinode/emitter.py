"""An external emitter: a plain script with no server, reaching the clients of every node.

Usage: ``python emitter.py redis|kombu URL CHANNEL EVENT JSON_DATA [ROOM]``
(exit status 0 once the message was published).
"""

from __future__ import annotations

import json
import sys

from sio_wsgi.managers.pubsub import PubSubManager

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Publish one event.

    :param argv: the command-line arguments (see the module docstring).
    :returns: the exit status.
    """
    broker, url, channel, event, data = argv[:5]
    room = argv[5] if len(argv) > 5 else None
    manager: PubSubManager
    if broker == "kombu":
        from sio_wsgi.managers.kombu import KombuManager

        manager = KombuManager(url, channel=channel, write_only=True)
    else:
        from sio_wsgi.managers.redis import RedisManager

        manager = RedisManager(url, channel=channel, write_only=True)
    manager.emit(event, json.loads(data), room=room)
    manager.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
