from __future__ import annotations

import asyncio
import threading

import pytest

from samos.monitor.channel import ChannelClosed, ThreadChannel


async def test_thread_puts_drop_oldest_and_count() -> None:
    ch: ThreadChannel[int] = ThreadChannel(asyncio.get_running_loop(), 10)
    t = threading.Thread(target=lambda: [ch.put(i) for i in range(100)])
    t.start()
    await asyncio.to_thread(t.join)
    assert ch.dropped == 90 and len(ch) == 10
    assert [await ch.get() for _ in range(10)] == list(range(90, 100))


async def test_get_waits_for_a_thread_and_ends_on_close() -> None:
    loop = asyncio.get_running_loop()
    ch: ThreadChannel[str] = ThreadChannel(loop, 4)
    getter = asyncio.create_task(ch.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    loop.call_soon(lambda: threading.Thread(target=ch.put, args=("x",)).start())
    assert await asyncio.wait_for(getter, 2) == "x"
    ch.put("y")
    ch.close()
    assert await ch.get() == "y"
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(ch.get(), 2)
    assert ch.put("z") is None and len(ch) == 0
