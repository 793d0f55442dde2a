"""`qhub_hub.local.start_queue`: at most N servers starting at once, first come first served; a
turn ends when the server listens or its process ends. Real processes on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from qhub_hub.local.start_queue import start_turn, wait_listening
from tests.support.net import free_port

# a "server": some start-up work, then it listens (or, with port 0, exits without listening)
SERVER = """
import socket, sys, time
time.sleep(float(sys.argv[2]))
port = int(sys.argv[1])
if port == 0:
    sys.exit(3)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen()
time.sleep(60)
"""


async def start_all(specs: list[tuple[str, int]], size: int) -> tuple[int, list[str], dict[str, bool]]:
    """Start each (name, port) through a queue of `size`; (most turns held at once, order of the
    turns, whether each listened)."""
    holding, most, order, listened, procs = 0, 0, [], {}, []

    async def one(name: str, port: int) -> None:
        nonlocal holding, most
        async with start_turn(size):
            holding += 1
            most = max(most, holding)
            order.append(name)
            proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), "0.3"])
            procs.append(proc)
            listened[name] = await wait_listening(port, lambda: proc.poll() is None, 60)
            holding -= 1

    try:
        tasks = []
        for name, port in specs:  # queued in this order
            tasks.append(asyncio.create_task(one(name, port)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return most, order, listened


def test_at_most_n_start_at_once_in_arrival_order() -> None:
    specs = [(f"s{i}", free_port()) for i in range(6)]
    most, order, listened = asyncio.run(start_all(specs, 2))
    assert most == 2
    assert order == [name for name, _ in specs]
    assert all(listened.values())


def test_a_server_that_exits_gives_up_its_turn() -> None:
    specs = [("dies", 0), ("next", free_port())]
    most, order, listened = asyncio.run(start_all(specs, 1))
    assert listened == {"dies": False, "next": True}
    assert order == ["dies", "next"] and most == 1


def test_wait_listening_gives_up_after_the_timeout() -> None:
    port = free_port()  # nothing listens there; the "process" stays alive
    assert asyncio.run(wait_listening(port, lambda: True, 0.5)) is False


def test_a_cancelled_waiter_does_not_lose_a_turn() -> None:
    async def run() -> list[str]:
        got: list[str] = []
        release_first = asyncio.Event()

        async def holder() -> None:
            async with start_turn(1):
                got.append("first")
                await release_first.wait()

        async def waiter(name: str) -> None:
            async with start_turn(1):
                got.append(name)

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        cancelled = asyncio.create_task(waiter("cancelled"))
        later = asyncio.create_task(waiter("later"))
        await asyncio.sleep(0)
        cancelled.cancel()
        release_first.set()
        await asyncio.wait_for(asyncio.gather(first, later), 10)
        async with start_turn(1):  # the turn is free again
            got.append("again")
        return got

    assert asyncio.run(run()) == ["first", "later", "again"]


def test_fifty_waiters_all_get_their_turn() -> None:
    async def run() -> int:
        done = 0

        async def one() -> None:
            nonlocal done
            async with start_turn(2):
                await asyncio.sleep(0.001)
                done += 1

        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(50))), 30)
        return done

    assert asyncio.run(run()) == 50
