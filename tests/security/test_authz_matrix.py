"""The authorization matrix: every HTTP endpoint and every websocket action, for every kind of
caller, with the outcome each one must get (docs/security.md).

Columns (the roles):
- anon   nobody signed in (a websocket still has a real anonymous session: rooms let those vote)
- user   alice, signed in: she owns the song the song rows ask for, and takes part in rooms
- other  bob, signed in, owns nothing the rows ask for
- host   holly, signed in, hosts the room the room rows ask for
- mod    mo, a moderator: staff, in the "moderators" group, not a superuser. He sees every song
         and room, but edits and hosts none of other people's: moderators act on those only
         through the audited moderation actions (the moderation-* rows), never the plain API
- admin  a superuser
- banned dan, signed in (session and API token) and then banned by a moderator. He owns the
         song and hosts the room of his rows: a ban must take away even what ownership gives.

Pages are asked for with the role's session cookie, the API with its token (as browsers and API
clients do), from an outside address (203.0.113.9: /metrics serves loopback callers only).
HTTP cells are status codes; `302L` is a redirect to a login page. The song rows ask about a
private song, the room rows about a private room; websocket rows use a public room (everyone may
listen), where a cell is the answer to the action: `ack`, `snapshot`, `pong`, `keep_done`,
`error:<code>`, or `closed:<code>` when the connection itself is refused.

A matrix test that fails because the code is wrong is a finding, not a typo: fix the code.
"""

from __future__ import annotations

import json
import re
import string
import time

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from collab import services as room_services
from collab.models import Audition
from tests.sockets import Socket, anonymous_session
from webapp.accounts.services import user_api_token
from webapp.moderation import services as moderation_services
from webapp.moderation.permissions import MODERATORS_GROUP, moderators_group_ensure

ROLES = ("anon", "user", "other", "host", "mod", "admin", "banned")
OUTSIDE = "203.0.113.9"

# --- HTTP -------------------------------------------------------------------------------------

HTTP = """
row                     anon  user  other host  mod   admin banned
home                    200   200   200   200   200   200   200
song-new                302L  200   200   200   200   200   302L
song-new-post           302L  302   302   302   302   302   302L
song-page               404   200   404   404   200   200   404
song-page-post          404   302   404   404   403   302   404
share-page              404   200   404   404   200   200   404
library                 302L  200   200   200   200   200   302L
profile                 200   200   200   200   200   200   200
room-list               200   200   200   200   200   200   200
room-new                302L  200   200   200   200   200   302L
room-new-post           302L  302   302   302   302   302   302L
room-page               404   404   404   200   200   200   404
room-overlay            404   404   404   200   200   200   404
room-chunk              404   404   404   200   200   200   404
room-audition           404   404   404   200   200   200   404
login                   200   200   200   200   200   200   200
logout                  302   302   302   302   302   302   302
signup                  200   200   200   200   200   200   200
password-change         302L  200   200   200   200   200   302L
password-reset          200   200   200   200   200   200   200
admin-index             302L  302L  302L  302L  200   200   302L
admin-songs             302L  302L  302L  302L  200   200   302L
moderation-queue        302L  403   403   403   200   200   302L
moderation-song         302L  403   403   403   200   200   302L
moderation-song-post    302L  403   403   403   302   302   302L
healthz                 200   200   200   200   200   200   200
readyz                  200   200   200   200   200   200   200
metrics                 403   403   403   403   403   403   403
api-signup              201   201   201   201   201   201   201
api-token               400   200   200   200   200   200   401
api-token-delete        401   204   204   204   204   204   401
api-me                  401   200   200   200   200   200   401
api-songs               401   200   200   200   200   200   401
api-songs-post          401   202   202   202   202   202   401
api-song                404   200   404   404   200   200   401
api-song-patch          404   200   404   404   404   200   401
api-song-delete         404   204   404   404   404   204   401
api-song-download       404   200   404   404   200   200   401
api-song-share-token    401   200   404   404   404   200   401
api-shared              404   200   404   404   200   200   401
api-feed                200   200   200   200   200   200   401
api-feedback            201   201   201   201   201   201   401
api-reports             401   201   201   201   201   201   401
api-schema              200   200   200   200   200   200   401
api-docs                200   200   200   200   200   200   401
api-redoc               200   200   200   200   200   200   401
"""

SONG_FORM = {"prompt": "warm lo-fi beat", "duration_s": "10", "visibility": "private"}
ROOM_FORM = {
    "title": "Late jam",
    "anchor_prompt": "slow dub techno",
    "visibility": "public",
    "mode": "friends",
    "round_length_s": "20",
    "who_may_propose": "everyone",
}
FEEDBACK = {"events": [{"kind": "play_start", "target_type": "song", "target_id": "{song_public}"}]}

# row -> (method, path, body). Paths name the row's things: {song} (the private song) and its
# {share} token, {song_public}, {room} (the private room), {proposal} (a proposal there with a
# preview), {owner} (the song owner's username).
REQUESTS = {
    "home": ("GET", "/", None),
    "song-new": ("GET", "/songs/new/", None),
    "song-new-post": ("POST", "/songs/new/", SONG_FORM),
    "song-page": ("GET", "/songs/{song}/", None),
    "song-page-post": ("POST", "/songs/{song}/", {"action": "update", "title": "Renamed"}),
    "share-page": ("GET", "/s/{share}/", None),
    "library": ("GET", "/library/", None),
    "profile": ("GET", "/u/{owner}/", None),
    "room-list": ("GET", "/rooms/", None),
    "room-new": ("GET", "/rooms/new/", None),
    "room-new-post": ("POST", "/rooms/new/", ROOM_FORM),
    "room-page": ("GET", "/rooms/{room}/", None),
    "room-overlay": ("GET", "/rooms/{room}/overlay/", None),
    "room-chunk": ("GET", "/rooms/{room}/chunks/0.ogg", None),
    "room-audition": ("GET", "/rooms/{room}/auditions/{proposal}.ogg", None),
    "login": ("GET", "/accounts/login/", None),
    "logout": ("POST", "/accounts/logout/", {}),
    "signup": ("GET", "/accounts/signup/", None),
    "password-change": ("GET", "/accounts/password_change/", None),
    "password-reset": ("GET", "/accounts/password_reset/", None),
    "admin-index": ("GET", "/admin/", None),
    "admin-songs": ("GET", "/admin/songs/song/", None),
    "moderation-queue": ("GET", "/moderation/", None),
    "moderation-song": ("GET", "/moderation/song/{song}/", None),
    "moderation-song-post": (
        "POST",
        "/moderation/song/{song}/",
        {"action": "hide", "reason": "a test of who may"},
    ),
    "healthz": ("GET", "/healthz", None),
    "readyz": ("GET", "/readyz", None),
    "metrics": ("GET", "/metrics", None),
    "api-signup": (
        "POST",
        "/api/v1/auth/signup/",
        {"username": "newcomer", "password": "another horse battery", "email": "n@example.com"},
    ),
    "api-token": ("POST", "/api/v1/auth/token/", "credentials"),
    "api-token-delete": ("DELETE", "/api/v1/auth/token/", None),
    "api-me": ("GET", "/api/v1/me/", None),
    "api-songs": ("GET", "/api/v1/songs/", None),
    "api-songs-post": ("POST", "/api/v1/songs/", {"prompt": "dub techno", "duration_s": 10}),
    "api-song": ("GET", "/api/v1/songs/{song}/", None),
    "api-song-patch": ("PATCH", "/api/v1/songs/{song}/", {"title": "Renamed"}),
    "api-song-delete": ("DELETE", "/api/v1/songs/{song}/", None),
    "api-song-download": ("GET", "/api/v1/songs/{song}/download/?format=wav", None),
    "api-song-share-token": ("POST", "/api/v1/songs/{song}/share-token/", None),
    "api-shared": ("GET", "/api/v1/shared/{share}/", None),
    "api-feed": ("GET", "/api/v1/feed/", None),
    "api-feedback": ("POST", "/api/v1/feedback/", FEEDBACK),
    "api-reports": (
        "POST",
        "/api/v1/reports/",
        {"target_type": "song", "target_id": "{song_public}", "reason": "spam"},
    ),
    "api-schema": ("GET", "/api/v1/schema/", None),
    "api-docs": ("GET", "/api/v1/docs/", None),
    "api-redoc": ("GET", "/api/v1/redoc/", None),
}
PASSWORD = "correct horse battery"


def read_table(table: str, names: dict) -> list:
    header, *rows = table.strip().splitlines()
    assert tuple(header.split()[1:]) == ROLES, "the columns are the roles, in order"
    cases = []
    for line in rows:
        row, *cells = line.split()
        assert row in names, f"{row} has no request"
        for role, cell in zip(ROLES, cells, strict=True):
            cases.append(pytest.param(row, role, cell, id=f"{row}/{role}"))
    return cases


# --- The cast and their things ------------------------------------------------------------------


@pytest.fixture
def cast(django_user_model, make_user, admin):
    """The people of the columns, by role (anon is None). dan is banned by the last step of
    `world`, once his session and token exist."""
    people = {
        "anon": None,
        "user": make_user("alice", email="alice@example.com"),
        "other": make_user("bob", email="bob@example.com"),
        "host": make_user("holly", email="holly@example.com"),
        "mod": make_user("mo", email="mo@example.com", is_staff=True),
        "admin": admin,
        "banned": make_user("dan", email="dan@example.com"),
    }
    moderators_group_ensure()  # as every `migrate` does (a flushed test database has none)
    people["mod"].groups.add(Group.objects.get(name=MODERATORS_GROUP))
    return people


def ban(cast) -> None:
    moderation_services.user_ban(moderator=cast["admin"], user=cast["banned"], reason="spam")


@pytest.fixture
def world(cast, make_song, make_room, write_chunk):
    """The things a row names, owned by alice and hosted by holly, or, for the banned column,
    owned and hosted by dan. Returns a function of the role and the names the row uses; only
    those are made (a song is generated, which is the slow part)."""

    def build(role: str, names: set[str]) -> dict:
        owner = cast["banned"] if role == "banned" else cast["user"]
        host = cast["banned"] if role == "banned" else cast["host"]
        things = {"owner": owner.username}
        if names & {"song", "share"}:
            song = make_song(owner, visibility="private", title="Private tune")
            things.update(song=song.pk, share=song.share_token)
        if "song_public" in names:
            things["song_public"] = make_song(owner, visibility="public", title="Public tune").pk
        if names & {"room", "proposal"}:
            room = make_room(host, visibility="private", now=timezone.now())
            room_services.chunk_record(
                room=room, sequence=0, start_s=0.0, duration_s=1.0, audio=write_chunk(room, 0, 1.0)
            )
            proposal = room_services.proposal_create(room=room, user=host, text="add strings")
            Audition.objects.create(
                room=room,
                proposal=proposal,
                status=Audition.Status.READY,
                audio=write_chunk(room, 99, 1.0),
                duration_s=1.0,
            )
            things.update(room=room.pk, proposal=proposal.pk)
        return things

    return build


def names_in(*values) -> set[str]:
    """The {names} a request's path and body use."""
    found = set()
    for value in values:
        if isinstance(value, dict):
            found |= names_in(*value.values())
        elif isinstance(value, list):
            found |= names_in(*value)
        elif isinstance(value, str):
            found |= {name for _, name, _, _ in string.Formatter().parse(value) if name}
    return found


def fill(value, things: dict):
    if isinstance(value, str):
        return value.format(**things)
    if isinstance(value, dict):
        return {key: fill(item, things) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, things) for item in value]
    return value


def http_request(role: str, person, method: str, path: str, body):
    """The request as the role makes it: pages with its session, the API with its token."""
    api = path.startswith("/api/")
    if api:
        client = APIClient(REMOTE_ADDR=OUTSIDE)
        if person is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {user_api_token(user=person)}")
    else:
        client = Client(REMOTE_ADDR=OUTSIDE)
        if person is not None:
            client.force_login(person)
    if body == "credentials":  # each caller asks for a token with its own password
        body = {"username": getattr(person, "username", "nobody"), "password": PASSWORD}
    call = getattr(client, method.lower())
    if api and body is not None:
        return lambda: call(path, body, format="json")
    return lambda: call(path, body) if body is not None else call(path)


@pytest.mark.parametrize(("row", "role", "expected"), read_table(HTTP, REQUESTS))
def test_http(row, role, expected, cast, world, media, settings):
    settings.RATELIMIT_ENABLED = False  # each cell is one request; limits have their own tests
    method, path, body = REQUESTS[row]
    things = world(role, names_in(path, body))
    send = http_request(role, cast[role], method, fill(path, things), fill(body, things))
    if role == "banned":
        ban(cast)  # after he signed in and got his token: a ban must reach both

    response = send()

    if expected == "302L":
        assert response.status_code == 302, (response.status_code, response.content[:300])
        assert "/login/" in response["Location"], response["Location"]
    else:
        assert response.status_code == int(expected), response.content[:300]


def test_every_route_has_a_row():
    """A new URL pattern must be added to the matrix (or it is untested for authorization)."""

    def names(patterns, prefix=""):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if entry.namespace == "admin":
                    yield "admin"
                    continue
                yield from names(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern)

    routes = set(names(get_resolver().url_patterns))
    asked = {REQUESTS[row][1].split("?")[0] for row in REQUESTS}
    unasked = sorted(route for route in routes if not any(covers(route, path) for path in asked))

    # Django's own account pages beyond these (reset confirm and done pages) need a token that
    # a mail carries; they are Django's, and tested there.
    assert [r for r in unasked if not r.startswith("accounts/")] == []


def covers(route: str, path: str) -> bool:
    """Whether the concrete path of a row is an instance of this URL route."""
    if route == "admin":
        return path.startswith("/admin/")
    if "^" in route:  # the API's catch-all for unknown paths (a JSON 404)
        return True
    pattern = re.sub(r"<[^>]+>", "[^/]+", re.escape(route).replace(r"\<", "<").replace(r"\>", ">"))
    template = re.sub(r"\{\w+\}", "x", path.lstrip("/"))
    return re.fullmatch(pattern, template) is not None


# --- Websockets -----------------------------------------------------------------------------------

WEBSOCKET = """
row              anon    user    other   host    mod     admin   banned
connect-private  4404    4404    4404    open    open    open    4404
join             snap    snap    snap    snap    snap    snap    4403
snapshot         snap    snap    snap    snap    snap    snap    4403
ping             pong    pong    pong    pong    pong    pong    4403
propose          ack     ack     ack     ack     ack     ack     4403
vote             ack     ack     ack     ack     ack     ack     4403
vote-elsewhere   nf      nf      nf      nf      nf      nf      4403
thumb            ack     ack     ack     ack     ack     ack     4403
keep             login   kept    kept    kept    kept    kept    4403
pause            forb    forb    forb    ack     forb    ack     4403
resume           forb    forb    forb    ack     forb    ack     4403
end              forb    forb    forb    ack     forb    ack     4403
hard_cut         forb    forb    forb    ack     forb    ack     4403
skip             forb    forb    forb    ack     forb    ack     4403
veto             forb    forb    forb    ack     forb    ack     4403
approve          forb    forb    forb    ack     forb    ack     4403
reject           forb    forb    forb    ack     forb    ack     4403
slow_mode        forb    forb    forb    ack     forb    ack     4403
approval         forb    forb    forb    ack     forb    ack     4403
mute             forb    forb    forb    ack     forb    ack     4403
unmute           forb    forb    forb    ack     forb    ack     4403
kick             forb    forb    forb    ack     forb    ack     4403
song-progress    4404    prog    4404    4404    prog    prog    4404
song-send        4404    ro      4404    4404    ro      ro      4404
"""
# The cells' shorthand, and what each means.
OUTCOMES = {
    "open": "open",  # the connection is accepted
    "4403": "closed:4403",  # refused: the account is banned (an `error` `banned` frame first)
    # refused: no such room or song, or not one this caller may see (a banned account is no
    # one: its own private room and song are refused with this, before the ban is looked at)
    "4404": "closed:4404",
    "snap": "snapshot",
    "pong": "pong",
    "ack": "ack",
    "kept": "keep_done",
    "prog": "progress",  # the song socket's first frame
    "forb": "error:forbidden",
    "login": "error:login_required",
    "nf": "error:not_found",
    "ro": "error:read_only",
}

# row -> the frame the role sends once connected to a public room, with `{open}` (a proposal on
# its ballot, by bob), `{pending}` (one waiting for approval), `{elsewhere}` (a proposal of
# another room); None for rows about connecting.
ACTIONS = {
    "connect-private": None,
    "join": {"type": "join"},
    "snapshot": {"type": "snapshot"},
    "ping": {"type": "ping", "t0": 1.0},
    "propose": {"type": "propose", "text": "more cowbell"},
    "vote": {"type": "vote", "proposal_id": "{open}"},
    "vote-elsewhere": {"type": "vote", "proposal_id": "{elsewhere}"},
    "thumb": {"type": "thumb", "sequence": 0, "value": "up"},
    "keep": {"type": "keep", "seconds": 10},
    "pause": {"type": "pause"},
    "resume": {"type": "resume"},
    "end": {"type": "end"},
    "hard_cut": {"type": "hard_cut"},
    "skip": {"type": "skip"},
    "veto": {"type": "veto", "proposal_id": "{open}"},
    "approve": {"type": "approve", "proposal_id": "{pending}"},
    "reject": {"type": "reject", "proposal_id": "{pending}"},
    "slow_mode": {"type": "slow_mode", "seconds": 5},
    "approval": {"type": "approval", "on": True},
    "mute": {"type": "mute", "proposal_id": "{open}", "minutes": 5},
    "unmute": {"type": "unmute", "proposal_id": "{open}"},
    "kick": {"type": "kick", "proposal_id": "{open}", "minutes": 5},
    "song-progress": None,
    "song-send": {"type": "hello"},
}


def room_stage(cast, role: str, row: str, write_chunk, make_room) -> dict:
    """A public room (private for connect-private) in the state the row's action needs, and
    the ids its frame names."""
    host = cast["banned"] if role == "banned" else cast["host"]
    visibility = "private" if row == "connect-private" else "public"
    room = make_room(host, visibility=visibility, now=timezone.now())
    for sequence in range(11 if row == "keep" else 1):  # keeping takes 10 s at least
        room_services.chunk_record(
            room=room,
            sequence=sequence,
            start_s=float(sequence),
            duration_s=1.0,
            audio=write_chunk(room, sequence, 1.0),
        )
    proposal = room_services.proposal_create(room=room, user=cast["other"], text="add strings")
    room_services.vote_cast(proposal=proposal, user=cast["other"])
    if row == "resume":
        room_services.room_pause(room=room, user=host)
    pending = None
    if row in ("approve", "reject"):
        room_services.room_update(room=room, user=host, mode="audience")
        pending = room_services.proposal_create(room=room, user=cast["user"], text="add choir")
    elsewhere_room = make_room(cast["admin"], visibility="public", now=timezone.now())
    elsewhere = room_services.proposal_create(room=elsewhere_room, user=cast["admin"], text="x")
    if row == "unmute":
        room_services.participant_mute(
            room=room,
            user=host,
            key=room_services.participant_resolve(room=room, proposal_id=proposal.pk),
            minutes=5,
            reason="",
        )
    return {
        "room": room,
        "open": proposal.pk,
        "pending": pending.pk if pending else 0,
        "elsewhere": elsewhere.pk,
    }


def session_headers(person) -> list[tuple[bytes, bytes]]:
    """A browser of the site with this person's session (an anonymous one for nobody)."""
    client = Client()
    if person is None:
        session_key = anonymous_session()
    else:
        client.force_login(person)
        session_key = client.cookies["sessionid"].value
    return [(b"origin", b"http://testserver"), (b"cookie", f"sessionid={session_key}".encode())]


async def first_answer(socket: Socket, frame_id: str) -> str:
    """The outcome of the frame sent with this id: its answer's type (or error code)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = await socket.frame(timeout=max(0.0, deadline - time.monotonic()))
        if "closed" in frame:
            return f"closed:{frame['closed']}"
        if frame.get("id") == frame_id or (frame.get("type") == "error" and "id" not in frame):
            return f"error:{frame['code']}" if frame["type"] == "error" else frame["type"]
    raise AssertionError("no answer")


async def connect(path: str, headers) -> tuple[Socket, str]:
    """Open a socket: ("open", first frame taken) or the close code. A refused sanctioned
    account is told why in an error frame before the close: that counts as closed."""
    socket = Socket(path, headers)
    accepted, code = await socket.connect()
    if not accepted:
        return socket, f"closed:{code}"
    first = await socket.frame()
    if "closed" in first:
        return socket, f"closed:{first['closed']}"
    if first.get("type") == "error":
        closing = await socket.frame()
        assert "closed" in closing, closing
        return socket, f"closed:{closing['closed']}"
    socket.first = first
    return socket, "open"


@pytest.mark.parametrize(("row", "role", "expected"), read_table(WEBSOCKET, ACTIONS))
async def test_websocket(
    transactional_db, row, role, expected, cast, make_room, make_song, write_chunk, settings
):
    # transactional_db: the consumers work in threads of their own, on other connections,
    # which see only committed rows.
    settings.RATELIMIT_ENABLED = False
    person = cast[role]

    def stage():
        if row.startswith("song-"):
            owner = cast["banned"] if role == "banned" else cast["user"]
            song = make_song(owner, visibility="private")
            return f"/ws/songs/{song.pk}/", {}
        things = room_stage(cast, role, row, write_chunk, make_room)
        return f"/ws/rooms/{things['room'].pk}/", things

    path, things = await database_sync_to_async(stage)()
    headers = await database_sync_to_async(session_headers)(person)
    if role == "banned":
        await database_sync_to_async(ban)(cast)
    try:
        socket, opened = await connect(path, headers)
        frame = ACTIONS[row]
        if opened != "open" or frame is None:
            outcome = opened
            if row == "song-progress" and opened == "open":
                outcome = socket.first["type"]
        else:
            message = {**fill(frame, {k: v for k, v in things.items() if k != "room"}), "id": "a"}
            for key in ("proposal_id",):
                if isinstance(message.get(key), str):
                    message[key] = int(message[key])
            await socket.send_input({"type": "websocket.receive", "text": json.dumps(message)})
            outcome = await first_answer(socket, "a")
        assert outcome == OUTCOMES[expected]
    finally:
        if not socket.future.done():
            await socket.disconnect()
        await database_sync_to_async(connections.close_all)()


def test_every_websocket_action_has_a_row():
    """A new message type of the room protocol must be added to the matrix."""
    from collab import protocol
    from webapp.routing import websocket_urlpatterns

    rows = {line.split()[0] for line in WEBSOCKET.strip().splitlines()[1:]}

    assert set(protocol.MESSAGES) <= rows
    assert {str(route.pattern) for route in websocket_urlpatterns} == {
        "ws/rooms/<uuid:room_id>/",  # every row but song-*
        "ws/songs/<uuid:song_id>/",  # song-progress, song-send
    }
