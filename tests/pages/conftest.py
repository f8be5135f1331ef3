"""Page fixtures: people signed in to a browser (Django's test client), and rooms of alice's."""

from __future__ import annotations

import pytest
from django.test import Client

from collab import services as room_services


@pytest.fixture
def visitor() -> Client:
    return Client()


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
def an_unlisted_room(make_room, alice):
    return make_room(alice, title="Secret jam", visibility="unlisted")


@pytest.fixture
def a_private_room(make_room, alice):
    return make_room(alice, title="Alone", visibility="private")
