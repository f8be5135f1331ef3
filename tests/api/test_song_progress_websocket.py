"""The song progress websocket (ws/songs/<id>/), through the real ASGI application.

These tests need `transactional_db`: the consumer reads the song in a worker thread of its own
(database_sync_to_async), on another connection, which cannot see rows that the test's
never-committed transaction holds.
"""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.db import connections
from django.test import Client

from webapp.asgi import application
from webapp.songs import services
from webapp.songs.models import Song

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture(autouse=True)
async def the_consumers_connection_is_closed(transactional_db):
    yield
    # The consumer's worker thread keeps its own connection (CONN_MAX_AGE); left open, it stops
    # PostgreSQL from dropping the test database at the end of the run.
    await database_sync_to_async(connections.close_all)()


class WebsocketCommunicator(ApplicationCommunicator):
    """channels.testing.WebsocketCommunicator, cut to what these tests use.

    Importing `channels.testing` imports daphne (for its live-server test case), which is not a
    dependency of this project; its websocket communicator is this thin layer over asgiref's.
    """

    def __init__(self, application, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        scope = {
            "type": "websocket",
            "path": path,
            "query_string": b"",
            "headers": headers,
            "subprotocols": [],
        }
        super().__init__(application, scope)

    async def connect(self, timeout: float = 1) -> tuple[bool, int | None]:
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, None

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if text_data is not None:
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def receive_json_from(self, timeout: float = 1):
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return json.loads(response["text"])

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def headers_of(user=None) -> list[tuple[bytes, bytes]]:
    """What a browser on the site sends: its origin and, when signed in, its session cookie."""
    headers = [(b"origin", b"http://testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


async def connect(song_id, user=None) -> tuple[WebsocketCommunicator, bool, object]:
    headers = await database_sync_to_async(headers_of)(user)
    communicator = WebsocketCommunicator(application, f"/ws/songs/{song_id}/", headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


@pytest.fixture
def a_queued_private_song(alice):
    # Made directly, so generation never runs and the song stays queued.
    return Song.objects.create(owner=alice, title="Waiting", prompt="p", duration_s=10, seed=1)


async def test_the_owner_gets_a_snapshot_on_connect(a_queued_private_song, alice):
    communicator, connected, _ = await connect(a_queued_private_song.pk, alice)

    assert connected
    assert await communicator.receive_json_from(timeout=5) == {
        "type": "progress",
        "status": "queued",
        "progress": 0.0,
    }
    await communicator.disconnect()


async def test_a_ready_song_says_so_on_connect(a_public_song):
    communicator, connected, _ = await connect(a_public_song.pk)

    assert connected
    snapshot = await communicator.receive_json_from(timeout=5)
    assert (snapshot["status"], snapshot["progress"]) == ("ready", 1.0)
    await communicator.disconnect()


async def test_listeners_hear_of_changes_as_they_happen(a_queued_private_song, alice):
    communicator, _, _ = await connect(a_queued_private_song.pk, alice)
    await communicator.receive_json_from(timeout=5)  # the snapshot

    await database_sync_to_async(services.song_mark_failed)(
        song_id=str(a_queued_private_song.pk), error="The engine fell over."
    )

    assert await communicator.receive_json_from(timeout=5) == {
        "type": "progress",
        "status": "failed",
        "progress": 0.0,
        "error": "The engine fell over.",
    }
    await communicator.disconnect()


@pytest.mark.parametrize("who", ["bob", "anonymous"])
async def test_someone_who_cannot_see_the_song_is_turned_away(a_queued_private_song, bob, who):
    communicator, connected, code = await connect(
        a_queued_private_song.pk, bob if who == "bob" else None
    )

    assert not connected
    assert code == 4404
    await communicator.disconnect()


async def test_an_unknown_song_is_turned_away_the_same_way(alice):
    communicator, connected, code = await connect(uuid.uuid4(), alice)

    assert (connected, code) == (False, 4404)
    await communicator.disconnect()


async def test_an_unlisted_song_is_turned_away_without_its_owner(an_unlisted_song, bob):
    # The socket takes no share token: listeners of a share link see a ready song anyway.
    communicator, connected, code = await connect(an_unlisted_song.pk, bob)

    assert (connected, code) == (False, 4404)
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        {"text_data": "{not json"},
        {"text_data": json.dumps({"type": "cancel"})},
        {"bytes_data": b"\x00\xff"},
    ],
    ids=["malformed json", "a command", "bytes"],
)
async def test_anything_sent_gets_an_error_frame_not_a_crash(a_public_song, frame):
    communicator, _, _ = await connect(a_public_song.pk)
    await communicator.receive_json_from(timeout=5)  # the snapshot

    await communicator.send_to(**frame)

    assert await communicator.receive_json_from(timeout=5) == {
        "type": "error",
        "code": "read_only",
        "message": "Nothing to send here.",
    }
    # Still open and listening afterwards.
    await communicator.send_to(text_data="again")
    assert (await communicator.receive_json_from(timeout=5))["type"] == "error"
    await communicator.disconnect()


async def test_a_foreign_origin_is_refused(a_public_song):
    communicator = WebsocketCommunicator(
        application, f"/ws/songs/{a_public_song.pk}/", [(b"origin", b"http://evil.example")]
    )

    connected, _ = await communicator.connect(timeout=5)

    assert not connected
    await communicator.disconnect()
