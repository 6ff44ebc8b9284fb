"""Which Celery queue an encode batch goes to, and how many messages wait in each.

Per modality, one interactive queue `mmsearch.<modality>` and `BULK_LANES` bulk lanes
`mmsearch.<modality>.bulk.<k>`; a collection's bulk work always goes to the same lane (a stable hash of its
alias). Interactive batches are published at message priority 0, bulk ones at 9. Kombu's Redis transport
keeps one list per queue and priority step (`<queue>`, `<queue>\\x06\\x16<step>`) and a worker's BRPOP names
the keys step by step, all queues of step 0 before any of step 9; within a step, the queues in its
round-robin cycle, which moves the queue just served to the end. So a waiting interactive batch is the next
one taken (it waits only for the batch under way: prefetch is one, acks late), and the lanes with bulk
work take turns, one batch each, so a crawl of one collection cannot starve another's.

The lane count is a constant, not a setting: publishers and workers must agree on it, and a message sent
to a lane nobody consumes would wait for ever. Two collections hashed onto one lane share its turns.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

import redis

from ingest.priority import Priority

DEFAULT_QUEUE = "mmsearch"  # re-encode jobs and anything unrouted
MODALITIES = ("text", "image", "audio", "document")
# Interactive encoding batches, one queue per modality, so a GPU worker can take images and audio
# (`mmsearch worker --queues mmsearch.image,mmsearch.audio`, their bulk lanes included) while a CPU worker
# takes the rest. A worker started without --queues consumes all of them.
MODALITY_QUEUES = {m: f"{DEFAULT_QUEUE}.{m}" for m in MODALITIES}
BULK_LANES = 8
MESSAGE_PRIORITY = {Priority.INTERACTIVE: 0, Priority.BULK: 9}
PRIORITY_STEPS = [0, 3, 6, 9]  # kombu's default, set explicitly: the routing above relies on it
PRIORITY_SEP = "\x06\x16"  # kombu's separator between a queue's name and its priority step
_GENERATION = re.compile(r"-\d{6}$")


def bulk_lanes(queue: str) -> list[str]:
    """The bulk lanes of an interactive queue."""
    return [f"{queue}.bulk.{lane}" for lane in range(BULK_LANES)]


def all_queues() -> list[str]:
    """Every queue a worker without --queues consumes: jobs, then each modality and its lanes."""
    return [DEFAULT_QUEUE, *(q for queue in MODALITY_QUEUES.values() for q in (queue, *bulk_lanes(queue)))]


def lane_of(index: str) -> int:
    """The bulk lane of the collection a physical index belongs to (its generations share one)."""
    return zlib.crc32(_GENERATION.sub("", index).encode()) % BULK_LANES


def route(index: str, modality: str, priority: Priority) -> tuple[str, int]:
    """(queue, message priority) of an encode batch."""
    queue = MODALITY_QUEUES.get(modality)
    if queue is None:
        return DEFAULT_QUEUE, MESSAGE_PRIORITY[priority]
    if priority is Priority.INTERACTIVE:
        return queue, MESSAGE_PRIORITY[priority]
    return bulk_lanes(queue)[lane_of(index)], MESSAGE_PRIORITY[priority]


def with_lanes(selected: Iterable[str]) -> list[str]:
    """Queues named on a worker's command line, plus the bulk lanes of each modality queue among them:
    `--queues mmsearch.image` serves images, interactive and bulk."""
    names = list(selected)
    interactive = set(MODALITY_QUEUES.values())
    return names + [lane for name in names if name in interactive for lane in bulk_lanes(name)]


def broker_keys(queue: str) -> list[str]:
    """The Redis lists that hold a queue's waiting messages, one per priority step."""
    return [queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS if step)]


def depths(client: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Messages waiting per queue, all priority steps together, in one round trip."""
    pipe = client.pipeline()
    for queue in queues:
        for key in broker_keys(queue):
            pipe.llen(key)
    counts = pipe.execute()
    per_queue = len(PRIORITY_STEPS)
    return {queue: sum(counts[i * per_queue : (i + 1) * per_queue]) for i, queue in enumerate(queues)}
