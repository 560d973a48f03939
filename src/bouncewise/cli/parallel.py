"""Spread classification over worker processes while keeping results in input order.

`multiprocessing.Pool.imap` reads its whole input ahead, which for a large mbox would hold every
message in memory. Here at most `jobs * PARALLEL_BATCHES_PER_WORKER` batches are in flight, and a
batch contains at most `PARALLEL_BATCH_SIZE` messages or about `PARALLEL_BATCH_BYTES` bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from bouncewise.classify import Failure, classify_item
from bouncewise.config import (PARALLEL_BATCH_BYTES, PARALLEL_BATCH_SIZE,
                               PARALLEL_BATCHES_PER_WORKER, Limits)
from bouncewise.mail.sources import Item


def _classify_batch(items: list[Item], limits: Limits) -> list:
    return [classify_item(item, limits) for item in items]


def _batches(items: Iterable[Item]) -> Iterator[list[Item]]:
    batch: list[Item] = []
    size = 0
    for item in items:
        batch.append(item)
        size += len(item.data)
        if len(batch) >= PARALLEL_BATCH_SIZE or size >= PARALLEL_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def classify_items(items: Iterable[Item], jobs: int, limits: Limits) -> Iterator[list | Failure]:
    """Yield the outcome of each item (a list of results or a `Failure`), in input order."""
    if jobs <= 1:
        for item in items:
            yield classify_item(item, limits)
        return

    batches = _batches(items)
    pool = ProcessPoolExecutor(max_workers=jobs)
    pending: deque[tuple[list[Item], Future]] = deque()
    try:
        while True:
            while len(pending) < jobs * PARALLEL_BATCHES_PER_WORKER:
                batch = next(batches, None)
                if batch is None:
                    break
                pending.append((batch, pool.submit(_classify_batch, batch, limits)))
            if not pending:
                return

            batch, future = pending.popleft()
            try:
                yield from future.result()
            except BrokenProcessPool:
                # A worker died (killed, or out of memory): report the batch it had, and start
                # over with a new pool for the batches still queued.
                yield from (Failure(item.source, "worker process died while classifying this "
                                                 "batch; retry with --jobs 1") for item in batch)
                pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(max_workers=jobs)
                pending = deque((queued, pool.submit(_classify_batch, queued, limits))
                                for queued, _ in pending)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
