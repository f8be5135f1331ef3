"""The room websocket protocol (docs/protocol.md): frame checks as pure functions, then whole
conversations with ws/rooms/<id>/ through the real ASGI application.

The websocket tests need `transactional_db`: the consumer reads and writes in worker threads of
its own, on other connections, which cannot see rows that a never-committed test transaction
holds.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.utils import timezone

from collab import broadcast, protocol, services
from collab.models import Proposal, Room, Vote
from collab.protocol import ClientMessage, ProtocolError, TokenBucket, parse_frame
from tests.sockets import Socket, anonymous_session, headers_of
from webapp.feedback.models import FeedbackEvent

# --- The protocol as pure functions -----------------------------------------------------------


def test_a_well_formed_frame_parses_to_its_type_id_and_fields():
    message = parse_frame(json.dumps({"type": "vote", "id": "c1", "proposal_id": 7}))

    assert message == ClientMessage(type="vote", id="c1", fields={"proposal_id": 7})


def test_fields_the_protocol_does_not_know_are_ignored():
    message = parse_frame(json.dumps({"type": "ping", "t0": 1.5, "extra": [1, 2]}))

    assert dict(message.fields) == {"t0": 1.5}


def test_a_whole_number_sent_as_a_float_is_taken_as_whole():
    assert parse_frame('{"type": "slow_mode", "seconds": 30.0}').get("seconds") == 30


@pytest.mark.parametrize(
    ("text", "code", "field"),
    [
        ("{not json", protocol.BAD_JSON, None),
        ("[1, 2]", protocol.BAD_FRAME, None),
        ('{"id": 3}', protocol.BAD_FRAME, "type"),
        ('{"type": "dance"}', protocol.UNKNOWN_TYPE, "type"),
        ('{"type": "vote"}', protocol.INVALID, "proposal_id"),
        ('{"type": "vote", "proposal_id": "7"}', protocol.INVALID, "proposal_id"),
        ('{"type": "vote", "proposal_id": 0}', protocol.INVALID, "proposal_id"),
        ('{"type": "vote", "proposal_id": true}', protocol.INVALID, "proposal_id"),
        ('{"type": "ping", "t0": "now"}', protocol.INVALID, "t0"),
        ('{"type": "thumb", "sequence": 3, "value": "sideways"}', protocol.INVALID, "value"),
        ('{"type": "thumb", "sequence": -1, "value": "up"}', protocol.INVALID, "sequence"),
        ('{"type": "propose", "control": "faster"}', protocol.INVALID, "control"),
        ('{"type": "keep", "seconds": 1e999}', protocol.INVALID, "seconds"),
        ('{"type": "join", "id": {"a": 1}}', protocol.INVALID, "id"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None,
)
def test_a_malformed_frame_is_refused_with_a_code_and_the_field(text, code, field):
    with pytest.raises(ProtocolError) as refused:
        parse_frame(text)

    assert (refused.value.code, refused.value.field) == (code, field)


def test_the_client_id_comes_back_with_the_refusal_once_it_could_be_read():
    with pytest.raises(ProtocolError) as refused:
        parse_frame('{"type": "vote", "id": 42}')

    assert refused.value.id == 42


def test_a_frame_over_the_size_cap_is_refused_before_it_is_parsed():
    text = json.dumps({"type": "propose", "text": "x" * protocol.MAX_FRAME_BYTES})

    with pytest.raises(ProtocolError) as refused:
        parse_frame(text)

    assert refused.value.code == protocol.TOO_LARGE


def test_binary_frames_are_not_part_of_the_protocol():
    with pytest.raises(ProtocolError) as refused:
        parse_frame(None, b"\x00\xff")

    assert refused.value.code == protocol.BAD_FRAME


def test_every_host_control_is_a_message_type_of_its_own():
    assert {
        "pause",
        "resume",
        "end",
        "hard_cut",
        "skip",
        "veto",
        "approve",
        "reject",
        "slow_mode",
        "approval",
        "mute",
        "unmute",
        "kick",
    } == protocol.HOST_TYPES
    assert not protocol.HOST_TYPES & set(protocol.PARTICIPANT_MESSAGES)


def test_frames_answering_a_client_carry_its_id():
    assert protocol.error_frame("invalid", "No.", id="c9", field="text") == {
        "type": "error",
        "code": "invalid",
        "message": "No.",
        "field": "text",
        "id": "c9",
    }
    assert protocol.pong_frame(t0=1.0, t1=2.0, t2=2.5) == {
        "type": "pong",
        "t0": 1.0,
        "t1": 2.0,
        "t2": 2.5,
    }


def test_the_bucket_allows_a_burst_then_refills_at_its_rate():
    bucket = TokenBucket(capacity=3, refill_per_s=2.0)

    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped


# --- Throttling: at most one tally per room per quarter second, across processes ---------------


def test_a_dirty_tally_is_claimed_once_per_slot_and_then_waits_for_the_next(db):
    room_id = "11111111-1111-1111-1111-111111111111"
    broadcast.tally_changed(room_id=room_id)

    assert broadcast.claim_due(room_id=room_id, now=100.0) == ["tally"]
    broadcast.tally_changed(room_id=room_id)
    assert broadcast.claim_due(room_id=room_id, now=100.1) == []  # same slot: it waits
    assert broadcast.claim_due(room_id=room_id, now=100.26) == ["tally"]
    assert broadcast.claim_due(room_id=room_id, now=100.6) == []  # nothing changed since


# --- Conversations over the websocket -----------------------------------------------------------


# The shared websocket helper (tests/sockets.py), by the name these tests and others import.
RoomSocket = Socket


@pytest.fixture
async def sockets(transactional_db):
    """Open sockets to rooms as someone; every socket is closed at the end of the test."""
    opened: list[RoomSocket] = []

    async def open_socket(room, user=None, *, anonymous=False, share=None):
        session_key = await database_sync_to_async(anonymous_session)() if anonymous else None
        headers = await database_sync_to_async(headers_of)(user, session_key)
        socket = RoomSocket(f"/ws/rooms/{room.pk}/", headers, f"share={share}" if share else "")
        opened.append(socket)
        connected, code = await socket.connect()
        return socket, connected, code

    yield open_socket
    for socket in opened:
        if not socket.future.done():
            await socket.disconnect()
    # The consumers' worker threads keep connections (CONN_MAX_AGE); left open, they stop
    # PostgreSQL from dropping the test database at the end of the run.
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def a_public_room(make_room, alice):
    # On the real clock: rounds end in the future as the sockets see it.
    return make_room(alice, visibility="public", now=timezone.now())


@pytest.fixture
def an_audience_room_now(make_room, alice):
    return make_room(
        alice, title="Stream night", mode="audience", visibility="public", now=timezone.now()
    )


async def joined(sockets, room, user=None, **options) -> tuple[RoomSocket, dict]:
    """A socket to the room and its first frame, the snapshot."""
    socket, connected, code = await sockets(room, user, **options)
    assert connected, code
    snapshot = await socket.frame()
    assert snapshot["type"] == "snapshot"
    return socket, snapshot


async def test_two_listeners_each_get_a_snapshot_on_connect(sockets, a_public_room, alice, bob):
    host, host_view = await joined(sockets, a_public_room, alice)
    guest, guest_view = await joined(sockets, a_public_room, bob)

    for view in (host_view, guest_view):
        assert view["protocol"] == "1"
        assert view["room"]["id"] == str(a_public_room.pk)
        assert view["state"] == "live"
        assert view["round"]["number"] == 1
        assert view["round"]["ends_at"] > view["server_now"] > time.time() - 60
        assert view["ballot"] == [] and view["chunks"] == []
        assert view["blend"] == [
            {"key": "anchor", "kind": "anchor", "label": a_public_room.anchor_prompt, "weight": 1.0}
        ]
        assert view["presence"] >= 1
    assert (host_view["you"]["role"], guest_view["you"]["role"]) == ("host", "participant")
    assert "pending" in host_view and "pending" not in guest_view
    assert (await guest.frame_of("presence"))["count"] == 2


async def test_a_proposal_from_one_listener_appears_at_the_other(
    sockets, a_public_room, alice, bob
):
    host, _ = await joined(sockets, a_public_room, alice)
    guest, _ = await joined(sockets, a_public_room, bob)

    await guest.send_json({"type": "propose", "id": "p1", "text": "add strings"})

    ack = await guest.frame_of("ack")
    assert ack["id"] == "p1" and ack["of"] == "propose"
    assert ack["proposal"]["text"] == "add strings"
    heard = await host.frame_of("proposal")
    assert heard["proposal"] == {
        "id": ack["proposal"]["id"],
        "kind": "prompt",
        "text": "add strings",
        "control": {},
        "status": "approved",
        "author": "bob",
    }
    assert isinstance(heard["seq"], int)


async def test_a_vote_is_acknowledged_once_it_is_stored(sockets, a_public_room, alice, bob):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=alice, text="add strings"
    )
    guest, _ = await joined(sockets, a_public_room, bob)

    await guest.send_json({"type": "vote", "id": 5, "proposal_id": proposal.pk})

    assert await guest.frame_of("ack") == {
        "type": "ack",
        "of": "vote",
        "proposal_id": proposal.pk,
        "id": 5,
    }
    assert await database_sync_to_async(Vote.objects.filter(proposal=proposal).count)() == 1


async def test_a_burst_of_votes_reaches_listeners_as_few_coalesced_tallies(
    sockets, a_public_room, alice
):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=alice, text="add strings"
    )
    host, _ = await joined(sockets, a_public_room, alice)

    def eight_listeners_vote():
        for listener in range(8):
            services.vote_cast(proposal=proposal, anon_key=f"session-{listener}")

    await database_sync_to_async(eight_listeners_vote)()

    tallies = [f for f in await host.frames_for(1.2) if f["type"] == "tally"]
    assert 1 <= len(tallies) <= 2  # not one per vote
    assert tallies[-1]["tally"] == {str(proposal.pk): 8}
    assert (tallies[-1]["round"], tallies[-1]["votes"]) == (1, 8)


async def test_the_round_result_reaches_everyone(sockets, a_public_room, alice, bob):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=bob, text="add strings"
    )
    await database_sync_to_async(services.vote_cast)(proposal=proposal, user=bob)
    host, _ = await joined(sockets, a_public_room, alice)
    guest, _ = await joined(sockets, a_public_room, bob)

    await host.send_json({"type": "skip", "id": "next"})

    heard = {f["type"]: f for f in await host.frames_for(1.0)}  # the ack and the broadcast
    assert heard["ack"]["round"] == 1
    for socket in (host, guest):
        result = heard["round_result"] if socket is host else await socket.frame_of("round_result")
        assert result["round"] == 1 and result["tally"] == {str(proposal.pk): 1}
        assert {part["label"] for part in result["blend"]} == {
            "add strings",
            a_public_room.anchor_prompt,
        }
        assert result["next_round"]["number"] == 2
        assert result["next_round"]["ends_at"] > time.time()
        assert 0 < result["countdown"] <= a_public_room.round_length_s
        assert result["cut"] is False
        assert "add strings" in [text for text, _ in result["steering"]["prompts"]]


async def test_a_hard_cut_is_the_vote_alone_and_says_so(sockets, a_public_room, alice, bob):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=bob, text="add strings"
    )
    await database_sync_to_async(services.vote_cast)(proposal=proposal, user=bob)
    host, _ = await joined(sockets, a_public_room, alice)

    await host.send_json({"type": "hard_cut"})

    result = await host.frame_of("round_result")
    assert result["cut"] is True
    assert result["blend"] == [
        {"key": str(proposal.pk), "kind": "prompt", "label": "add strings", "weight": 1.0}
    ]


async def test_a_recorded_chunk_is_announced_by_its_url(sockets, a_public_room, alice, bob):
    host, _ = await joined(sockets, a_public_room, alice)
    guest, _ = await joined(sockets, a_public_room, bob)
    name = f"rooms/{a_public_room.pk}/00000000.ogg"

    await database_sync_to_async(services.chunk_record)(
        room=a_public_room, sequence=0, start_s=12.5, duration_s=2.0, audio=name
    )

    for socket in (host, guest):
        chunk = await socket.frame_of("chunk")
        assert {k: v for k, v in chunk.items() if k not in ("seq", "id")} == {
            "type": "chunk",
            "sequence": 0,
            "revision": 0,
            "start_s": 12.5,
            "duration_s": 2.0,
            "url": f"/rooms/{a_public_room.pk}/chunks/0.ogg",
        }
    _, late_view = await joined(sockets, a_public_room, bob)
    assert [c["sequence"] for c in late_view["chunks"]] == [0]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "bad_json"),
        (json.dumps({"type": "dance", "id": "d"}), "unknown_type"),
        (json.dumps({"type": "propose", "text": "la" * 3000}), "too_large"),
        (json.dumps({"type": "vote", "proposal_id": "seven"}), "invalid"),
    ],
    ids=["bad json", "unknown type", "oversized", "wrong field type"],
)
async def test_a_bad_frame_gets_an_error_and_nobody_is_disconnected(
    sockets, a_public_room, alice, bob, text, code
):
    host, _ = await joined(sockets, a_public_room, alice)
    guest, _ = await joined(sockets, a_public_room, bob)

    await guest.send_text(text)

    error = await guest.frame_of("error")
    assert error["code"] == code and error["message"]
    # Both still open, and still hearing the room.
    await guest.send_json({"type": "ping", "t0": 1.0})
    assert (await guest.frame_of("pong"))["t0"] == 1.0
    await host.send_json({"type": "propose", "text": "more bass"})
    assert (await guest.frame_of("proposal"))["proposal"]["text"] == "more bass"
    assert (await host.frame_of("proposal"))["proposal"]["text"] == "more bass"


async def test_a_refusal_of_the_services_is_an_error_frame_with_their_code(
    sockets, a_public_room, bob
):
    guest, _ = await joined(sockets, a_public_room, bob)

    await guest.send_json({"type": "propose", "id": "a", "text": "   "})
    await guest.send_json({"type": "vote", "id": "b", "proposal_id": 999999})

    empty = await guest.frame_of("error")
    missing = await guest.frame_of("error")
    assert (empty["id"], empty["code"], empty["field"]) == ("a", "invalid", "text")
    assert (missing["id"], missing["code"]) == ("b", "not_found")


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "pause"},
        {"type": "end"},
        {"type": "slow_mode", "seconds": 30},
        {"type": "skip"},
        {"type": "hard_cut"},
        {"type": "approve", "proposal_id": 1},
    ],
    ids=lambda frame: frame["type"],
)
async def test_host_controls_are_refused_for_everyone_else(sockets, a_public_room, bob, frame):
    guest, _ = await joined(sockets, a_public_room, bob)

    await guest.send_json({**frame, "id": "h"})

    error = await guest.frame_of("error")
    assert (error["code"], error["id"]) == ("forbidden", "h")
    room = await database_sync_to_async(Room.objects.get)(pk=a_public_room.pk)
    assert (room.status, room.slow_mode_s) == ("live", 0)


async def test_the_host_pauses_and_resumes_and_everyone_hears_the_state(
    sockets, a_public_room, alice, bob
):
    host, _ = await joined(sockets, a_public_room, alice)
    guest, _ = await joined(sockets, a_public_room, bob)

    await host.send_json({"type": "pause"})
    assert (await guest.frame_of("state"))["status"] == "paused"
    await guest.send_json({"type": "propose", "text": "faster"})
    assert (await guest.frame_of("error"))["code"] == "paused"

    await host.send_json({"type": "resume"})
    resumed = await guest.frame_of("state")
    assert resumed["status"] == "live" and resumed["round"]["ends_at"] > time.time()

    await host.send_json({"type": "slow_mode", "seconds": 30})
    assert (await guest.frame_of("state"))["room"]["slow_mode_s"] == 30


async def test_a_pending_proposal_reaches_only_the_host(
    sockets, an_audience_room_now, alice, bob, carol
):
    host, _ = await joined(sockets, an_audience_room_now, alice)
    guest, _ = await joined(sockets, an_audience_room_now, carol)
    author, _ = await joined(sockets, an_audience_room_now, bob)

    await author.send_json({"type": "propose", "text": "add strings"})

    queued = await host.frame_of("proposal")
    assert queued["proposal"]["status"] == "pending"
    # The listener's seq stays contiguous without seeing the proposal.
    assert await guest.frame_of("noop") == {"type": "noop", "seq": queued["seq"]}

    await host.send_json({"type": "approve", "proposal_id": queued["proposal"]["id"]})
    approved = await guest.frame_of("proposal")
    assert approved["proposal"]["status"] == "approved"


async def test_a_veto_takes_the_proposal_out_of_the_music_at_once(
    sockets, a_public_room, alice, bob
):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=bob, text="add strings"
    )
    await database_sync_to_async(services.vote_cast)(proposal=proposal, user=bob)
    await database_sync_to_async(services.round_close)(room=a_public_room)
    guest, view = await joined(sockets, a_public_room, bob)
    assert str(proposal.pk) in {part["key"] for part in view["blend"]}
    host, _ = await joined(sockets, a_public_room, alice)

    await host.send_json({"type": "veto", "proposal_id": proposal.pk})

    assert (await guest.frame_of("proposal"))["proposal"]["status"] == "rejected"
    steering = await guest.frame_of("steering")
    assert [part["key"] for part in steering["blend"]] == ["anchor"]


async def test_a_private_room_turns_a_stranger_away(sockets, make_room, alice, bob):
    room = await database_sync_to_async(make_room)(alice, visibility="private")

    _, stranger_connected, code = await sockets(room, bob)
    _, anonymous_connected, anonymous_code = await sockets(room)
    _, host_connected, _ = await sockets(room, alice)

    assert (stranger_connected, code) == (False, protocol.CLOSE_NOT_FOUND)
    assert (anonymous_connected, anonymous_code) == (False, protocol.CLOSE_NOT_FOUND)
    assert host_connected


async def test_an_unlisted_room_needs_its_share_token(sockets, make_room, alice, bob):
    room = await database_sync_to_async(make_room)(alice, visibility="unlisted")

    _, without, _ = await sockets(room, bob)
    _, wrong, _ = await sockets(room, bob, share="guess")
    _, with_token, _ = await sockets(room, bob, share=room.share_token)

    assert (without, wrong, with_token) == (False, False, True)


async def test_listeners_who_can_no_longer_see_the_room_are_let_go(
    sockets, a_public_room, alice, bob
):
    guest, _ = await joined(sockets, a_public_room, bob)

    await database_sync_to_async(services.room_update)(
        room=a_public_room, user=alice, visibility="private"
    )

    assert (await guest.frame_of("state"))["room"]["visibility"] == "private"
    assert await guest.frame() == {"closed": protocol.CLOSE_NOT_FOUND}


async def test_signed_out_listeners_vote_under_their_session(sockets, a_public_room, alice):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=alice, text="add strings"
    )
    anonymous, view = await joined(sockets, a_public_room, anonymous=True)
    cookieless, cookieless_view = await joined(sockets, a_public_room)

    await anonymous.send_json({"type": "vote", "proposal_id": proposal.pk})
    await cookieless.send_json({"type": "vote", "proposal_id": proposal.pk})

    assert view["you"]["role"] == "participant"
    assert (await anonymous.frame_of("ack"))["of"] == "vote"
    assert cookieless_view["you"]["role"] == "listener"
    assert (await cookieless.frame_of("error"))["code"] == "login_required"


async def test_seq_increases_by_one_per_broadcast(sockets, a_public_room, alice, bob):
    host, _ = await joined(sockets, a_public_room, alice)
    guest, first_view = await joined(sockets, a_public_room, bob)

    await host.send_json({"type": "propose", "text": "add strings"})
    proposal_id = (await host.frame_of("ack"))["proposal"]["id"]
    await guest.send_json({"type": "vote", "proposal_id": proposal_id})  # its ack has no seq
    await host.frame_of("tally")  # the vote is stored (batched) before the room pauses
    await host.send_json({"type": "pause"})
    await host.send_json({"type": "resume"})
    await database_sync_to_async(services.chunk_record)(
        room=a_public_room, sequence=0, start_s=0.0, duration_s=2.0, audio="rooms/a/0.ogg"
    )
    await host.send_json({"type": "skip"})

    frames = await guest.frames_for(1.5)
    seqs = [f["seq"] for f in frames if "seq" in f]
    kinds = {f["type"] for f in frames if "seq" in f}
    assert {"proposal", "tally", "state", "chunk", "round_result"} <= kinds
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert seqs[0] <= first_view["seq"] + 1  # nothing between the snapshot and the first frame
    _, later_view = await joined(sockets, a_public_room, bob)
    assert later_view["seq"] >= seqs[-1]


async def test_ping_is_answered_with_the_server_times(sockets, a_public_room, bob):
    guest, _ = await joined(sockets, a_public_room, bob)
    t0 = time.time()

    await guest.send_json({"type": "ping", "id": "clock", "t0": t0})

    pong = await guest.frame_of("pong")
    assert (pong["id"], pong["t0"]) == ("clock", t0)
    assert t0 <= pong["t1"] <= pong["t2"] <= time.time() + 0.01


async def test_a_snapshot_can_be_asked_for_again(sockets, a_public_room, bob):
    guest, _ = await joined(sockets, a_public_room, bob)

    await guest.send_json({"type": "snapshot", "id": "again"})

    again = await guest.frame_of("snapshot")
    assert again["id"] == "again" and again["room"]["id"] == str(a_public_room.pk)


async def test_a_connection_over_its_rate_is_told_once_and_kept_open(sockets, a_public_room, bob):
    guest, _ = await joined(sockets, a_public_room, bob)

    for n in range(protocol.BUCKET_CAPACITY + 10):
        await guest.send_json({"type": "ping", "t0": float(n)})

    frames = [f for f in await guest.frames_for(1.0) if f.get("type") in ("pong", "error")]
    errors = [f for f in frames if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "rate_limited"
    assert errors[0]["retry_after_s"] > 0
    assert protocol.BUCKET_CAPACITY <= len(frames) - 1 < protocol.BUCKET_CAPACITY + 10
    await asyncio.sleep(0.6)  # a token comes back
    await guest.send_json({"type": "ping", "t0": 99.0})
    assert (await guest.frame_of("pong"))["t0"] == 99.0


async def test_a_flood_closes_only_the_flooder(sockets, a_public_room, alice, bob, monkeypatch):
    monkeypatch.setattr(protocol, "FLOOD_CLOSE_AFTER", 30)
    host, _ = await joined(sockets, a_public_room, alice)
    flooder, _ = await joined(sockets, a_public_room, bob)

    for _ in range(protocol.BUCKET_CAPACITY + 40):
        await flooder.send_text("{not json")

    frames = await flooder.frames_for(1.0)
    assert frames[-1] == {"closed": protocol.CLOSE_FLOODING}  # and nothing after it
    assert [f["code"] for f in frames if f.get("type") == "error"].count("rate_limited") == 1
    await host.send_json({"type": "ping", "t0": 1.0})
    assert (await host.frame_of("pong"))["t0"] == 1.0


async def test_a_thumb_on_a_chunk_goes_into_the_feedback_table(sockets, a_public_room, bob):
    await database_sync_to_async(services.chunk_record)(
        room=a_public_room,
        sequence=3,
        start_s=6.0,
        duration_s=2.0,
        audio="rooms/a/3.ogg",
        provenance={"model_version": "chorus-lm-v1", "seed": 7},
    )
    guest, _ = await joined(sockets, a_public_room, bob)

    for _ in range(2):  # a retry with the same event id counts once
        await guest.send_json({"type": "thumb", "sequence": 3, "value": "up", "event_id": "e1"})
        assert (await guest.frame_of("ack"))["value"] == "up"
    await guest.send_json({"type": "thumb", "sequence": 4, "value": "down"})
    assert (await guest.frame_of("error"))["code"] == "not_found"

    events = await database_sync_to_async(list)(FeedbackEvent.objects.all())
    assert len(events) == 1
    event = events[0]
    assert (event.kind, event.target_type, event.value, event.actor) == (
        "thumb_up",
        "chunk",
        1.0,
        f"user:{bob.pk}",
    )
    assert (event.model_version, event.seed) == ("chorus-lm-v1", 7)
    assert event.conditioning["sequence"] == 3


async def test_keeping_the_last_stretch_answers_with_the_new_song(
    sockets, a_public_room, bob, write_chunk
):
    def five_chunks():
        for sequence in range(5):
            services.chunk_record(
                room=a_public_room,
                sequence=sequence,
                start_s=2.0 * sequence,
                duration_s=2.0,
                audio=write_chunk(a_public_room, sequence),
            )

    await database_sync_to_async(five_chunks)()
    guest, _ = await joined(sockets, a_public_room, bob)

    await guest.send_json({"type": "keep", "id": "k", "seconds": 10})

    done = await guest.frame_of("keep_done", timeout=10)
    assert done["id"] == "k" and done["url"] == f"/songs/{done['song_id']}/"
    assert done["duration_s"] == pytest.approx(10.0, abs=0.05)


async def test_proposals_are_never_shown_with_their_authors_session(sockets, a_public_room, alice):
    host, _ = await joined(sockets, a_public_room, alice)
    anonymous, _ = await joined(sockets, a_public_room, anonymous=True)

    await anonymous.send_json({"type": "propose", "text": "add strings"})

    heard = await host.frame_of("proposal")
    assert heard["proposal"]["author"] is None
    stored = await database_sync_to_async(Proposal.objects.get)(pk=heard["proposal"]["id"])
    assert stored.author_key.removeprefix("anon:") not in json.dumps(heard)


# --- Votes that cannot count, and floods of them: only the sender hears of it --------------------


@pytest.fixture
async def a_closed_ballot_and_a_strangers(make_room, a_public_room, alice, bob):
    """A proposal of round 1 (closed since), and a proposal on another room's ballot."""

    def make():
        old = services.proposal_create(room=a_public_room, user=alice, text="add strings")
        services.vote_cast(proposal=old, user=alice)  # voted for: it stays on round 1's ballot
        services.round_close(room=a_public_room)
        other = make_room(bob, title="Elsewhere", visibility="public", now=timezone.now())
        stranger = services.proposal_create(room=other, user=bob, text="add flute")
        return old, stranger

    return await database_sync_to_async(make)()


@pytest.mark.parametrize(("which", "code"), [(0, "round_closed"), (1, "not_found")])
async def test_a_vote_for_a_closed_round_or_another_rooms_proposal_is_refused_to_its_sender(
    sockets, a_public_room, alice, bob, a_closed_ballot_and_a_strangers, which, code
):
    host, _ = await joined(sockets, a_public_room, alice)
    guest, _ = await joined(sockets, a_public_room, bob)
    proposal = a_closed_ballot_and_a_strangers[which]

    await guest.send_json({"type": "vote", "id": "v", "proposal_id": proposal.pk})

    error = await guest.frame_of("error")
    assert (error["id"], error["code"]) == ("v", code) and error["message"]
    bobs = Vote.objects.filter(voter_key=f"user:{bob.pk}")
    assert not await database_sync_to_async(bobs.exists)()
    await host.send_json({"type": "propose", "text": "more bass"})
    assert (await guest.frame_of("proposal"))["proposal"]["text"] == "more bass"


async def test_a_flood_of_votes_is_limited_for_the_flooder_alone(
    sockets, a_public_room, alice, bob, carol
):
    proposal = await database_sync_to_async(services.proposal_create)(
        room=a_public_room, user=alice, text="add strings"
    )
    flooder, _ = await joined(sockets, a_public_room, bob)
    voter, _ = await joined(sockets, a_public_room, carol)

    for n in range(protocol.BUCKET_CAPACITY):
        await flooder.send_json({"type": "vote", "id": n, "proposal_id": proposal.pk})
    await voter.send_json({"type": "vote", "id": "mine", "proposal_id": proposal.pk})

    assert (await voter.frame_of("ack"))["id"] == "mine"
    answers = [f for f in await flooder.frames_for(1.5) if f.get("type") in ("ack", "error")]
    assert len(answers) == protocol.BUCKET_CAPACITY
    refused = [f for f in answers if f["type"] == "error"]
    assert refused and {f["code"] for f in refused} == {"rate_limited"}
    rows = await database_sync_to_async(list)(Vote.objects.values_list("voter_key", flat=True))
    assert sorted(rows) == sorted([f"user:{bob.pk}", f"user:{carol.pk}"])


async def test_a_binary_frame_gets_an_error_and_the_connection_stays_open(
    sockets, a_public_room, bob
):
    guest, _ = await joined(sockets, a_public_room, bob)

    await guest.send_input({"type": "websocket.receive", "bytes": b"\x00\xff"})

    assert (await guest.frame_of("error"))["code"] == "bad_frame"
    await guest.send_json({"type": "ping", "t0": 2.0})
    assert (await guest.frame_of("pong"))["t0"] == 2.0


async def test_a_process_hears_a_room_through_one_subscription_while_it_has_listeners(
    sockets, a_public_room, alice, bob
):
    from collab import consumers

    host, _ = await joined(sockets, a_public_room, alice)
    guest, _ = await joined(sockets, a_public_room, bob)

    # One relay (one channel in the room's group) hands broadcasts to both listeners.
    relay = consumers._relays._rooms[str(a_public_room.pk)]
    assert len(relay.listeners) == 2
    await host.send_json({"type": "propose", "text": "add strings"})
    assert (await guest.frame_of("proposal"))["proposal"]["text"] == "add strings"

    await host.disconnect()
    await guest.disconnect()
    await asyncio.sleep(0.1)
    assert str(a_public_room.pk) not in consumers._relays._rooms
