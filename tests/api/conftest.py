"""Fixtures for the API tests: signed-in API clients, the error shape, a clock for rate limits."""

from __future__ import annotations

import types

import pytest


@pytest.fixture
def alice_api(client_for, alice):
    return client_for(alice)


@pytest.fixture
def bob_api(client_for, bob):
    return client_for(bob)


@pytest.fixture
def admin_api(client_for, admin):
    return client_for(admin)


@pytest.fixture
def error_of():
    """The `error` object of an API answer, after checking it has the one error shape."""

    def check(response, status: int) -> dict:
        assert response.status_code == status, response.content[:500]
        assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
        body = response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
        return error

    return check


@pytest.fixture
def frozen_rate_limit_clock(monkeypatch):
    """Stop the clock the rate limiter reads, in the middle of every window.

    Rate-limit windows are fixed, so a test that fills one on the real clock fails whenever a
    window edge passes mid-test. Only the limiter's view of time is frozen; the rest of the
    process keeps the real clock.
    """
    from webapp import ratelimit

    now = 1_800_000_000.25  # a quarter second into a second, a minute and an hour
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now))
    return now


@pytest.fixture(autouse=True)
def pages_render_without_collectstatic(settings):
    """Serve static file names as they are, as the embedded default does.

    Service mode stores static files through the manifest storage, which needs `collectstatic`
    to have run; without it every page that links a stylesheet fails to render. That is a deploy
    step, not something these tests are about.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
