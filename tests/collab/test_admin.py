"""Moderators can open every rooms page of the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from collab import services
from tests.collab.conftest import at


@pytest.mark.parametrize("model", ["room", "round", "proposal", "vote", "chunk"])
def test_every_rooms_list_opens_in_the_admin(client, admin, a_live_room, bob, model):
    proposal = services.proposal_create(room=a_live_room, user=bob, text="add strings", now=at(1))
    services.vote_cast(proposal=proposal, user=bob, now=at(2))
    services.chunk_record(
        room=a_live_room, sequence=0, start_s=0.0, duration_s=2.0, audio="rooms/x/0.ogg"
    )
    client.force_login(admin)

    assert client.get(reverse(f"admin:collab_{model}_changelist")).status_code == 200


def test_a_room_opens_in_the_admin_with_its_rounds(client, admin, a_live_room):
    client.force_login(admin)

    response = client.get(reverse("admin:collab_room_change", args=[a_live_room.pk]))

    assert response.status_code == 200
    assert b"Friday jam" in response.content
