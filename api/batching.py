"""Micro-batching: concurrent requests share one model call, behind a bounded queue.

Requests wait in an `asyncio.Queue` of at most ``queue_size``; a full queue refuses at once
(`QueueFull`, which the service answers with 503 + Retry-After) instead of letting latency grow
without bound. One collector task takes the first waiting request, then keeps taking more for up
to ``max_wait_ms`` or until ``max_batch`` items are in hand, and hands the batch to ``run`` on a
single worker thread (the model is not thread-safe and torch already uses every core). While that
batch runs, new requests queue up, so the batch size grows with the load by itself. A request that
finds the model idle and nothing queued, after a batch of one request, runs at once: a lone
client gains nothing from the wait (demo server: 5.8 ms of a 29 ms p50). One that had to queue
behind a running batch waits for company as before, so two or more clients still share calls.

A request whose caller gave up (timeout, disconnect) before its batch started is skipped. When
``run`` raises on a batch, each of its requests is run alone: a request fails only by itself.
`close` refuses new requests, lets the queued ones finish (up to a deadline) and stops the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


class QueueFull(Exception):
    """The queue holds ``queue_size`` requests; the caller should retry later."""


class ShuttingDown(Exception):
    """The batcher is closing and takes no new requests."""


@dataclass
class _Pending(Generic[Item]):
    item: Item
    size: int  # how many model inputs (texts) the item holds
    future: asyncio.Future[Any] = field(repr=False)
    queued_at: float = field(default_factory=time.perf_counter)
    arrived_idle: bool = False  # nothing was running or waiting when it came


@dataclass(frozen=True)
class _Failed:
    error: Exception  # what running the item raised


class MicroBatcher(Generic[Item]):
    """Runs ``run(items) -> results`` (one result per item, same order) on batched requests.

    Args:
        run: called on the worker thread with a list of items; returns one result per item, or
            raises: then each item of that batch is run alone, and only the items that raise
            alone get an exception.
        max_batch: the most inputs (sum of item sizes) per call; an item bigger than this runs
            alone.
        max_wait_ms: how long the first item of a batch waits for others.
        queue_size: the most items waiting; more raise `QueueFull`.
        on_batch: called with (number of inputs, seconds the call took) after each batch.
    """

    def __init__(
        self,
        run: Callable[[list[Item]], Sequence[Any]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        queue_size: int = 256,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self.queue: asyncio.Queue[_Pending[Item]] = asyncio.Queue(maxsize=queue_size)
        self.on_batch = on_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kgfuse-model")
        self._collector: asyncio.Task[None] | None = None
        self._closing = False
        self._held: _Pending[Item] | None = None  # taken from the queue, did not fit the batch
        self._busy = False  # a batch is running on the model thread
        self._last_requests = 0  # requests in the last batch (0: none yet)

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not counting the batch that is running)."""
        return self.queue.qsize() + (self._held is not None)

    @property
    def closing(self) -> bool:
        return self._closing

    def start(self) -> None:
        if self._collector is None:
            self._collector = asyncio.get_running_loop().create_task(self._collect())

    async def submit(self, item: Item, size: int = 1) -> Any:
        """Queue ``item`` and wait for its result. Raises `QueueFull` or `ShuttingDown` at once."""
        if self._closing:
            raise ShuttingDown("the service is shutting down")
        pending = _Pending(item, size, asyncio.get_running_loop().create_future())
        pending.arrived_idle = not self._busy and not self.depth
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.queue.maxsize} requests are already waiting") from None
        return await pending.future

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the model thread, between batches (e.g. swapping the model's graph)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def _next(self) -> _Pending[Item]:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        return await self.queue.get()

    async def _gather(self) -> list[_Pending[Item]]:
        first = await self._next()
        batch, size = [first], first.size
        deadline = time.perf_counter() + self.max_wait
        if first.arrived_idle and self._last_requests == 1 and self.queue.empty():
            deadline = 0.0  # a lone client: waiting for company would only add to its latency
        while size < self.max_batch:
            try:
                nxt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
            if size + nxt.size > self.max_batch:
                self._held = nxt  # starts the next batch
                break
            batch.append(nxt)
            size += nxt.size
        return batch

    async def _outcomes(self, items: list[Item]) -> list[Any]:
        """``run(items)``; if it raises, each item is run alone, so an item that fails fails
        alone. A failed item's outcome is a `_Failed`."""
        loop = asyncio.get_running_loop()
        try:
            return list(await loop.run_in_executor(self.executor, self.run, items))
        except Exception as e:
            if len(items) == 1:
                return [_Failed(e)]
        return [outcome for item in items for outcome in await self._outcomes([item])]

    async def _collect(self) -> None:
        while True:
            batch = [p for p in await self._gather() if not p.future.done()]
            if not batch:
                continue
            self._last_requests = len(batch)
            started = time.perf_counter()
            self._busy = True
            try:
                outcomes = await self._outcomes([p.item for p in batch])
            finally:
                self._busy = False
            if self.on_batch is not None:
                self.on_batch(sum(p.size for p in batch), time.perf_counter() - started)
            for p, outcome in zip(batch, outcomes, strict=True):
                if p.future.done():
                    continue
                if isinstance(outcome, _Failed):
                    p.future.set_exception(outcome.error)
                else:
                    p.future.set_result(outcome)

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new items, let queued ones finish for up to ``timeout`` s, stop the thread."""
        self._closing = True
        deadline = time.perf_counter() + timeout
        while (self.depth or self._busy) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        leftover = [self._held] if self._held else []
        while not self.queue.empty():
            leftover.append(self.queue.get_nowait())
        for p in leftover:
            if not p.future.done():
                p.future.set_exception(ShuttingDown("the service stopped before this request ran"))
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)
