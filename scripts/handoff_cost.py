#!/usr/bin/env python
"""What aiortc's per-packet hand-off costs: a packet put on an asyncio queue and taken by a waiting
task through a short await chain (as ``RTCDtlsTransport._recv_next`` takes each datagram), against
the same chain driven by a direct call (what a synchronous receive fast path would do).

    .venv/bin/python scripts/handoff_cost.py [N]

Prints CPU microseconds per packet for both, on uvloop (the monitor's loop). One packet per loop
iteration, as datagrams arrive; the producer's own loop iteration is counted in the queued figure.
"""

from __future__ import annotations

import asyncio
import sys
import time

import uvloop


async def handle(x: int) -> int:  # _handle_rtp_data -> receiver._handle_rtp_packet
    return await inner(x)


async def inner(x: int) -> int:
    return x


async def main(n: int) -> None:
    q: asyncio.Queue[int] = asyncio.Queue()

    async def consume() -> None:
        for _ in range(n):
            await handle(await q.get())

    task = asyncio.create_task(consume())
    c0 = time.process_time()
    for i in range(n):
        q.put_nowait(i)
        await asyncio.sleep(0)  # the next datagram comes in a later loop iteration
    await task
    queued = (time.process_time() - c0) / n * 1e6
    c0 = time.process_time()
    for i in range(n):
        coro = handle(i)
        try:
            coro.send(None)
        except StopIteration:
            pass
    direct = (time.process_time() - c0) / n * 1e6
    print(f"queued hand-off: {queued:.2f} us per packet; direct call: {direct:.2f} us per packet")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
