"""Broadcasts from processes without a server loop (the conductor, Celery workers) in service
mode: one loop of their own, so the Redis layer keeps one connection instead of opening one per
announcement."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from channels.layers import get_channel_layer

from collab import broadcast

pytestmark = pytest.mark.integration  # real Redis: service mode only


def test_a_process_without_a_server_loop_sends_every_frame_through_one_loop_of_its_own():
    layer = get_channel_layer()
    group = "test-sender-loop"
    received: list[dict] = []
    subscribed = threading.Event()

    async def listen(n: int) -> None:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        subscribed.set()
        try:
            for _ in range(n):
                received.append(await asyncio.wait_for(layer.receive(channel), 5))
        finally:
            await layer.group_discard(group, channel)

    listener = threading.Thread(target=lambda: asyncio.run(listen(3)))
    listener.start()
    assert subscribed.wait(5)
    loops = set()
    for n in range(3):  # from this thread, which runs no event loop
        broadcast.deliver(group, {"type": "room.frame", "text": json.dumps({"n": n})})
        loops.add(broadcast._sender_loop())
    listener.join(10)

    assert [json.loads(e["text"])["n"] for e in received] == [0, 1, 2]
    assert len(loops) == 1  # one loop, one connection, for the life of the process
    [loop] = loops
    assert loop.is_running()
