"""The micro-batcher's wait: a lone client is not kept waiting for company, a crowd is batched."""

from __future__ import annotations

import asyncio

from api.batching import MicroBatcher

HOUR_MS = 3_600_000.0  # a wait no test could sit out: a request that waits never answers


def test_a_lone_client_after_a_batch_of_one_does_not_wait_for_company() -> None:
    async def scenario() -> list[int]:
        calls: list[int] = []
        batcher = MicroBatcher(lambda items: (calls.append(len(items)), items)[1], max_wait_ms=0)
        batcher.start()
        await batcher.submit("first")  # no batch before it: waits max_wait_ms (0 here)
        batcher.max_wait = HOUR_MS / 1e3
        for text in ("second", "third", "fourth"):  # one at a time, each finds the model idle
            assert await asyncio.wait_for(batcher.submit(text), timeout=30) == text
        await batcher.close(1)
        return calls

    assert asyncio.run(scenario()) == [1, 1, 1, 1]


def test_a_request_that_queued_behind_a_running_batch_waits_for_company() -> None:
    """Two clients: B's request queues while A's runs; it then waits for A's next request
    (max_batch 2 ends the wait) instead of running alone."""

    async def scenario() -> list[int]:
        calls: list[int] = []
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def run(items: list[str]) -> list[str]:
            calls.append(len(items))
            if items == ["a1"]:
                asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
            return items

        batcher = MicroBatcher(run, max_batch=2, max_wait_ms=0)
        batcher.start()
        await batcher.submit("warm")  # the last batch held one request
        batcher.max_wait = HOUR_MS / 1e3
        a1 = asyncio.create_task(batcher.submit("a1"))  # finds the model idle: runs at once
        while not batcher._busy:
            await asyncio.sleep(0.001)
        b1 = asyncio.create_task(batcher.submit("b1"))  # queues behind a1
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.wait_for(a1, timeout=30)
        a2 = await asyncio.wait_for(batcher.submit("a2"), timeout=30)  # A's next request
        assert a2 == "a2" and await asyncio.wait_for(b1, timeout=30) == "b1"
        await batcher.close(1)
        return calls

    assert asyncio.run(scenario()) == [1, 1, 2]
