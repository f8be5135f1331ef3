"""Moderation fixtures: mod (a moderator: staff, in the "moderators" group), carol, rooms of
alice's on the real clock, signed-in browsers and API clients, and websockets to rooms and songs
through the real ASGI application."""

from __future__ import annotations

import types

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client

from collab import services as room_services
from tests.sockets import Socket, anonymous_session, headers_of
from webapp.moderation.permissions import MODERATORS_GROUP


@pytest.fixture
def carol(make_user):
    return make_user("carol", email="carol@example.com")


@pytest.fixture
def mod(make_user):
    """A moderator as docs/moderation.md makes one: staff, and in the "moderators" group."""
    user = make_user("mod", email="mod@example.com", is_staff=True)
    user.groups.add(Group.objects.get(name=MODERATORS_GROUP))
    return user


@pytest.fixture
def browser_of():
    def make(user=None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def make_room(db):
    def make(host, **params):
        params.setdefault("title", "Friday jam")
        params.setdefault("anchor_prompt", "warm lo-fi beat with soft piano")
        return room_services.room_create(host=host, **params)

    return make


@pytest.fixture
def a_public_room(make_room, alice):
    return make_room(alice, visibility="public")


@pytest.fixture
def frozen_rate_limit_clock(monkeypatch):
    """Stop the clock the rate limiter reads mid-window, so that filling a window never
    straddles its edge (only the limiter's view of time is frozen)."""
    from webapp import ratelimit

    now = 1_800_000_000.25
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now))
    return now


@pytest.fixture
async def sockets(transactional_db):
    """Open websockets as someone (a user, a signed-out session, or a given session key);
    every socket is closed at the end of the test."""
    opened: list[Socket] = []

    async def open_socket(path: str, user=None, *, anonymous=False, session=None, query=""):
        if anonymous and session is None:
            session = await database_sync_to_async(anonymous_session)()
        headers = await database_sync_to_async(headers_of)(user, session)
        socket = Socket(path, headers, query)
        opened.append(socket)
        connected, code = await socket.connect()
        return socket, connected, code

    yield open_socket
    for socket in opened:
        if not socket.future.done():
            await socket.disconnect()
    # The consumers' worker threads keep connections; close them so the test database can go.
    await database_sync_to_async(connections.close_all)()
