"""At most N user servers starting at once; the others wait their turn, first come first served.

Starting a server is CPU work (Python importing Jupyter). Fifty servers started together on two
cores share the CPU and all become ready together, late: everyone waits about as long as the last
one. Started N at a time (default: twice the CPUs), the same total CPU is spent, but the first
servers are ready within seconds and no server is ready later than it would have been. Measured
with benchmarks/spawn.py (50 users, 2 shared cores): p50 login-to-ready 57-58 s in turns, 143 s
all at once (issue 15). A server holds its turn from its process start until it listens on
its port, its process ends (the spawn then fails as usual), or `timeout` passes (a stuck server does
not hold up the others).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class Turns:
    """`size` turns handed out strictly first come first served, a turn handed over by
    `release` directly to the next waiter (no newcomer can take it in between)."""

    def __init__(self, size: int):
        self.free = size
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            await turn  # done: release() handed this turn over
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed over, but its holder is gone: the next one gets it
            else:
                self.waiting.remove(turn)
            raise

    def release(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1


_QUEUES: dict[tuple[int, int], Turns] = {}


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@asynccontextmanager
async def start_turn(size: int) -> AsyncIterator[None]:
    """Hold one of `size` turns (per event loop) for the block; waits FIFO for a free one."""
    key = (id(asyncio.get_running_loop()), size)
    turns = _QUEUES.get(key)
    if turns is None:
        turns = _QUEUES[key] = Turns(size)
    await turns.acquire()
    try:
        yield
    finally:
        turns.release()


async def wait_listening(port: int, alive: Callable[[], bool], timeout: float,
                         host: str = "127.0.0.1") -> bool:
    """True once `host:port` accepts a connection; False when `alive()` turns false or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except (TimeoutError, OSError):
            if not alive():
                return False
            await asyncio.sleep(0.1)
            continue
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True
    return False
