"""Sticky rooms on a real Celery worker: a room's next chunk sent to the worker's own queue
(`worker_direct`) is made there, from the session the worker holds (no restore)."""

from __future__ import annotations

import pytest

from collab.conductor import CeleryDispatcher
from tests.integration.conftest import chunk_result as result
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def test_a_room_sent_back_to_its_worker_continues_from_the_session_held_there(
    celery_worker, store, tmp_path
):
    out, dispatcher = str(tmp_path), CeleryDispatcher()
    celery_worker("gpu-sticky")
    jobs = lambda seq: [{"room": "sticky", "sequence": seq, "seed": 3}]  # noqa: E731

    dispatcher.dispatch(jobs(0), out, on_done=None)  # the shared queue: nobody holds the room
    first = wait_for(lambda: result(store, "sticky", 0), timeout_s=120, what="chunk 0")
    assert first["worker"].startswith("gpu-sticky@") and first["resident"] is False

    dispatcher.dispatch(jobs(1), out, on_done=None, worker=first["worker"])
    second = wait_for(lambda: result(store, "sticky", 1), timeout_s=60, what="chunk 1")
    assert second["worker"] == first["worker"] and second["resident"] is True
