"""Accounts and browser pages: sign-up, tokens, login, passwords, profiles, song and share pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

from webapp.songs.models import Song

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "correct horse battery"  # the fixtures' password


@pytest.fixture
def browser() -> Client:
    return Client()


def signed_in_user(client: Client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


class MetaTags(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and ("property" in attrs or "name" in attrs):
            self.tags[attrs.get("property") or attrs["name"]] = attrs.get("content", "")


# --- Sign-up and tokens over the API ---------------------------------------------------------


def test_signing_up_over_the_api_gives_a_working_token(anon):
    body = {"username": "carol", "email": "carol@example.com", "password": "a long tune 4 me"}

    response = anon.post("/api/v1/auth/signup/", body)

    assert response.status_code == 201
    answer = response.json()
    assert answer["user"]["username"] == "carol"
    assert answer["user"]["is_staff"] is False
    assert "password" not in answer["user"]
    me = anon.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {answer['token']}")
    assert me.json()["username"] == "carol"


@pytest.mark.parametrize("username", ["alice", "ALICE", "Alice"])
def test_a_taken_username_is_refused(anon, alice, error_of, username):
    body = {"username": username, "password": "a long tune 4 me"}

    error = error_of(anon.post("/api/v1/auth/signup/", body), 400)

    assert error["code"] == "taken"
    assert "username" in error["fields"]
    assert User.objects.filter(username__iexact="alice").count() == 1


def test_a_taken_email_is_refused(anon, alice, error_of):
    body = {"username": "carol", "email": "ALICE@example.com", "password": "a long tune 4 me"}

    assert "email" in error_of(anon.post("/api/v1/auth/signup/", body), 400)["fields"]


@pytest.mark.parametrize("password", ["short", "password", "12345678901", "carol1234"])
def test_a_weak_password_is_refused(anon, error_of, password):
    body = {"username": "carol", "password": password}

    error = error_of(anon.post("/api/v1/auth/signup/", body), 400)

    assert "password" in error["fields"]
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.parametrize("username", ["", "with space", "x" * 31, "dash-ed", "a/b"])
def test_a_malformed_username_is_refused(anon, error_of, username):
    body = {"username": username, "password": "a long tune 4 me"}

    assert "username" in error_of(anon.post("/api/v1/auth/signup/", body), 400)["fields"]


def test_a_password_gets_a_token(anon, alice):
    response = anon.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=alice).key
    assert response.json()["user"]["username"] == "alice"


@pytest.mark.parametrize("username", ["alice", "nobody"])
def test_a_wrong_password_gets_no_token(anon, alice, error_of, username):
    response = anon.post("/api/v1/auth/token/", {"username": username, "password": "nope"})

    error = error_of(response, 400)
    assert error["code"] == "bad_credentials"
    assert not Token.objects.exists()


def test_a_revoked_token_stops_working(alice_api, error_of):
    assert alice_api.get("/api/v1/me/").status_code == 200

    assert alice_api.delete("/api/v1/auth/token/").status_code == 204

    assert error_of(alice_api.get("/api/v1/me/"), 401)["code"] == "authentication_failed"
    assert not Token.objects.exists()


def test_revoking_without_signing_in_is_refused(anon, error_of):
    # 401, as everywhere else in the API without credentials.
    assert error_of(anon.delete("/api/v1/auth/token/"), 401)["code"] == "not_authenticated"


def test_me_describes_the_signed_in_user(alice_api, alice):
    me = alice_api.get("/api/v1/me/").json()

    assert me == {
        "id": alice.pk,
        "username": "alice",
        "email": "alice@example.com",
        "is_staff": False,
        "date_joined": me["date_joined"],
        "quota": me["quota"],  # today's generation quota: tests/safety
    }


def test_me_needs_a_signed_in_user(anon, error_of):
    assert error_of(anon.get("/api/v1/me/"), 401)["code"] == "not_authenticated"


def test_signing_up_too_often_from_one_address_is_refused(anon, frozen_rate_limit_clock, error_of):
    for n in range(20):  # the hourly allowance per address
        body = {"username": f"user{n}", "password": "a long tune 4 me"}
        assert anon.post("/api/v1/auth/signup/", body).status_code == 201

    response = anon.post(
        "/api/v1/auth/signup/", {"username": "one_more", "password": "a tune 4 me"}
    )

    assert error_of(response, 429)["code"] == "rate_limited"
    assert int(response["Retry-After"]) == 3600  # the hour window ends 3599.75 s later


def test_guessing_passwords_is_rate_limited(anon, alice, frozen_rate_limit_clock, error_of):
    for _ in range(20):
        anon.post("/api/v1/auth/token/", {"username": "alice", "password": "guess"})

    right = anon.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD})

    assert error_of(right, 429)["code"] == "rate_limited"


# --- Sign-up, login and passwords in the browser ---------------------------------------------


def test_the_signup_page_creates_an_account_and_signs_in(browser):
    assert browser.get("/accounts/signup/").status_code == 200

    response = browser.post(
        "/accounts/signup/",
        {
            "username": "carol",
            "email": "carol@example.com",
            "password1": "a long tune 4 me",
            "password2": "a long tune 4 me",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/u/carol/"
    assert signed_in_user(browser).username == "carol"


def test_the_signup_page_refuses_mismatched_passwords(browser):
    response = browser.post(
        "/accounts/signup/",
        {"username": "carol", "password1": "a long tune 4 me", "password2": "another tune"},
    )

    assert response.status_code == 400
    assert not User.objects.filter(username="carol").exists()
    assert signed_in_user(browser) is None


def test_logging_in_and_out(browser, alice):
    response = browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in_user(browser) == alice
    assert b"Log out" in browser.get("/").content

    response = browser.post("/accounts/logout/")

    assert response.status_code == 302
    assert signed_in_user(browser) is None
    assert b"Log in" in browser.get("/").content


def test_a_wrong_password_does_not_log_in(browser, alice):
    response = browser.post("/accounts/login/", {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    assert signed_in_user(browser) is None


def test_changing_my_password(alice_browser, alice):
    response = alice_browser.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "a brand new melody",
            "new_password2": "a brand new melody",
        },
    )

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a brand new melody")
    assert signed_in_user(alice_browser) == alice  # still signed in after the change


def test_changing_a_password_needs_the_old_one(alice_browser, alice):
    alice_browser.post(
        "/accounts/password_change/",
        {
            "old_password": "nope",
            "new_password1": "a new one 123",
            "new_password2": "a new one 123",
        },
    )

    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_resetting_a_forgotten_password_by_email(browser, alice, mailoutbox):
    response = browser.post("/accounts/password_reset/", {"email": "alice@example.com"})

    assert response.status_code == 302
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]
    link = re.search(r"https?://\S+/accounts/reset/\S+/", mailoutbox[0].body).group(0)

    # The emailed link swaps its token for a session and redirects to the form.
    form = browser.get(urlsplit(link).path, follow=True)
    assert form.status_code == 200
    assert b"new_password1" in form.content
    done = browser.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a brand new melody", "new_password2": "a brand new melody"},
    )

    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a brand new melody")
    # A reset link works once.
    again = browser.get(urlsplit(link).path, follow=True)
    assert b"new_password1" not in again.content


def test_a_reset_for_an_unknown_email_sends_nothing_and_says_nothing(browser, alice, mailoutbox):
    response = browser.post("/accounts/password_reset/", {"email": "nobody@example.com"})

    assert response.status_code == 302  # the same answer as for a known address
    assert mailoutbox == []


# --- Profiles and the feed page --------------------------------------------------------------


@pytest.fixture
def alices_songs(make_song, alice):
    return {
        visibility: make_song(alice, visibility=visibility, title=f"Alice {visibility} song")
        for visibility in ("private", "unlisted", "public")
    }


def test_my_profile_shows_all_my_songs(alice_browser, alices_songs):
    page = alice_browser.get("/u/alice/").content.decode()

    for song in alices_songs.values():
        assert song.title in page


@pytest.mark.parametrize("viewer", ["bob_browser", "browser"])
def test_someone_elses_profile_shows_only_their_public_songs(request, alices_songs, viewer):
    page = request.getfixturevalue(viewer).get("/u/alice/").content.decode()

    assert "Alice public song" in page
    assert "Alice unlisted song" not in page
    assert "Alice private song" not in page


def test_an_unknown_profile_is_404(browser):
    assert browser.get("/u/nobody/").status_code == 404


def test_the_home_page_is_the_public_feed(browser, alices_songs, make_song, bob):
    make_song(bob, visibility="public", title="Bob public song")

    page = browser.get("/").content.decode()

    assert page.index("Bob public song") < page.index("Alice public song")  # newest first
    assert "Alice unlisted song" not in page
    assert "Alice private song" not in page
    assert "placeholder tone" in page
    assert browser.get("/", {"sort": "liked"}).status_code == 200
    assert browser.get("/", {"sort": "nonsense"}).status_code == 200


# --- Making a song in the browser ------------------------------------------------------------


def test_making_a_song_needs_a_signed_in_user(browser):
    response = browser.get("/songs/new/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_making_a_song_in_the_browser(alice_browser, alice):
    assert alice_browser.get("/songs/new/").status_code == 200

    response = alice_browser.post(
        "/songs/new/",
        {
            "prompt": "harp arpeggios at dawn",
            "duration_s": "10",
            "style_tags": "Ambient, harp,",
            "guidance": "3",
            "visibility": "unlisted",
        },
    )

    song = Song.objects.get(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == f"/songs/{song.pk}/"
    assert (song.prompt, song.style_tags, song.visibility) == (
        "harp arpeggios at dawn",
        ["ambient", "harp"],
        "unlisted",
    )
    assert song.status == "ready"


def test_a_bad_song_form_is_shown_again_with_its_errors(alice_browser):
    response = alice_browser.post(
        "/songs/new/", {"prompt": "", "duration_s": "5", "guidance": "3", "visibility": "public"}
    )

    assert response.status_code == 400
    assert not Song.objects.exists()


# --- The song page ---------------------------------------------------------------------------


def test_the_owner_manages_a_song_on_its_page(alice_browser, a_private_song):
    page = alice_browser.get(f"/songs/{a_private_song.pk}/").content.decode()

    assert "Private tune" in page
    assert "Manage" in page
    assert f"/s/{a_private_song.share_token}/" in page
    assert "placeholder test tone" in page


def test_others_see_a_public_song_page_without_managing_it(bob_browser, a_public_song):
    page = bob_browser.get(f"/songs/{a_public_song.pk}/").content.decode()

    assert "Public tune" in page
    assert "Manage" not in page
    assert a_public_song.share_token not in page


@pytest.mark.parametrize("viewer", ["bob_browser", "browser"])
def test_a_private_song_page_is_404_for_others(request, a_private_song, viewer):
    response = request.getfixturevalue(viewer).get(f"/songs/{a_private_song.pk}/")

    assert response.status_code == 404
    assert b"Private tune" not in response.content


def test_the_owner_renames_rotates_and_deletes_on_the_page(alice_browser, an_unlisted_song):
    url = f"/songs/{an_unlisted_song.pk}/"
    old_token = an_unlisted_song.share_token

    alice_browser.post(url, {"action": "update", "title": "Renamed", "visibility": "public"})
    alice_browser.post(url, {"action": "rotate"})
    song = Song.objects.get(pk=an_unlisted_song.pk)
    assert (song.title, song.visibility) == ("Renamed", "public")
    assert song.share_token != old_token

    response = alice_browser.post(url, {"action": "delete"})

    assert response.status_code == 302
    assert response["Location"] == "/u/alice/"
    assert not Song.objects.filter(pk=an_unlisted_song.pk).exists()


def test_others_cannot_manage_a_song_from_its_page(bob_browser, a_public_song):
    url = f"/songs/{a_public_song.pk}/"

    bob_browser.post(url, {"action": "update", "title": "Mine now", "visibility": "private"})
    bob_browser.post(url, {"action": "delete"})

    song = Song.objects.get(pk=a_public_song.pk)
    assert (song.title, song.visibility) == ("Public tune", "public")


# --- The share page --------------------------------------------------------------------------


def test_a_share_page_opens_an_unlisted_song_for_anonymous_visitors(browser, an_unlisted_song):
    response = browser.get(f"/s/{an_unlisted_song.share_token}/")

    assert response.status_code == 200
    meta = MetaTags(response.content.decode()).tags
    assert meta["og:title"] == "Unlisted tune"
    assert meta["og:type"] == "music.song"
    assert meta["og:url"].endswith(f"/s/{an_unlisted_song.share_token}/")
    assert meta["og:audio:type"] == "audio/ogg"
    assert meta["robots"] == "noindex"
    # The preview's audio link plays for anyone holding the link.
    audio = urlsplit(meta["og:audio"])
    assert audio.path == f"/api/v1/songs/{an_unlisted_song.pk}/download/"
    played = browser.get(f"{audio.path}?{audio.query}")
    assert played.status_code == 200
    assert played["Content-Type"] == "audio/ogg"
    assert played["Content-Disposition"].startswith("inline")
    assert b"".join(played.streaming_content).startswith(b"OggS")


def test_a_public_share_page_may_be_indexed(browser, a_public_song):
    page = browser.get(f"/s/{a_public_song.share_token}/").content.decode()

    assert MetaTags(page).tags["robots"] == "index"


@pytest.mark.parametrize("viewer", ["bob_browser", "browser"])
def test_a_share_page_of_a_private_song_is_404_for_others(request, a_private_song, viewer):
    response = request.getfixturevalue(viewer).get(f"/s/{a_private_song.share_token}/")

    assert response.status_code == 404
    assert b"Private tune" not in response.content


def test_a_rotated_share_page_is_gone(browser, alice_api, an_unlisted_song):
    old = f"/s/{an_unlisted_song.share_token}/"
    alice_api.post(f"/api/v1/songs/{an_unlisted_song.pk}/share-token/")

    assert browser.get(old).status_code == 404
