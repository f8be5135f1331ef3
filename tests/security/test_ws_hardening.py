"""The websockets' outer defences (docs/security.md): who may open one (the page's origin, the
session), and frames the protocol must refuse without breaking (the size cap, nesting, numbers
too large for a float). What the room does with well-formed frames is tests/collab's; the fuzz
test (test_ws_fuzz.py) throws everything else at it.
"""

from __future__ import annotations

import json

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.contrib.sessions.backends.db import SessionStore

from collab import protocol, services
from collab.protocol import ProtocolError, parse_frame
from collab.steering_rules import NudgeError, clean_nudge
from tests.sockets import Socket, headers_of
from webapp.asgi import application

# --- Origin --------------------------------------------------------------------------------------


async def open_with_headers(path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    """The server's first answer to a websocket handshake with these headers."""
    communicator = ApplicationCommunicator(
        application,
        {"type": "websocket", "path": path, "query_string": b"", "headers": headers},
    )
    await communicator.send_input({"type": "websocket.connect"})
    answer = await communicator.receive_output(5)
    if answer["type"] == "websocket.accept":
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(5)
    return answer


@pytest.mark.parametrize(
    "origin",
    [b"http://evil.example", b"null", b"http://testserver.evil.example", None],
    ids=["another site", "a sandboxed frame", "a look-alike host", "no origin"],
)
async def test_a_room_socket_opened_from_another_origin_is_refused(
    transactional_db, a_public_room, origin
):
    headers = [(b"origin", origin)] if origin is not None else []

    answer = await open_with_headers(f"/ws/rooms/{a_public_room.pk}/", headers)

    assert answer["type"] == "websocket.close"


async def test_the_sites_own_origin_is_let_in(transactional_db, a_public_room):
    answer = await open_with_headers(
        f"/ws/rooms/{a_public_room.pk}/", [(b"origin", b"http://testserver")]
    )

    assert answer["type"] == "websocket.accept"


# --- Session --------------------------------------------------------------------------------------


async def test_a_made_up_session_cookie_makes_nobody_a_participant(
    transactional_db, a_public_room, alice
):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=alice, text="add strings"
    )
    socket = Socket(
        f"/ws/rooms/{a_public_room.pk}/",
        [(b"origin", b"http://testserver"), (b"cookie", b"sessionid=made-up-by-a-script")],
    )
    connected, _ = await socket.connect()
    assert connected

    snapshot = await socket.frame()
    await socket.send_json({"type": "vote", "id": "v", "proposal_id": proposal.pk})

    assert snapshot["you"]["role"] == "listener"
    error = await socket.frame_of("error")
    assert (error["id"], error["code"]) == ("v", "login_required")
    await socket.disconnect()


async def test_a_signed_out_session_no_longer_speaks_for_its_user(
    transactional_db, a_public_room, bob
):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=bob, text="add strings"
    )
    headers = await database_sync_to_async(headers_of)(bob)
    session_key = dict(headers)[b"cookie"].decode().split("=", 1)[1]
    await database_sync_to_async(SessionStore(session_key).delete)()  # bob signed out

    socket = Socket(f"/ws/rooms/{a_public_room.pk}/", headers)
    connected, _ = await socket.connect()
    assert connected
    snapshot = await socket.frame()
    await socket.send_json({"type": "vote", "id": "v", "proposal_id": proposal.pk})

    assert snapshot["you"]["role"] == "listener"
    assert (await socket.frame_of("error"))["code"] == "login_required"
    await socket.disconnect()


# --- Frames the protocol refuses: regressions the fuzz test found -------------------------------


def test_a_frame_nested_a_thousand_deep_is_bad_json_not_a_crash():
    # Under the 4 KB cap, yet past Python's recursion limit: json.loads raised RecursionError,
    # which is no ValueError, and the consumer died with it.
    with pytest.raises(ProtocolError) as refused:
        parse_frame("[" * 2000 + "]" * 2000)

    assert refused.value.code == protocol.BAD_JSON


def test_a_number_too_large_for_a_float_is_an_invalid_field_not_a_crash():
    # 4,000 digits fit under the size cap; math.isfinite() of such an int raised OverflowError.
    with pytest.raises(ProtocolError) as refused:
        parse_frame('{"type": "ping", "t0": ' + "9" * 4000 + "}")

    assert (refused.value.code, refused.value.field) == (protocol.INVALID, "t0")


def test_a_tempo_too_large_for_a_float_is_a_nudge_error_not_a_crash():
    # float() of such an int raised OverflowError, which the services did not expect.
    with pytest.raises(NudgeError):
        clean_nudge({"bpm": 10**400})


def test_a_frame_one_byte_over_the_cap_is_refused_and_one_at_it_is_read():
    def ping_of(size: int) -> str:  # a field the protocol does not know pads it out
        padding = size - len(json.dumps({"type": "ping", "t0": 1.0, "pad": ""}))
        return json.dumps({"type": "ping", "t0": 1.0, "pad": "x" * padding})

    assert len(ping_of(protocol.MAX_FRAME_BYTES).encode()) == protocol.MAX_FRAME_BYTES
    with pytest.raises(ProtocolError) as refused:
        parse_frame(ping_of(protocol.MAX_FRAME_BYTES + 1))

    assert refused.value.code == protocol.TOO_LARGE
    assert parse_frame(ping_of(protocol.MAX_FRAME_BYTES)).get("t0") == 1.0


def test_the_cap_counts_bytes_not_characters():
    # 1,100 four-byte characters: 1,100 characters, 4,400 bytes on the wire.
    with pytest.raises(ProtocolError) as refused:
        parse_frame(json.dumps({"type": "propose", "text": "🎵" * 1100}, ensure_ascii=False))

    assert refused.value.code == protocol.TOO_LARGE
