"""Fixtures for the safety tests: alice's API client and the API's one error shape."""

from __future__ import annotations

import pytest


@pytest.fixture
def alice_api(client_for, alice):
    return client_for(alice)


@pytest.fixture
def error_of():
    """The `error` object of an API answer, after checking it has the one error shape."""

    def check(response, status: int) -> dict:
        assert response.status_code == status, response.content[:500]
        body = response.json()
        assert set(body) == {"error"}, body
        assert body["error"]["code"] and body["error"]["message"]
        return body["error"]

    return check
