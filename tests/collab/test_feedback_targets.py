"""A room's chunks and its proposals' previews as targets of the feedback endpoint: recorded with
the provenance the server holds, and only for listeners who may hear that room."""

from __future__ import annotations

from collab import services
from collab.models import Audition
from webapp.feedback.models import FeedbackEvent

FEEDBACK = "/api/v1/feedback/"


def chunk_of(room, write_chunk, sequence=0):
    return services.chunk_record(
        room=room,
        sequence=sequence,
        start_s=3.0,
        duration_s=1.0,
        audio=write_chunk(room, sequence, 1.0),
        provenance={"model_version": "lm-small-v1", "seed": 11},
    )


def test_a_thumb_and_a_play_on_a_room_chunk_are_recorded_with_its_provenance(
    make_room, alice, bob, client_for, write_chunk
):
    room = make_room(alice, visibility="public")
    chunk = chunk_of(room, write_chunk)
    events = [
        {"kind": "play_start", "target_type": "chunk", "target_id": str(chunk.pk)},
        {"kind": "thumb_up", "target_type": "chunk", "target_id": str(chunk.pk)},
    ]

    response = client_for(bob).post(FEEDBACK, {"events": events}, format="json")

    assert response.status_code == 201, response.content
    rows = list(FeedbackEvent.objects.filter(target_type="chunk").order_by("id"))
    assert [(r.kind, r.value) for r in rows] == [("play_start", None), ("thumb_up", 1.0)]
    assert {(r.model_version, r.seed, r.actor) for r in rows} == {
        ("lm-small-v1", 11, f"user:{bob.pk}")
    }
    assert rows[0].conditioning["room"] == str(room.pk)
    assert rows[0].conditioning["sequence"] == 0


def test_a_private_rooms_chunks_take_no_feedback_from_strangers(
    make_room, alice, bob, client_for, write_chunk
):
    room = make_room(alice, visibility="private")
    chunk = chunk_of(room, write_chunk)
    event = {"kind": "thumb_up", "target_type": "chunk", "target_id": str(chunk.pk)}

    refused = client_for(bob).post(FEEDBACK, {"events": [event]}, format="json")
    hosts = client_for(alice).post(FEEDBACK, {"events": [event]}, format="json")

    assert refused.status_code == 400 and "no such chunk" in refused.json()["error"]["message"]
    assert hosts.status_code == 201
    assert FeedbackEvent.objects.filter(target_type="chunk").count() == 1


def test_an_unlisted_rooms_chunk_takes_feedback_with_the_share_token(
    make_room, alice, anon, write_chunk
):
    room = make_room(alice, visibility="unlisted")
    chunk = chunk_of(room, write_chunk)
    event = {"kind": "skip", "target_type": "chunk", "target_id": str(chunk.pk)}

    without = anon.post(FEEDBACK, {"events": [event]}, format="json")
    shared = {**event, "share_token": room.share_token}
    with_token = anon.post(FEEDBACK, {"events": [shared]}, format="json")

    assert without.status_code == 400 and with_token.status_code == 201


def test_a_play_of_a_preview_is_recorded_against_its_audition(
    make_room, alice, bob, carol, client_for, write_chunk
):
    room = make_room(alice, visibility="public")
    proposal = services.proposal_create(room=room, user=carol, text="add strings")
    audition = services.audition_request(proposal=proposal)
    services.audition_record(
        audition=audition,
        audio=write_chunk(room, 99, 5.0),
        duration_s=5.0,
        steering={"prompts": [["add strings", 1.0]]},
        provenance={"model_version": "lm-small-v1", "seed": 3},
    )
    event = {"kind": "play_start", "target_type": "audition", "target_id": str(audition.pk)}

    response = client_for(bob).post(FEEDBACK, {"events": [event]}, format="json")

    assert response.status_code == 201
    row = FeedbackEvent.objects.get(target_type="audition")
    assert (row.target_id, row.seed) == (str(audition.pk), 3)
    assert row.conditioning["proposal"] == proposal.pk
    assert Audition.objects.get().status == Audition.Status.READY


def test_unknown_chunks_and_previews_are_refused(alice, bob, client_for):
    for target_type, target_id in [("chunk", "999999"), ("audition", "nope"), ("chunk", "")]:
        event = {"kind": "play_start", "target_type": target_type, "target_id": target_id}
        response = client_for(bob).post(FEEDBACK, {"events": [event]}, format="json")
        assert response.status_code == 400
    assert not FeedbackEvent.objects.exists()
