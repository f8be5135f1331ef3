"""A live room end to end on real processes: the web server, a Celery worker on queue `gpu`
(the placeholder engine, as the suite's settings choose), the conductor and Redis. Two
listeners hear the same music, and a proposal voted in changes what the next chunks are made
under."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from websockets.asyncio.client import connect

from collab import services
from collab.models import Chunk, Round
from tests.integration.conftest import wait_for
from tests.integration.live import ConductorProcess, WebServer

pytestmark = pytest.mark.integration


class Ear:
    """A listener's socket: every frame, as it arrives, kept in order."""

    def __init__(self, server: WebServer, room_id, session: str) -> None:
        self.args = (server.url(f"/ws/rooms/{room_id}/", "ws"),)
        self.options = {
            "origin": server.url(""),
            "additional_headers": {"Cookie": f"sessionid={session}"},
            "proxy": None,
        }
        self.frames: list[dict] = []
        self.taken = 0  # frames before this one were passed over or taken by next_of
        self.ws = None

    async def __aenter__(self) -> Ear:
        self.ws = await connect(*self.args, **self.options)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        self._reader.cancel()

    async def _read(self) -> None:
        async for raw in self.ws:
            self.frames.append(json.loads(raw))

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def next_of(self, kind: str, timeout_s: float = 30.0) -> dict:
        """The next frame of this type not taken yet (those before it are passed over)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for index in range(self.taken, len(self.frames)):
                if self.frames[index]["type"] == kind:
                    self.taken = index + 1
                    return self.frames[index]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind} frame within {timeout_s} s")

    def chunks(self) -> list[tuple]:
        """The chunks announced to this listener: (sequence, revision, start, url)."""
        return [
            (f["sequence"], f.get("revision", 0), f["start_s"], f["url"])
            for f in self.frames
            if f["type"] == "chunk"
        ]


def session_of(user=None) -> str:
    if user is None:
        session = SessionStore()
        session.create()
        return session.session_key
    browser = Client()
    browser.force_login(user)
    return browser.cookies["sessionid"].value


@pytest.fixture
def live_services(celery_worker, tmp_path):
    """Web server, conductor and a gpu worker, on the suite's Redis and the test database."""
    import os

    redis_url = os.environ["REDIS_URL"]
    celery_worker("gpu-rooms")
    web = WebServer(redis_url, tmp_path / "web.log")
    conductor = ConductorProcess(redis_url, tmp_path / "conductor.log")
    yield web
    conductor.stop()
    web.stop()


def same_steering(a: dict, b: dict) -> bool:
    def prompts(steering: dict) -> dict:
        return {text: round(weight, 3) for text, weight in steering.get("prompts", [])}

    return prompts(a) == prompts(b) and a.get("controls") == b.get("controls")


def test_two_listeners_hear_the_same_chunks_and_a_vote_steers_the_next_ones(
    live_services, alice, bob
):
    room = services.room_create(
        host=alice,
        title="Two ears",
        anchor_prompt="warm lo-fi beat with soft piano",
        visibility="public",
        round_length_s=120,
    )
    sessions = [session_of(alice), session_of(bob)]

    async def scenario() -> tuple[list, list, dict]:
        async with (
            Ear(live_services, room.pk, sessions[0]) as host,
            Ear(live_services, room.pk, sessions[1]) as guest,
        ):
            for ear in (host, guest):
                await ear.next_of("snapshot")
            for _ in range(3):  # the music plays for both
                await guest.next_of("chunk")
            await guest.send({"type": "propose", "id": "p", "text": "add strings"})
            proposal = (await guest.next_of("ack"))["proposal"]
            await guest.send({"type": "vote", "id": "v", "proposal_id": proposal["id"]})
            assert (await guest.next_of("ack"))["of"] == "vote"
            await host.send({"type": "skip"})
            result = await host.next_of("round_result")
            await guest.next_of("round_result")
            for _ in range(3):  # the chunks after the round closed
                await guest.next_of("chunk")
            await asyncio.sleep(1.0)  # the last frames reach both
            return host.chunks(), guest.chunks(), result

    host_heard, guest_heard, result = asyncio.run(scenario())

    # The host joined a moment earlier: from the guest's first chunk on, they heard the same.
    assert len(guest_heard) >= 6
    assert host_heard[host_heard.index(guest_heard[0]) :] == guest_heard
    assert "add strings" in dict(result["steering"]["prompts"])
    closed_at = Round.objects.get(room=room, number=result["round"]).closed_at
    chunks = wait_for(
        lambda: list(Chunk.objects.filter(room=room).order_by("sequence")),
        timeout_s=10,
        what="the room's chunks",
    )
    before = [c for c in chunks if c.created_at < closed_at and c.revision == 0]  # as first made
    steered = [c for c in chunks if same_steering(c.steering, result["steering"])]
    assert before and all("add strings" not in dict(c.steering["prompts"]) for c in before)
    assert steered and steered[-1].sequence == chunks[-1].sequence  # and it stays
