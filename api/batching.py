"""Micro-batching in two stages: concurrent requests share one model call, behind a bounded queue.

Requests wait in an `asyncio.Queue` of at most ``queue_size``; a full queue refuses at once
(`QueueFull`, which the service answers with 503 + Retry-After) instead of letting latency grow
without bound.

Stage 1 (the collector) takes the first waiting request, keeps taking more for up to
``max_wait_ms`` or until ``max_batch`` inputs are in hand, and runs ``prepare`` on them on its
own thread (entity linking and subgraphs: Python work). Stage 2 runs ``run`` on everything
prepared (up to ``max_batch`` inputs) on the single model thread (the model is not thread-safe
and torch already uses its cores). The two overlap: while the model computes one batch, the
next is linked. Stage 1 prepares at most one batch ahead, so under overload requests back up in
the bounded queue, not in memory. Batch size grows with the load by itself.

A request whose caller gave up (timeout, disconnect) before its batch started is skipped.
`close` refuses new requests, lets the queued ones finish (up to a deadline) and stops both
threads.
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
    prepared: Any = None  # what stage 1 made of the item


def _identity(items: list[Any]) -> list[Any]:
    return items


class MicroBatcher(Generic[Item]):
    """Runs ``run(prepare(items)) -> results`` (one result per item) on batched requests.

    Args:
        run: called on the model thread with a list of prepared items; returns one result per
            item, in order, or raises (every item of that batch then gets the exception).
        max_batch: the most inputs (sum of item sizes) per call; a bigger item runs alone.
        max_wait_ms: how long the first item of a batch waits for others.
        queue_size: the most items waiting to be taken; more raise `QueueFull`.
        on_batch: called with (number of inputs, seconds ``run`` took) after each batch.
        prepare: called on the preparing thread with a list of items; returns one prepared
            item per item (default: the items themselves).
    """

    def __init__(
        self,
        run: Callable[[list[Any]], Sequence[Any]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        queue_size: int = 256,
        on_batch: Callable[[int, float], None] | None = None,
        prepare: Callable[[list[Item]], Sequence[Any]] = _identity,
    ):
        self.run, self.prepare = run, prepare
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self.queue: asyncio.Queue[_Pending[Item]] = asyncio.Queue(maxsize=queue_size)
        self.on_batch = on_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kgfuse-model")
        self.prepare_executor = ThreadPoolExecutor(1, thread_name_prefix="kgfuse-prepare")
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._held: _Pending[Item] | None = None  # taken from the queue, did not fit the batch
        self._ready: list[_Pending[Item]] = []  # prepared, waiting for the model
        self._ready_changed = asyncio.Event()
        self._preparing = 0  # items on the preparing thread now
        self._busy = False  # a batch is running on the model thread

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not counting the batch that is running)."""
        return self.queue.qsize() + (self._held is not None) + len(self._ready) + self._preparing

    @property
    def closing(self) -> bool:
        return self._closing

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._collect()), loop.create_task(self._infer())]

    async def submit(self, item: Item, size: int = 1) -> Any:
        """Queue ``item`` and wait for its result. Raises `QueueFull` or `ShuttingDown` at once."""
        if self._closing:
            raise ShuttingDown("the service is shutting down")
        pending = _Pending(item, size, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.queue.maxsize} requests are already waiting") from None
        return await pending.future

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the model thread, between batches (e.g. swapping the model's graph)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    # ----- stage 1: gather and prepare -----
    async def _next(self) -> _Pending[Item]:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        return await self.queue.get()

    async def _gather(self) -> list[_Pending[Item]]:
        first = await self._next()
        batch, size = [first], first.size
        deadline = time.perf_counter() + self.max_wait
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

    def _ready_size(self) -> int:
        return sum(p.size for p in self._ready)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self._ready_size() >= self.max_batch:  # one batch ahead is enough
                self._ready_changed.clear()
                await self._ready_changed.wait()
            batch = [p for p in await self._gather() if not p.future.done()]
            if not batch:
                continue
            self._preparing = len(batch)
            try:
                prepared = await loop.run_in_executor(
                    self.prepare_executor, self.prepare, [p.item for p in batch]
                )
            except Exception as e:
                _fail(batch, e)
                continue
            finally:
                self._preparing = 0
            for p, made in zip(batch, prepared, strict=True):
                p.prepared = made
            self._ready.extend(batch)
            self._ready_changed.set()

    # ----- stage 2: the model -----
    def _take_ready(self) -> list[_Pending[Item]]:
        batch: list[_Pending[Item]] = []
        size = 0
        while self._ready and (not batch or size + self._ready[0].size <= self.max_batch):
            p = self._ready.pop(0)
            if not p.future.done():
                batch.append(p)
                size += p.size
        return batch

    async def _infer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._ready:
                self._ready_changed.clear()
                await self._ready_changed.wait()
            batch = self._take_ready()
            self._ready_changed.set()  # room for stage 1 to prepare the next batch
            if not batch:
                continue
            started = time.perf_counter()
            self._busy = True
            try:
                results = await loop.run_in_executor(
                    self.executor, self.run, [p.prepared for p in batch]
                )
            except Exception as e:  # every waiter of the batch learns of it
                _fail(batch, e)
                continue
            finally:
                self._busy = False
            if self.on_batch is not None:
                self.on_batch(sum(p.size for p in batch), time.perf_counter() - started)
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new items, let queued ones finish for up to ``timeout`` s, stop the threads."""
        self._closing = True
        deadline = time.perf_counter() + timeout
        while (self.depth or self._busy) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        leftover = [*([self._held] if self._held else []), *self._ready]
        while not self.queue.empty():
            leftover.append(self.queue.get_nowait())
        _fail(leftover, ShuttingDown("the service stopped before this request ran"))
        for executor in (self.prepare_executor, self.executor):
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)


def _fail(batch: list[_Pending[Any]], error: Exception) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(error)
