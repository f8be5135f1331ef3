"""Celery tasks of the engine, on queue ``gpu``. No Django here: the web side calls these.

* ``generation.tasks.rooms_next_chunks(jobs, out_dir)``: continue a *batch* of rooms by one
  chunk each in one batched model call. Each job names a room and the sequence number it wants;
  the room's stream state lives in a shared store (Redis in service mode), so any worker can
  continue any room, and a worker that dies mid-batch costs each room at most that one chunk:
  the job is redelivered (acks_late) and whoever runs it continues from the last stored state.
  Idempotent by (room, sequence): a job whose chunk exists returns the stored result without
  generating again, and a stale job (the room has moved on) is reported, never re-run.
* ``generation.tasks.generate_song(request, out_path)``: one song from a SongRequest (as a dict)
  to an audio file, reporting progress through the task's state (``PROGRESS`` with ``fraction``).

The model is loaded lazily, once per worker process, and kept (``engine()``).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile
from celery import shared_task

from generation.interface import SongRequest, get_song_generator
from generation.steering import Steering

CHUNK_FORMAT = ("OGG", "OPUS")  # browser-decodable, about 24 kB per 2 s chunk
RESULT_TTL_S = 3600
_engine = None
_engine_lock = threading.Lock()


def engine():
    """The worker's engine: loaded on first use and kept for the life of the process."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from generation.lm.stream import Engine

            _engine = Engine.load(
                os.environ.get("CHORUS_LM_CHECKPOINT") or None,
                os.environ.get("CHORUS_CODEC_CHECKPOINT") or None,
            )
        return _engine


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def set_many(self, items: dict[str, bytes], ttl_s: int) -> None: ...


class MemoryStore:
    """One process's store (the embedded default and tests)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        with self._lock:
            self._data.update(items)


class RedisStore:
    def __init__(self, url: str, prefix: str = "chorus:gen:") -> None:
        import redis

        self.client, self.prefix = redis.Redis.from_url(url), prefix

    def get(self, key: str) -> bytes | None:
        return self.client.get(self.prefix + key)

    def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        pipe = self.client.pipeline(transaction=True)  # result and state land together
        for key, value in items.items():
            pipe.set(self.prefix + key, value, ex=ttl_s)
        pipe.execute()


_store: Store | None = None


def store() -> Store:
    global _store
    if _store is None:
        url = os.environ.get("REDIS_URL")
        prefix = os.environ.get("CHORUS_CACHE_NAMESPACE", "chorus") + ":gen:"
        _store = RedisStore(url, prefix) if url else MemoryStore()
    return _store


def set_store(new: Store | None) -> None:
    """Use another store (tests); None goes back to the configured one."""
    global _store
    _store = new


def run_room_jobs(jobs: list[dict], out_dir: str, eng=None, st: Store | None = None) -> list[dict]:
    """The work of rooms_next_chunks, callable in-process (the embedded default does)."""
    eng = eng or engine()
    st = st or store()
    results: dict[int, dict] = {}
    todo, sessions, steerings = [], [], []
    for i, job in enumerate(jobs):
        room, seq = str(job["room"]), int(job["sequence"])
        done = st.get(f"chunk:{room}:{seq}")
        if done is not None:
            results[i] = {**json.loads(done), "reused": True}
            continue
        blob = st.get(f"state:{room}")
        session = eng.restore(blob) if blob else None
        if session is None:
            if seq != 0:
                results[i] = {"room": room, "sequence": seq, "error": "no state for this room"}
                continue
            session = eng.session(int(job.get("seed", 0)))
        if session.sequence != seq:
            results[i] = {
                "room": room,
                "sequence": seq,
                "error": "stale",
                "next_sequence": session.sequence,
            }
            continue
        steering = Steering.from_dict(job["steering"]) if job.get("steering") else None
        if job.get("reset"):
            session.hard_reset(steering)
            steering = None
        todo.append(i)
        sessions.append(session)
        steerings.append(steering)
    if sessions:
        chunks = eng.next_chunks(sessions, steerings)
        for i, session, chunk in zip(todo, sessions, chunks, strict=True):
            room = str(jobs[i]["room"])
            path = Path(out_dir) / room / f"{chunk.sequence:08d}.ogg"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_chunk(path, chunk.pcm, chunk.sample_rate)
            result = {
                "room": room,
                "sequence": chunk.sequence,
                "path": str(path),
                "duration_s": chunk.duration_s,
                "start_frame": chunk.start_frame,
                "steering": chunk.steering.as_dict(),
                "provenance": chunk.provenance,
                "codes": base64.b64encode(chunk.codes.astype(np.int16).tobytes()).decode(),
            }
            st.set_many(
                {
                    f"chunk:{room}:{chunk.sequence}": json.dumps(result).encode(),
                    f"state:{room}": session.to_bytes(),
                },
                RESULT_TTL_S,
            )
            results[i] = {**result, "reused": False}
    return [results[i] for i in range(len(jobs))]


def write_chunk(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    tmp = path.with_suffix(".tmp")
    soundfile.write(tmp, pcm, sample_rate, format=CHUNK_FORMAT[0], subtype=CHUNK_FORMAT[1])
    tmp.replace(path)  # readers never see half a file


@shared_task(name="generation.tasks.rooms_next_chunks", queue="gpu", acks_late=True)
def rooms_next_chunks(jobs: list[dict], out_dir: str) -> list[dict]:
    return run_room_jobs(jobs, out_dir)


@shared_task(name="generation.tasks.generate_song", queue="gpu", bind=True, acks_late=True)
def generate_song(self, request: dict, out_path: str, backend: str = "chorus") -> dict:
    last = [0.0]

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last[0] > 0.5:  # at most twice a second
            last[0] = now
            if self.request.id:
                self.update_state(state="PROGRESS", meta={"fraction": round(fraction, 4)})

    fields = dict(request)
    fields["style_tags"] = tuple(fields.get("style_tags", ()))
    fields["controls"] = tuple(sorted(dict(fields.get("controls", {})).items()))
    song = get_song_generator(backend).generate_song(SongRequest(**fields), progress)
    soundfile.write(out_path, song.pcm, song.sample_rate, format="FLAC")
    return {
        "path": out_path,
        "duration_s": song.duration_s,
        "model_version": song.model_version,
        "provenance": song.provenance,
    }
