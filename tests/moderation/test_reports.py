"""Reports through `POST /api/v1/reports/`: signed-in people only, one open report per
reporter and target (a repeat updates it), nothing reported that the reporter cannot see (404, as
if it did not exist), and a rate limit."""

from __future__ import annotations

import pytest
from django.urls import reverse

from collab import services as room_services
from webapp.moderation import services
from webapp.moderation.models import Report

REPORTS = "/api/v1/reports/"


def report(api, target_type: str, target_id, reason: str = "spam", **extra):
    return api.post(
        REPORTS,
        {"target_type": target_type, "target_id": str(target_id), "reason": reason, **extra},
        format="json",
    )


def test_a_report_is_recorded_as_open(client_for, bob, a_public_song):
    answer = report(client_for(bob), "song", a_public_song.pk, "hate", details="Slurs at 0:40.")

    assert answer.status_code == 201
    body = answer.json()
    assert (body["target_type"], body["target_id"], body["reason"], body["status"]) == (
        "song",
        str(a_public_song.pk),
        "hate",
        "open",
    )
    stored = Report.objects.get(pk=body["id"])
    assert (stored.reporter, stored.details) == (bob, "Slurs at 0:40.")


def test_reporting_the_same_thing_again_updates_the_open_report(client_for, bob, a_public_song):
    api = client_for(bob)
    first = report(api, "song", a_public_song.pk, "spam")

    again = report(api, "song", a_public_song.pk, "copyright", details="It is my track.")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    (only,) = Report.objects.filter(reporter=bob)
    assert (only.reason, only.details) == ("copyright", "It is my track.")
    assert only.updated_at > only.created_at


def test_after_a_report_is_settled_a_new_one_can_be_made(client_for, bob, a_public_song, mod):
    api = client_for(bob)
    report(api, "song", a_public_song.pk)
    services.reports_dismiss(moderator=mod, target_type="song", target_id=a_public_song.pk)

    assert report(api, "song", a_public_song.pk).status_code == 201
    assert Report.objects.filter(reporter=bob).count() == 2


def test_different_reporters_each_have_their_report(client_for, bob, carol, a_public_song):
    report(client_for(bob), "song", a_public_song.pk)
    report(client_for(carol), "song", a_public_song.pk)

    assert Report.objects.filter(target_id=str(a_public_song.pk), status="open").count() == 2


def test_signed_out_visitors_cannot_report(anon, a_public_song):
    answer = report(anon, "song", a_public_song.pk)

    assert answer.status_code == 401
    assert not Report.objects.exists()


@pytest.fixture
def invisible_things(make_song, make_room, alice, carol):
    """Things bob cannot see, by kind."""
    private_room = make_room(alice, title="Alone", visibility="private")
    audience = make_room(alice, title="Stream", visibility="public", mode="audience")
    pending = room_services.proposal_create(room=audience, user=carol, text="something rude")
    carol.is_active = False
    carol.save(update_fields=["is_active"])
    return {
        "private song": ("song", make_song(alice, visibility="private").pk),
        "unlisted song without its token": ("song", make_song(alice, visibility="unlisted").pk),
        "private room": ("room", private_room.pk),
        "proposal waiting for the host": ("proposal", pending.pk),
        "deactivated account": ("user", carol.pk),
        "song that does not exist": ("song", "00000000-0000-0000-0000-000000000000"),
        "malformed id": ("song", "not-a-uuid"),
        "proposal of no room": ("proposal", 10**12),
    }


def test_things_the_reporter_cannot_see_are_not_found(client_for, bob, invisible_things, settings):
    settings.RATELIMIT_ENABLED = False  # refusals count too; here there are eight in a row
    api = client_for(bob)

    for what, (target_type, target_id) in invisible_things.items():
        answer = report(api, target_type, target_id)
        assert answer.status_code == 404, what
        assert answer.json()["error"]["code"] == "not_found", what
    assert not Report.objects.exists()


def test_an_unlisted_song_or_room_is_reportable_with_its_share_token(
    client_for, bob, an_unlisted_song, make_room, alice
):
    room = make_room(alice, title="Secret jam", visibility="unlisted")
    api = client_for(bob)
    song_token = an_unlisted_song.share_token

    assert report(api, "song", an_unlisted_song.pk, share_token=song_token).status_code == 201
    assert report(api, "room", room.pk, share_token="wrong").status_code == 404
    assert report(api, "room", room.pk, share_token=room.share_token).status_code == 201


def test_proposals_on_the_ballot_and_accounts_are_reportable(client_for, bob, carol, a_public_room):
    proposal = room_services.proposal_create(room=a_public_room, user=carol, text="loud noise")
    api = client_for(bob)

    assert report(api, "proposal", proposal.pk, "hate").status_code == 201
    assert report(api, "user", carol.pk, "impersonation").status_code == 201
    assert set(Report.objects.values_list("target_type", "target_id")) == {
        ("proposal", str(proposal.pk)),
        ("user", str(carol.pk)),
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"reason": "boring"}, "reason"),
        ({"target_type": "chunk"}, "target_type"),
        ({"details": "x" * 1001}, "details"),
        ({"target_id": "1" * 65}, "target_id"),
    ],
)
def test_a_malformed_report_is_refused_naming_the_field(
    client_for, bob, a_public_song, payload, field
):
    body = {"target_type": "song", "target_id": str(a_public_song.pk), "reason": "spam"}

    answer = client_for(bob).post(REPORTS, {**body, **payload}, format="json")

    assert answer.status_code == 400
    assert field in answer.json()["error"]["fields"]
    assert not Report.objects.exists()


def test_nobody_reports_their_own_account(client_for, bob):
    answer = report(client_for(bob), "user", bob.pk)

    assert answer.status_code == 400
    assert not Report.objects.exists()


def test_reports_are_rate_limited(client_for, bob, make_song, alice, frozen_rate_limit_clock):
    songs = [make_song(alice, visibility="public", title=f"Song {i}") for i in range(6)]
    api = client_for(bob)

    answers = [report(api, "song", song.pk).status_code for song in songs]

    assert answers == [201] * 5 + [429]
    refused = report(api, "song", songs[0].pk)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    assert Report.objects.count() == 5


def test_the_endpoint_is_in_the_openapi_schema(anon):
    schema = anon.get(reverse("api-schema"), HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/reports/"]["post"]
    assert set(operation["responses"]) >= {"200", "201"}
    request = schema["components"]["schemas"]["ReportCreateRequest"]
    assert set(request["required"]) == {"target_type", "target_id", "reason"}
    assert request["properties"]["details"]["maxLength"] == 1000
