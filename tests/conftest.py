"""Shared fixtures with names: alice and bob (users), admin, API clients, and songs of each kind."""

from __future__ import annotations

import os

import pytest
from django.test import Client
from rest_framework.test import APIClient

from webapp.songs import services as song_services
from webapp.songs.models import Song

SERVICE_MODE = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))


def pytest_collection_modifyitems(config, items):
    """Integration tests need real PostgreSQL and Redis: they run in service mode (CI) only."""
    if SERVICE_MODE:
        return
    skip = pytest.mark.skip(reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL (Redis)")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def throwaway_media():
    """Each run writes audio into its own temporary MEDIA_ROOT; remove it afterwards."""
    import shutil

    from django.conf import settings

    yield
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


@pytest.fixture(autouse=True)
def on_commit_runs_at_test_commit(monkeypatch):
    """Run on-commit callbacks when only the test case's own transaction is open.

    pytest-django wraps each test in a transaction that never commits, so callbacks (enqueueing
    generation, deleting files) would never run. Outside any block of the code's own, committing
    is what would happen next in production, so the callback runs at once; inside one of the
    code's own atomic blocks it is still deferred, as in production.
    """
    from django.db import connection, transaction

    original = transaction.on_commit

    def on_commit(func, using=None, robust=False):
        if all(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
            func()
        else:
            original(func, using=using, robust=robust)

    monkeypatch.setattr(transaction, "on_commit", on_commit)


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Rate-limit counters must not leak from one test into the next."""
    from webapp import ratelimit

    ratelimit.get_backend().reset()
    yield


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(
            username=username, password="correct horse battery", **extra
        )

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice", email="alice@example.com")


@pytest.fixture
def bob(make_user):
    return make_user("bob", email="bob@example.com")


@pytest.fixture
def admin(django_user_model):
    return django_user_model.objects.create_superuser(
        username="admin", password="correct horse battery", email="admin@example.com"
    )


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for():
    """An API client authenticated as `user` by token, as API users are."""

    def make(user) -> APIClient:
        from webapp.accounts.services import user_api_token

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {user_api_token(user=user)}")
        return client

    return make


@pytest.fixture
def alice_browser(alice) -> Client:
    """A browser signed in as alice (the session cookie, as pages see it)."""
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_browser(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def make_song(db):
    """A song made through the real service; generation runs inline (placeholder tone)."""

    def make(owner, *, visibility: str = "private", **params) -> Song:
        params.setdefault("prompt", "warm lo-fi beat with soft piano")
        params.setdefault("duration_s", 10.0)
        song = song_services.song_create(owner=owner, visibility=visibility, **params)
        song.refresh_from_db()
        return song

    return make


@pytest.fixture
def a_public_song(make_song, alice):
    return make_song(alice, visibility="public", title="Public tune")


@pytest.fixture
def an_unlisted_song(make_song, alice):
    return make_song(alice, visibility="unlisted", title="Unlisted tune")


@pytest.fixture
def a_private_song(make_song, alice):
    return make_song(alice, visibility="private", title="Private tune")
