"""A banned person cannot simply sign up again (webapp/moderation/signup.py, docs/moderation.md).

Their email is refused however it is dressed up (case, +tags, gmail's dots); the addresses their
banned account signed in from lately are remembered, as keyed digests only, and sign-ups from
them are refused for a while with a message that says until when and what to do (or, where the
site is set to, allowed and flagged to the moderators). Every refusal and flag is audited.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from webapp.moderation import services
from webapp.moderation.models import AuditEntry, LoginAddress, Report, SignupBlock
from webapp.moderation.signup import address_digest, email_normalise

DOTLESS = ["gmail.com", "googlemail.com"]
BOBS_ADDRESS = "198.51.100.7"
ELSEWHERE = "203.0.113.50"


@pytest.mark.parametrize(
    ("email", "normalised"),
    [
        ("Bob@Example.com", "bob@example.com"),
        ("bob+chorus@example.com", "bob@example.com"),
        ("b.o.b@example.com", "b.o.b@example.com"),  # dots matter at most domains
        ("B.o.B+again@gmail.com", "bob@gmail.com"),
        ("bob@googlemail.com", "bob@gmail.com"),
        ("not an address", ""),
        ("", ""),
    ],
)
def test_emails_are_compared_as_the_mailbox_they_reach(email, normalised):
    assert email_normalise(email, dotless_domains=DOTLESS) == normalised


def test_addresses_are_kept_as_keyed_digests_never_as_themselves(settings):
    digest = address_digest(BOBS_ADDRESS)

    assert BOBS_ADDRESS not in digest and len(digest) == 64
    assert address_digest(BOBS_ADDRESS) == digest
    assert address_digest(ELSEWHERE) != digest
    # One IPv6 subscriber holds a /64: any address in it is the same client.
    assert address_digest("2001:db8:1:2::1") == address_digest("2001:db8:1:2:ffff::9")
    assert address_digest("2001:db8:1:3::1") != address_digest("2001:db8:1:2::1")
    assert address_digest("::ffff:198.51.100.7") == digest
    assert address_digest("unknown") is None
    settings.SECRET_KEY = "another site's key"
    assert address_digest(BOBS_ADDRESS) != digest  # nobody can test a guess without the key


def sign_up(username: str, email: str = "", address: str = ELSEWHERE):
    body = {"username": username, "password": "another horse battery", "email": email}
    return APIClient(REMOTE_ADDR=address).post("/api/v1/auth/signup/", body, format="json")


def log_in_from(user, address: str) -> None:
    """bob signs in on the site's login page, from this address."""
    Client(REMOTE_ADDR=address).post(
        "/accounts/login/", {"username": user.username, "password": "correct horse battery"}
    )


@pytest.fixture(autouse=True)
def no_signup_rate_limit(settings):
    settings.RATELIMIT_ENABLED = False  # the limit has its own tests; these sign up a lot


@pytest.mark.parametrize("email", ["bob@example.com", "BOB+new@Example.com"])
def test_a_banned_accounts_email_cannot_sign_up_again(bob, mod, email):
    services.user_ban(moderator=mod, user=bob, reason="Spam.")

    refused = sign_up("bob_again", email)

    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "email_sanctioned" and "email" in error["fields"]
    entry = AuditEntry.objects.get(action="signup.refused")
    assert (entry.target_id, entry.after["why"], entry.after["username"]) == (
        str(bob.pk),
        "email",
        "bob_again",
    )


def test_gmail_dots_and_aliases_do_not_get_round_it(make_user, mod):
    banned = make_user("spammer", email="spam.mer@gmail.com")
    services.user_ban(moderator=mod, user=banned, reason="Spam.")

    assert sign_up("s1", "spammer@gmail.com").status_code == 403
    assert sign_up("s2", "S.P.A.M.M.E.R+x@googlemail.com").status_code == 403
    assert sign_up("s3", "spam.mer@example.com").status_code == 201  # another mailbox


def test_a_suspended_accounts_email_is_refused_until_the_suspension_ends(bob, mod):
    services.user_suspend(
        moderator=mod, user=bob, until=timezone.now() + timedelta(days=1), reason="Cool off."
    )
    assert sign_up("bob_again", "bob+x@example.com").status_code == 403

    services.user_lift_sanctions(moderator=mod, user=bob)

    assert sign_up("bob_again", "bob+x@example.com").status_code == 201


def test_a_ban_pauses_sign_ups_from_where_the_account_signed_in(bob, mod):
    log_in_from(bob, BOBS_ADDRESS)

    services.user_ban(moderator=mod, user=bob, reason="Spam.")
    refused = sign_up("fresh_face", address=BOBS_ADDRESS)

    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "signup_paused"
    assert "until" in error["message"] and "another connection" in error["message"]
    assert sign_up("fresh_face", address=ELSEWHERE).status_code == 201
    # The ban records how many addresses it blocked; the refusal, which block refused it.
    ban = AuditEntry.objects.get(action="user.ban")
    assert ban.after["signup_blocks"] == 1
    refusal = AuditEntry.objects.get(action="signup.refused")
    assert refusal.after["why"] == "address" and refusal.ip is None


def test_no_address_is_stored_as_itself(bob, mod):
    log_in_from(bob, BOBS_ADDRESS)
    services.user_ban(moderator=mod, user=bob, reason="Spam.")
    sign_up("fresh_face", address=BOBS_ADDRESS)

    stored = [
        *LoginAddress.objects.values_list("digest", flat=True),
        *SignupBlock.objects.values_list("digest", flat=True),
        *(str(e.after) for e in AuditEntry.objects.all()),
    ]
    assert stored and not any(BOBS_ADDRESS in text for text in stored)


def test_the_pause_ends_with_its_window_or_when_the_ban_is_lifted(bob, mod):
    log_in_from(bob, BOBS_ADDRESS)
    services.user_ban(moderator=mod, user=bob, reason="Spam.")
    SignupBlock.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sign_up("after_a_day", address=BOBS_ADDRESS).status_code == 201

    SignupBlock.objects.update(expires_at=timezone.now() + timedelta(hours=1))
    services.user_lift_sanctions(moderator=mod, user=bob, reason="Appeal granted.")

    assert sign_up("after_the_appeal", address=BOBS_ADDRESS).status_code == 201


def test_only_recent_logins_count(bob, mod, settings):
    log_in_from(bob, BOBS_ADDRESS)
    old = timezone.now() - timedelta(days=settings.LOGIN_ADDRESS_DAYS + 1)
    LoginAddress.objects.update(last_seen_at=old)

    services.user_ban(moderator=mod, user=bob, reason="Spam.")

    assert sign_up("neighbour", address=BOBS_ADDRESS).status_code == 201


def test_a_suspension_does_not_pause_sign_ups_from_its_addresses(bob, mod):
    log_in_from(bob, BOBS_ADDRESS)

    services.user_suspend(
        moderator=mod, user=bob, until=timezone.now() + timedelta(days=1), reason="Cool off."
    )

    assert sign_up("housemate", address=BOBS_ADDRESS).status_code == 201


def test_where_refusing_costs_too_much_sign_ups_are_flagged_instead(bob, mod, settings):
    settings.SIGNUP_BLOCK_ACTION = "flag"
    log_in_from(bob, BOBS_ADDRESS)
    services.user_ban(moderator=mod, user=bob, reason="Spam.")

    created = sign_up("student", address=BOBS_ADDRESS)

    assert created.status_code == 201
    new_id = str(created.json()["user"]["id"])
    report = Report.objects.get(target_type="user", target_id=new_id)
    assert report.reporter is None and report.status == Report.Status.OPEN
    flagged = AuditEntry.objects.get(action="signup.flagged")
    assert (flagged.target_id, flagged.after["banned_account"]) == (new_id, bob.pk)
    queue = Client()
    queue.force_login(mod)
    assert b"Chorus (automatic)" in queue.get("/moderation/").content


def test_the_address_check_can_be_turned_off(bob, mod, settings):
    settings.SIGNUP_BLOCK_ACTION = "off"
    log_in_from(bob, BOBS_ADDRESS)
    services.user_ban(moderator=mod, user=bob, reason="Spam.")

    assert sign_up("anyone", address=BOBS_ADDRESS).status_code == 201
    assert sign_up("bob_again", "bob@example.com").status_code == 403  # the email still counts


def test_the_sign_up_page_says_why(bob, mod):
    log_in_from(bob, BOBS_ADDRESS)
    services.user_ban(moderator=mod, user=bob, reason="Spam.")
    form = {
        "username": "fresh_face",
        "email": "",
        "password1": "another horse battery",
        "password2": "another horse battery",
    }

    page = Client(REMOTE_ADDR=BOBS_ADDRESS).post("/accounts/signup/", form)

    assert page.status_code == 400
    assert b"Sign-ups from your network are paused" in page.content


def test_token_logins_and_sign_ups_are_remembered_too(bob, mod):
    APIClient(REMOTE_ADDR=BOBS_ADDRESS).post(
        "/api/v1/auth/token/",
        {"username": "bob", "password": "correct horse battery"},
        format="json",
    )
    created = sign_up("carl", address="192.0.2.4")

    assert LoginAddress.objects.filter(user=bob, digest=address_digest(BOBS_ADDRESS)).exists()
    assert LoginAddress.objects.filter(
        user_id=created.json()["user"]["id"], digest=address_digest("192.0.2.4")
    ).exists()
