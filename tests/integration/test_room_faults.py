"""Faults in a live room, on real processes: a restart of Redis under a web server with
listeners and voters. (A GPU worker killed mid-room: test_room_chunks_on_workers.py.)

The Redis here is one this test starts on a port of its own (127.0.0.1 only), so restarting it
disturbs nobody else; PostgreSQL is the test database, which the web server uses too.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import time
from contextlib import suppress

import pytest
from django.contrib.sessions.backends.db import SessionStore
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from collab import protocol, services
from collab.models import Vote
from tests.integration.live import WebServer, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

RESYNC_WITHIN_S = 5.0


class RedisServer:
    """A throwaway redis-server: no persistence, so a restart starts it empty (as a crashed
    cache node without a disk would come back)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)


class Listener:
    """A client as docs/protocol.md asks: it reconnects when the server closes, and starts
    again from the snapshot; its votes count once acknowledged."""

    def __init__(self, server: WebServer, room_id, session: str) -> None:
        self.url = server.url(f"/ws/rooms/{room_id}/", "ws")
        self.origin = server.url("")
        self.session = session
        self.snapshots: list[tuple[float, dict]] = []
        self.frames: list[dict] = []
        self.acked: dict[int, int] = {}  # message id -> proposal
        self.sent: dict[int, int] = {}
        self.closes: list = []  # close codes, or why a connection failed
        self.ws = None
        self.connected = asyncio.Event()

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            try:
                async with connect(
                    self.url,
                    origin=self.origin,
                    additional_headers={"Cookie": f"sessionid={self.session}"},
                    proxy=None,
                    open_timeout=3,
                ) as ws:
                    self.ws = ws
                    async for raw in ws:
                        self.take(json.loads(raw))
                    self.closes.append(ws.close_code)
            except ConnectionClosed as exc:  # closed by the server with a code of its own
                self.closes.append(exc.rcvd.code if exc.rcvd else None)
            except Exception as exc:  # refused while Redis is away: try again
                self.closes.append(repr(exc))
            self.ws = None
            self.connected.clear()
            await asyncio.sleep(0.2)

    def take(self, frame: dict) -> None:
        if frame["type"] == "snapshot":
            self.snapshots.append((time.monotonic(), frame))
            self.connected.set()
        elif frame["type"] == "ack" and frame.get("of") == "vote":
            self.acked[frame["id"]] = self.sent[frame["id"]]
        self.frames.append(frame)

    async def vote(self, message_id: int, proposal_id: int) -> None:
        await self.connected.wait()
        self.sent[message_id] = proposal_id
        with suppress(Exception):  # the socket closed under it: the vote was never answered
            await self.ws.send(
                json.dumps({"type": "vote", "id": message_id, "proposal_id": proposal_id})
            )

    def last_acked(self) -> int | None:
        return self.acked[max(self.acked)] if self.acked else None


@pytest.fixture
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def web_server(transactional_db, redis_server, tmp_path):
    server = WebServer(redis_server.url, tmp_path / "web.log")
    yield server
    server.stop()


def session_key() -> str:
    session = SessionStore()
    session.create()
    return session.session_key


async def votes_for_a_while(listeners, proposals, *, first_id: int, seconds: float) -> None:
    for n in range(int(seconds / 0.25)):
        for i, listener in enumerate(listeners):
            await listener.vote(first_id + n, proposals[(n + i) % len(proposals)])
        await asyncio.sleep(0.25)


def test_a_redis_restart_makes_clients_resync_and_loses_no_acknowledged_vote(
    web_server, redis_server, alice
):
    room = services.room_create(
        host=alice,
        title="Faults",
        anchor_prompt="warm lo-fi beat",
        visibility="public",
        round_length_s=120,
    )
    proposals = [
        services.proposal_create(room=room, user=alice, text=text).pk
        for text in ("add strings", "more bass")
    ]
    listeners = [Listener(web_server, room.pk, session_key()) for _ in range(2)]

    async def scenario() -> float:
        until = time.monotonic() + 40
        running = [asyncio.create_task(x.run(until)) for x in listeners]
        await asyncio.wait_for(asyncio.gather(*(x.connected.wait() for x in listeners)), 15)
        await votes_for_a_while(listeners, proposals, first_id=1, seconds=1.5)

        redis_server.kill()  # mid-vote: some votes are in flight
        await votes_for_a_while(listeners, proposals, first_id=100, seconds=1.0)
        redis_server.start()
        back = time.monotonic()
        await asyncio.sleep(RESYNC_WITHIN_S + 1)
        await votes_for_a_while(listeners, proposals, first_id=200, seconds=1.5)
        await asyncio.sleep(1.0)  # the last answers
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        return back

    back = asyncio.run(scenario())

    for listener in listeners:
        # Let go by the server, back within the bound, and started again from a snapshot.
        assert protocol.CLOSE_RESYNC in listener.closes
        resynced = [t for t, _ in listener.snapshots if t >= back]
        assert resynced and resynced[0] - back <= RESYNC_WITHIN_S
        assert any(i >= 200 for i in listener.acked), "no vote was acknowledged after the restart"
        stored = Vote.objects.get(round__room=room, voter_key=f"anon:{listener.session}")
        assert stored.proposal_id == listener.last_acked()
