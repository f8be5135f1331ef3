"""Who may see and who may edit a song: pure rules, on unsaved objects, without a database."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, User

from webapp.songs.models import Song
from webapp.songs.selectors import song_can_edit, song_can_view

TOKEN = "the-songs-own-share-token"

VIEWERS = {
    "owner": User(pk=1, username="alice"),
    "other": User(pk=2, username="bob"),
    "admin": User(pk=3, username="admin", is_staff=True, is_superuser=True),
    "staff": User(pk=4, username="mo", is_staff=True),  # a moderator, say
    "anonymous": AnonymousUser(),
    "nobody": None,  # no user at all, as a websocket without the auth middleware would have
}


def a_song(visibility: str) -> Song:
    return Song(owner_id=1, visibility=visibility, share_token=TOKEN)


# Who may view (without a token / with the song's token / with another song's token).
VIEW_RULES = """
viewer      private         unlisted        public
owner       yes yes yes     yes yes yes     yes yes yes
admin       yes yes yes     yes yes yes     yes yes yes
staff       yes yes yes     yes yes yes     yes yes yes
other       no  no  no      no  yes no      yes yes yes
anonymous   no  no  no      no  yes no      yes yes yes
nobody      no  no  no      no  yes no      yes yes yes
"""


def view_cases():
    header, *rows = VIEW_RULES.strip().splitlines()
    visibilities = header.split()[1:]
    for row in rows:
        viewer, *answers = row.split()
        for index, answer in enumerate(answers):
            visibility = visibilities[index // 3]
            token = (None, TOKEN, "another-songs-token")[index % 3]
            token_name = ("no token", "its token", "another token")[index % 3]
            yield pytest.param(
                viewer, visibility, token, answer == "yes", id=f"{viewer}-{visibility}-{token_name}"
            )


@pytest.mark.parametrize(("viewer", "visibility", "token", "expected"), list(view_cases()))
def test_who_may_view_a_song(viewer, visibility, token, expected):
    assert song_can_view(a_song(visibility), VIEWERS[viewer], share_token=token) is expected


@pytest.mark.parametrize("visibility", ["private", "unlisted", "public"])
@pytest.mark.parametrize(
    ("viewer", "expected"),
    [
        ("owner", True),
        ("admin", True),
        # Staff see every song but edit none of other people's: moderators act through the
        # audited moderation actions (webapp.moderation.services), never a plain edit.
        ("staff", False),
        ("other", False),
        ("anonymous", False),
        ("nobody", False),
    ],
)
def test_only_the_owner_and_superusers_may_edit(viewer, visibility, expected):
    assert song_can_edit(a_song(visibility), VIEWERS[viewer]) is expected


def test_a_share_token_grants_viewing_never_editing():
    song = a_song("unlisted")

    assert song_can_view(song, VIEWERS["other"], share_token=TOKEN)
    assert not song_can_edit(song, VIEWERS["other"])


@pytest.mark.parametrize("token", ["", " " + TOKEN, TOKEN.upper(), TOKEN[:-1]])
def test_only_the_exact_share_token_opens_an_unlisted_song(token):
    assert not song_can_view(a_song("unlisted"), VIEWERS["other"], share_token=token)
