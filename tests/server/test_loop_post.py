"""Events handed from choice threads to the event loop: all of them, in order, and one
wake-up of the loop for a burst rather than one per event."""

from __future__ import annotations

import asyncio
import threading

from server.execution import LoopPost


class CountingPost(LoopPost):
    drains = 0

    def _drain(self) -> None:
        CountingPost.drains += 1
        super()._drain()


def test_a_burst_from_many_threads_arrives_whole_in_order_with_few_wakeups() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    post = CountingPost(loop)
    got: dict[int, list[int]] = {t: [] for t in range(4)}
    busy, done = threading.Event(), threading.Event()
    loop.call_soon_threadsafe(busy.wait)  # the loop is busy while the burst comes

    def producer(t: int) -> None:
        for i in range(100):
            post.call(got[t].append, i)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    busy.set()
    post.call(done.set)
    assert done.wait(10)
    loop.call_soon_threadsafe(loop.stop)
    runner.join(10)
    loop.close()
    assert all(got[t] == list(range(100)) for t in range(4))
    assert CountingPost.drains <= 2, CountingPost.drains  # 401 calls, the loop woke once or twice


def test_a_failing_call_does_not_drop_the_others() -> None:
    loop = asyncio.new_event_loop()
    post = LoopPost(loop)
    seen: list[int] = []
    post.call(lambda: 1 / 0)
    post.call(seen.append, 7)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    assert seen == [7]
