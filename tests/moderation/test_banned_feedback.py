"""A ban also reaches the banned person's signed-out identity: the browser they used.

A banned account's session reads as signed out (webapp.moderation.backends), which used to make
its old cookie an anonymous listener like any other, free to post feedback. Now a session that
names a sanctioned account (signed in with it, refused a login for it, or logged out of it) is
refused feedback with a clear 403 that says why, and records nothing: refused rather than
recorded and flagged, so that the append-only feedback log and every label built from it never
hold the banned person's events in the first place.
"""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from webapp.feedback.models import FeedbackEvent
from webapp.moderation import services

FEEDBACK = "/api/v1/feedback/"


def play(browser: Client, song):
    events = [{"kind": "play_start", "target_type": "song", "target_id": str(song.pk)}]
    return browser.post(FEEDBACK, {"events": events}, content_type="application/json")


def test_a_banned_persons_old_cookie_cannot_post_feedback_as_a_visitor(
    browser_of, bob, mod, a_public_song
):
    bobs_browser = browser_of(bob)
    assert play(bobs_browser, a_public_song).status_code == 201

    services.user_ban(moderator=mod, user=bob, reason="Vote manipulation.")
    refused = play(bobs_browser, a_public_song)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "banned"
    assert refused.json()["error"]["message"] == "This account is banned."
    assert FeedbackEvent.objects.filter(actor__startswith="anon:").count() == 0


def test_logging_out_does_not_shake_the_ban_off(browser_of, bob, mod, a_public_song):
    bobs_browser = browser_of(bob)
    services.user_ban(moderator=mod, user=bob, reason="Vote manipulation.")

    bobs_browser.post("/accounts/logout/")

    assert play(bobs_browser, a_public_song).status_code == 403
    assert not FeedbackEvent.objects.exists()


def test_a_browser_refused_a_login_for_a_ban_is_the_banned_persons(bob, mod, a_public_song):
    services.user_ban(moderator=mod, user=bob, reason="Vote manipulation.")
    browser = Client()

    login = browser.post(
        "/accounts/login/", {"username": "bob", "password": "correct horse battery"}
    )

    assert b"This account is banned." in login.content
    assert play(browser, a_public_song).status_code == 403


def test_a_suspension_refuses_it_too_and_its_end_lets_feedback_in_again(
    browser_of, bob, mod, a_public_song
):
    bobs_browser = browser_of(bob)
    services.user_suspend(
        moderator=mod, user=bob, until=timezone.now() + timedelta(hours=1), reason="Cool off."
    )
    refused = play(bobs_browser, a_public_song)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "suspended")

    services.user_lift_sanctions(moderator=mod, user=bob)

    assert play(bobs_browser, a_public_song).status_code == 201


def test_other_visitors_are_not_affected(browser_of, bob, mod, a_public_song):
    services.user_ban(moderator=mod, user=bob, reason="Vote manipulation.")

    assert play(Client(), a_public_song).status_code == 201
    assert FeedbackEvent.objects.filter(actor__startswith="anon:").count() == 1
