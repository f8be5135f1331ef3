"""Rooms' chunks on real Celery workers with the shipped model: batched, and handed over when a
worker dies (the next worker continues each room from the state in Redis)."""

from __future__ import annotations

import signal

import pytest
import soundfile

from generation import tasks
from tests.integration.conftest import chunk_result as result
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def test_rooms_continue_on_another_worker_after_a_kill(celery_worker, store, tmp_path):
    out = str(tmp_path)
    jobs = lambda seq: [  # noqa: E731
        {
            "room": "r1",
            "sequence": seq,
            "seed": 1,
            "steering": {"prompts": [["techno", 1.0]], "controls": {"bpm": 128}},
        },
        {"room": "r2", "sequence": seq, "seed": 2},
    ]
    first = celery_worker("gpu-a")
    for seq in (0, 1):
        tasks.rooms_next_chunks.apply_async((jobs(seq), out))
        wait_for(
            lambda seq=seq: result(store, "r2", seq),
            timeout_s=120,
            what=f"chunk {seq} from the first worker",
        )
    frames = round(tasks.ROOM_CHUNK_S * 25)  # the codec's 25 Hz frames per room chunk
    one = result(store, "r1", 1)
    assert one["provenance"]["batch"] == 2 and one["start_frame"] == frames
    audio, rate = soundfile.read(one["path"])
    assert rate == 24000 and len(audio) == round(tasks.ROOM_CHUNK_S * 24000)

    first.kill(signal.SIGKILL)
    celery_worker("gpu-b")
    tasks.rooms_next_chunks.apply_async((jobs(2), out))
    two = wait_for(lambda: result(store, "r1", 2), timeout_s=120, what="the second worker")
    assert two["sequence"] == 2 and two["start_frame"] == 2 * frames  # none lost or repeated
    assert two["steering"]["controls"]["bpm"] == 128  # the room's steering came with the state
