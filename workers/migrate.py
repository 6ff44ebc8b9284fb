"""One-off data migrations run when a worker starts (Celery's `worker_ready`), off the request path.

Today two (`mappings.catalog.upgrade`): indices made before crawls get the `source.{root,path,mtime}`
fields, and profiles and jobs that collections made before the state index keep in `_meta` move to the
state index. It runs in a daemon thread so a worker whose
Elasticsearch is still starting is not held up, and retries a few times; it is idempotent, so every
worker running it at once does no harm (an item is created once, `_meta` cleared once more).
"""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready

from core.config import Settings, get_settings
from core.es import get_client
from mappings.catalog import upgrade

log = logging.getLogger(__name__)

ATTEMPTS = 10
WAIT_S = 30.0


def migrate(settings: Settings, stop: threading.Event) -> bool:
    """Run the migrations until one pass succeeds (or `ATTEMPTS` failed); returns whether it did."""
    for _ in range(ATTEMPTS):
        try:
            moved = upgrade(get_client(), settings)
        except Exception as exc:  # noqa: BLE001 - Elasticsearch not up yet: the next turn may succeed
            log.info("state migration postponed: %s: %s", type(exc).__name__, exc)
            if stop.wait(WAIT_S):
                return False
            continue
        for name, count in moved.items():
            log.warning(
                "moved %d profiles/jobs of collection %s from `_meta` to the state index", count, name
            )
        return True
    log.error("state migration gave up after %d attempts; the legacy `_meta` items stay readable", ATTEMPTS)
    return False


@worker_ready.connect
def _start(**_: object) -> None:
    thread = threading.Thread(
        target=migrate, args=(get_settings(), threading.Event()), name="mmsearch-migrate", daemon=True
    )
    thread.start()
