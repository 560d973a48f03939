"""Spread classification over worker processes while keeping results in input order.

`multiprocessing.Pool.imap` reads its whole input ahead, which for a large mbox would hold every
message in memory; here at most `jobs * BATCHES_PER_WORKER` batches are in flight at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

from bouncewise.classify import Failure, classify_item
from bouncewise.config import Limits
from bouncewise.mail.sources import Item

# Messages sent to a worker at once: large enough to amortise the pickling round trip.
BATCH_SIZE = 32

# Batches queued per worker; bounds memory to about jobs * 4 * 32 messages.
BATCHES_PER_WORKER = 4


def _classify_batch(items: list[Item], limits: Limits) -> list:
    return [classify_item(item, limits) for item in items]


def classify_items(items: Iterable[Item], jobs: int, limits: Limits) -> Iterator[list | Failure]:
    """Yield the outcome of each item (a list of results or a `Failure`), in input order."""
    if jobs <= 1:
        for item in items:
            yield classify_item(item, limits)
        return

    iterator = iter(items)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: deque[Future] = deque()
        while True:
            while len(pending) < jobs * BATCHES_PER_WORKER:
                batch = list(islice(iterator, BATCH_SIZE))
                if not batch:
                    break
                pending.append(pool.submit(_classify_batch, batch, limits))
            if not pending:
                return
            yield from pending.popleft().result()
