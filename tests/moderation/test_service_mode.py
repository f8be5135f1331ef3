"""A ban in service mode: real PostgreSQL and Redis, and two web processes. The banned account
has a room socket on one process and a song-progress socket on the other; the ban, made in this
(third) process, reaches both through Redis and closes them within a second.

As in test_sanctions.py, the time bound is the requirement itself, measured from the ban's call
to the close arriving at the client."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from django.db import connections
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from collab import services as room_services
from collab.protocol import CLOSE_SANCTIONED
from tests.integration.live import WebServer
from webapp.moderation import services
from webapp.songs.models import Song

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BAN_CLOSES_WITHIN_S = 1.0


@pytest.fixture
def two_web_processes(tmp_path):
    redis_url = os.environ["REDIS_URL"]
    servers = [WebServer(redis_url, tmp_path / f"web-{i}.log") for i in range(2)]
    yield servers
    for server in servers:
        server.stop()


def session_of(user) -> str:
    browser = Client()
    browser.force_login(user)
    return browser.cookies["sessionid"].value


async def open_socket(server: WebServer, path: str, session: str):
    return await connect(
        server.url(path, "ws"),
        origin=server.url(""),
        additional_headers={"Cookie": f"sessionid={session}"},
        proxy=None,
    )


async def until_closed(ws) -> tuple[list[dict], int, float]:
    """Every frame up to the close, the close code, and when it closed (monotonic)."""
    frames = []
    try:
        async for raw in ws:
            frames.append(json.loads(raw))
    except ConnectionClosed:  # a close code other than 1000 ends the iteration this way
        pass
    return frames, ws.close_code, time.monotonic()


def ban_in_a_thread(moderator, user) -> None:
    try:
        services.user_ban(moderator=moderator, user=user, reason="Spam bot.")
    finally:
        connections.close_all()  # this thread's connection, so the test database can go


def test_a_ban_closes_the_accounts_sockets_on_every_web_process_within_a_second(
    two_web_processes, alice, bob, admin
):
    room = room_services.room_create(
        host=alice, title="Two processes", anchor_prompt="calm piano", visibility="public"
    )
    song = Song.objects.create(owner=bob, title="Waiting", prompt="p", duration_s=10, seed=1)
    session = session_of(bob)
    first, second = two_web_processes

    async def scenario():
        room_socket = await open_socket(first, f"/ws/rooms/{room.pk}/", session)
        song_socket = await open_socket(second, f"/ws/songs/{song.pk}/", session)
        assert json.loads(await room_socket.recv())["type"] == "snapshot"
        assert json.loads(await song_socket.recv())["type"] == "progress"
        watching = [asyncio.create_task(until_closed(s)) for s in (room_socket, song_socket)]
        started = time.monotonic()
        await asyncio.to_thread(ban_in_a_thread, admin, bob)
        return started, await asyncio.wait_for(asyncio.gather(*watching), timeout=10)

    started, closes = asyncio.run(scenario())

    for frames, code, closed_at in closes:
        errors = [f for f in frames if f.get("type") == "error"]
        assert [e["code"] for e in errors] == ["banned"]
        assert code == CLOSE_SANCTIONED
        assert closed_at - started < BAN_CLOSES_WITHIN_S
