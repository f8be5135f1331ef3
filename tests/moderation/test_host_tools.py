"""A host's tools, live over the room websocket: mute (no proposing or voting for N minutes),
kick (the socket closes at once; no coming back for N minutes), slow mode and approval-only
ballots switched on the fly. They work for signed-in and signed-out participants alike, and
nobody else is affected."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from collab import services as room_services
from collab.models import Proposal, Room
from collab.protocol import CLOSE_KICKED
from tests.sockets import in_room
from webapp.moderation.models import AuditEntry


@pytest.fixture
async def a_room_with_people(sockets, a_public_room, alice, bob, carol):
    """alice hosts; bob and carol listen; alice has put an idea on the ballot."""
    host, _ = await in_room(sockets, a_public_room, alice)
    bobs, _ = await in_room(sockets, a_public_room, bob)
    carols, _ = await in_room(sockets, a_public_room, carol)
    await host.send_json({"type": "propose", "id": "p", "text": "add strings"})
    proposal = (await host.frame_of("ack"))["proposal"]
    return host, bobs, carols, proposal


async def answer(socket, frame: dict) -> dict:
    """Send a frame with an id and return the answer to it (ack or error)."""
    await socket.send_json({**frame, "id": "q"})
    while True:
        reply = await socket.frame()
        assert "closed" not in reply, reply
        if reply.get("id") == "q":
            return reply


async def test_a_muted_participant_may_listen_but_not_propose_or_vote(a_room_with_people):
    host, bobs, carols, proposal = a_room_with_people

    muted = await answer(host, {"type": "mute", "username": "bob", "minutes": 10})

    assert (muted["type"], muted["of"], muted["minutes"]) == ("ack", "mute", 10)
    notice = await bobs.frame_of("notice")
    assert (notice["code"], notice["until"]) == ("muted", muted["until"])
    refused_proposal = await answer(bobs, {"type": "propose", "text": "drums out"})
    refused_vote = await answer(bobs, {"type": "vote", "proposal_id": proposal["id"]})
    assert (refused_proposal["type"], refused_proposal["code"]) == ("error", "muted")
    assert (refused_vote["type"], refused_vote["code"]) == ("error", "muted")
    # Carol is not affected, and bob still hears the room.
    assert (await answer(carols, {"type": "vote", "proposal_id": proposal["id"]}))["of"] == "vote"
    assert (await bobs.frame_of("tally"))["tally"] == {str(proposal["id"]): 1}


async def test_unmuting_lets_them_take_part_again(a_room_with_people):
    host, bobs, _, proposal = a_room_with_people
    await answer(host, {"type": "mute", "username": "bob", "minutes": 10})

    assert (await answer(host, {"type": "unmute", "username": "bob"}))["of"] == "unmute"

    assert (await bobs.frame_of("notice"))["code"] == "muted"
    assert (await bobs.frame_of("notice"))["code"] == "unmuted"
    assert (await answer(bobs, {"type": "vote", "proposal_id": proposal["id"]}))["of"] == "vote"


async def test_a_signed_out_participant_is_muted_through_their_proposal(
    sockets, a_public_room, alice, bob
):
    host, _ = await in_room(sockets, a_public_room, alice)
    visitor, _ = await in_room(sockets, a_public_room, anonymous=True)
    other, _ = await in_room(sockets, a_public_room, anonymous=True)
    theirs = (await answer(visitor, {"type": "propose", "text": "scream"}))["proposal"]

    await answer(host, {"type": "mute", "proposal_id": theirs["id"], "minutes": 5})

    assert (await visitor.frame_of("notice"))["code"] == "muted"
    refused = await answer(visitor, {"type": "vote", "proposal_id": theirs["id"]})
    assert refused["code"] == "muted"
    # Another signed-out visitor is someone else.
    assert (await answer(other, {"type": "vote", "proposal_id": theirs["id"]}))["of"] == "vote"


async def test_a_kick_closes_only_that_participants_socket(a_room_with_people, sockets, bob):
    host, bobs, carols, proposal = a_room_with_people
    second_tab, _ = await in_room(sockets, await _room_of(proposal), bob)

    kicked = await answer(host, {"type": "kick", "username": "bob", "minutes": 15})

    assert kicked["of"] == "kick"
    for socket in (bobs, second_tab):  # every socket of bob's, and only those
        frames = await socket.frames_until_closed()
        error = next(f for f in frames if f.get("type") == "error")
        assert (error["code"], error["until"]) == ("kicked", kicked["until"])
        assert frames[-1] == {"closed": CLOSE_KICKED}
    assert not any("closed" in f for f in await carols.frames_for(0.3))
    assert (await answer(carols, {"type": "vote", "proposal_id": proposal["id"]}))["of"] == "vote"
    assert (await answer(host, {"type": "ping", "t0": 1.0}))["type"] == "pong"


async def test_a_kicked_participant_cannot_come_back_until_it_runs_out(
    a_room_with_people, sockets, bob
):
    host, bobs, _, proposal = a_room_with_people
    room = await _room_of(proposal)
    await answer(host, {"type": "kick", "username": "bob", "minutes": 15})
    await bobs.frames_until_closed()

    again, connected, _ = await sockets(f"/ws/rooms/{room.pk}/", bob)

    frames = await again.frames_until_closed()
    assert [f.get("code") for f in frames if f.get("type") == "error"] == ["kicked"]
    assert frames[-1] == {"closed": CLOSE_KICKED}
    # When the kick runs out, bob may come back (the clock moved 16 minutes on).
    restrictions = (await database_sync_to_async(Room.objects.get)(pk=room.pk)).restrictions
    (entry,) = restrictions.values()
    entry["kicked_until"] -= 16 * 60
    await database_sync_to_async(Room.objects.filter(pk=room.pk).update)(restrictions=restrictions)
    back, snapshot = await in_room(sockets, room, bob)
    assert snapshot["you"]["role"] == "participant"


async def test_a_signed_out_participant_is_kicked_through_their_proposal(
    sockets, a_public_room, alice
):
    from tests.sockets import anonymous_session

    host, _ = await in_room(sockets, a_public_room, alice)
    session = await database_sync_to_async(anonymous_session)()
    visitor, _ = await in_room(sockets, a_public_room, session=session)
    theirs = (await answer(visitor, {"type": "propose", "text": "scream"}))["proposal"]

    await answer(host, {"type": "kick", "proposal_id": theirs["id"]})

    assert (await visitor.frames_until_closed())[-1] == {"closed": CLOSE_KICKED}
    again, _, _ = await sockets(f"/ws/rooms/{a_public_room.pk}/", session=session)
    assert (await again.frames_until_closed())[-1] == {"closed": CLOSE_KICKED}
    # A fresh visitor is not them.
    await in_room(sockets, a_public_room, anonymous=True)


async def test_only_the_host_mutes_or_kicks_and_never_themselves(a_room_with_people):
    host, bobs, _, _ = a_room_with_people

    for frame in ({"type": "mute", "username": "carol"}, {"type": "kick", "username": "carol"}):
        assert (await answer(bobs, frame))["code"] == "forbidden"
    assert (await answer(host, {"type": "kick", "username": "alice"}))["type"] == "error"
    assert (await answer(host, {"type": "mute", "username": "nobody"}))["code"] == "not_found"
    assert (await answer(host, {"type": "mute"}))["type"] == "error"
    too_long = await answer(host, {"type": "mute", "username": "bob", "minutes": 100000})
    assert (too_long["code"], too_long["field"]) == ("invalid", "minutes")
    actions = await database_sync_to_async(
        lambda: list(AuditEntry.objects.values_list("action", flat=True))
    )()
    assert actions == []


async def test_host_actions_on_participants_are_in_the_audit_log(a_room_with_people):
    host, _, _, proposal = a_room_with_people

    await answer(host, {"type": "mute", "username": "bob", "minutes": 3, "reason": "spam"})
    await answer(host, {"type": "kick", "username": "carol", "minutes": 3})

    entries = await database_sync_to_async(
        lambda: list(
            AuditEntry.objects.order_by("id").values_list("action", "actor_label", "reason")
        )
    )()
    assert entries == [("room.mute", "alice", "spam"), ("room.kick", "alice", "")]


async def test_the_host_changes_slow_mode_live(a_room_with_people):
    host, bobs, carols, _ = a_room_with_people
    assert (await answer(bobs, {"type": "propose", "text": "first idea"}))["of"] == "propose"

    ack = await answer(host, {"type": "slow_mode", "seconds": 60})

    assert ack["seconds"] == 60
    assert (await carols.frame_of("state"))["room"]["slow_mode_s"] == 60
    refused = await answer(bobs, {"type": "propose", "text": "second idea"})
    assert refused["code"] == "slow_mode"
    await answer(host, {"type": "slow_mode", "seconds": 0})
    assert (await answer(bobs, {"type": "propose", "text": "second idea"}))["of"] == "propose"


async def test_the_host_switches_to_an_approval_only_ballot_and_back_live(a_room_with_people):
    host, bobs, carols, _ = a_room_with_people

    assert (await answer(host, {"type": "approval", "on": True}))["on"] is True
    assert (await carols.frame_of("state"))["room"]["mode"] == "audience"
    waiting = (await answer(bobs, {"type": "propose", "text": "gentle harp"}))["proposal"]
    assert waiting["status"] == "pending"
    assert (await host.frame_of("proposal"))["proposal"]["status"] == "pending"

    assert (await answer(host, {"type": "approval", "on": False}))["on"] is False
    straight = (await answer(bobs, {"type": "propose", "text": "big drums"}))["proposal"]
    assert straight["status"] == "approved"
    statuses = await database_sync_to_async(
        lambda: dict(Proposal.objects.values_list("text", "status"))
    )()
    assert (statuses["gentle harp"], statuses["big drums"]) == ("pending", "approved")


async def test_a_mute_survives_reconnecting(a_room_with_people, sockets, bob):
    host, bobs, _, proposal = a_room_with_people
    await answer(host, {"type": "mute", "username": "bob", "minutes": 10})
    await bobs.disconnect()

    again, _ = await in_room(sockets, await _room_of(proposal), bob)

    assert (await answer(again, {"type": "vote", "proposal_id": proposal["id"]}))["code"] == "muted"


def test_mutes_that_ran_out_are_pruned_when_the_room_changes_them(a_public_room, alice, bob, carol):
    from datetime import timedelta

    from django.utils import timezone

    earlier = timezone.now() - timedelta(hours=1)
    room_services.participant_mute(
        room=a_public_room, user=alice, key=f"user:{bob.pk}", minutes=5, now=earlier
    )

    room_services.participant_mute(
        room=a_public_room, user=alice, key=f"user:{carol.pk}", minutes=5
    )

    a_public_room.refresh_from_db()
    assert list(a_public_room.restrictions) == [f"user:{carol.pk}"]


async def _room_of(proposal: dict) -> Room:
    return await database_sync_to_async(
        lambda: Proposal.objects.select_related("room").get(pk=proposal["id"]).room
    )()


async def test_a_reloaded_host_still_sees_who_is_muted(sockets, a_public_room, alice, bob):
    host, first = await in_room(sockets, a_public_room, alice)
    bobs, _ = await in_room(sockets, a_public_room, bob)
    visitor, _ = await in_room(sockets, a_public_room, anonymous=True)
    theirs = (await answer(visitor, {"type": "propose", "text": "scream"}))["proposal"]
    bob_muted = await answer(host, {"type": "mute", "username": "bob", "minutes": 60})
    guest_muted = await answer(host, {"type": "mute", "proposal_id": theirs["id"], "minutes": 10})

    reloaded, snapshot = await in_room(sockets, a_public_room, alice)

    assert first["muted"] == []
    # Soonest to end first; the visitor by their idea on the ballot, never by their session.
    assert snapshot["muted"] == [
        {"username": None, "until": guest_muted["until"], "proposal_ids": [theirs["id"]]},
        {"username": "bob", "until": bob_muted["until"], "proposal_ids": []},
    ]
    _, bobs_view = await in_room(sockets, a_public_room, bob)
    assert "muted" not in bobs_view  # the host's business only


async def test_a_mute_that_ran_out_or_was_lifted_is_not_listed(sockets, a_public_room, alice, bob):
    host, _ = await in_room(sockets, a_public_room, alice)
    await answer(host, {"type": "mute", "username": "bob", "minutes": 10})
    await answer(host, {"type": "unmute", "username": "bob"})

    _, snapshot = await in_room(sockets, a_public_room, alice)

    assert snapshot["muted"] == []


async def test_the_host_mutes_and_kicks_the_author_of_an_idea_waiting_for_approval(
    sockets, make_room, alice, carol
):
    room = await database_sync_to_async(make_room)(alice, mode="audience", visibility="public")
    host, _ = await in_room(sockets, room, alice)
    carols, _ = await in_room(sockets, room, carol)
    visitor, _ = await in_room(sockets, room, anonymous=True)
    carols_idea = (await answer(carols, {"type": "propose", "text": "louder"}))["proposal"]
    guests_idea = (await answer(visitor, {"type": "propose", "text": "scream"}))["proposal"]
    assert (carols_idea["status"], guests_idea["status"]) == ("pending", "pending")

    muted = await answer(host, {"type": "mute", "proposal_id": carols_idea["id"], "minutes": 10})
    kicked = await answer(host, {"type": "kick", "proposal_id": guests_idea["id"], "minutes": 10})

    assert (muted["of"], kicked["of"]) == ("mute", "kick")
    assert (await carols.frame_of("notice"))["code"] == "muted"
    assert (await visitor.frames_until_closed())[-1] == {"closed": CLOSE_KICKED}
    _, snapshot = await in_room(sockets, room, alice)
    assert [(m["username"], m["proposal_ids"]) for m in snapshot["muted"]] == [
        ("carol", [carols_idea["id"]])
    ]
    assert [p["id"] for p in snapshot["pending"]] == [carols_idea["id"], guests_idea["id"]]
