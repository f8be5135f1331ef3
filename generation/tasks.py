"""Celery tasks of the engine, on queue ``gpu``. No Django here: the web side calls these.

* ``generation.tasks.rooms_next_chunks(jobs, out_dir)``: continue a *batch* of rooms by one
  chunk each in one batched model call. Each job names a room and the sequence number it wants;
  the room's stream state lives in a shared store (Redis in service mode), so any worker can
  continue any room, and a worker that dies mid-batch costs each room at most that one chunk:
  the job is redelivered (acks_late) and whoever runs it continues from the last stored state.
  Idempotent by (room, sequence): a job whose chunk exists returns the stored result without
  generating again, and a stale job (the room has moved on) is reported, never re-run.
* ``generation.tasks.auditions_render(jobs, out_dir)``: short previews of proposals, each a copy
  of a room's stream continued under the proposal's steering (the room's own state untouched).
* ``generation.tasks.generate_song(request, out_path)``: one song from a SongRequest (as a dict)
  to an audio file, reporting progress through the task's state (``PROGRESS`` with ``fraction``).

The model is loaded lazily, once per worker process, and kept (``engine()``).
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile
from celery import shared_task

from generation import metrics
from generation.interface import SongRequest, get_song_generator
from generation.steering import Steering

CHUNK_FORMAT = ("OGG", "OPUS")  # browser-decodable, about 24 kB per 2 s chunk
RESULT_TTL_S = 3600
# Seconds of music per room chunk. Short chunks let a vote be heard sooner (a steering change
# remakes the chunks not yet playing, docs/rooms.md) at some cost in batched throughput.
ROOM_CHUNK_S = 1.0
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
                chunk_s=float(os.environ.get("CHORUS_ROOM_CHUNK_S") or ROOM_CHUNK_S),
            )
        return _engine


class Store(Protocol):
    """Keys to bytes with expiry. `set_many` writes all its items at once; `ttl_s` is one expiry
    for all of them, or one per key.

    A store also carries doorbells: `ring(bell)` wakes whoever is in (or next enters)
    `wait(bell, timeout_s)`; rings before a wait are kept (one, not a count), so a ring is never
    lost between two waits. The conductor sleeps on one between ticks, and a worker that has
    finished a batch rings it, so results are collected at once instead of on the next tick."""

    def get(self, key: str) -> bytes | None: ...
    def set_many(self, items: dict[str, bytes], ttl_s: int | dict[str, int]) -> None: ...
    def ring(self, bell: str) -> None: ...
    def wait(self, bell: str, timeout_s: float) -> bool: ...


class MemoryStore:
    """One process's store (the embedded default and tests)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._bells: dict[str, threading.Event] = {}

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def set_many(self, items: dict[str, bytes], ttl_s: int | dict[str, int]) -> None:
        with self._lock:
            self._data.update(items)

    def _bell(self, bell: str) -> threading.Event:
        with self._lock:
            return self._bells.setdefault(bell, threading.Event())

    def ring(self, bell: str) -> None:
        self._bell(bell).set()

    def wait(self, bell: str, timeout_s: float) -> bool:
        event = self._bell(bell)
        rung = event.wait(max(0.0, timeout_s))
        event.clear()
        return rung


class RedisStore:
    def __init__(self, url: str, prefix: str = "chorus:gen:") -> None:
        import redis

        self.client, self.prefix = redis.Redis.from_url(url), prefix

    def get(self, key: str) -> bytes | None:
        return self.client.get(self.prefix + key)

    def set_many(self, items: dict[str, bytes], ttl_s: int | dict[str, int]) -> None:
        pipe = self.client.pipeline(transaction=True)  # result and state land together
        for key, value in items.items():
            pipe.set(self.prefix + key, value, ex=ttl_s[key] if isinstance(ttl_s, dict) else ttl_s)
        pipe.execute()

    # A bell is a list holding at most one item: LPUSH + LTRIM rings, BLPOP waits.
    BELL_TTL_S = 60  # a ring nobody waits for is forgotten after this long

    def ring(self, bell: str) -> None:
        key = self.prefix + bell
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(key, b"1")
        pipe.ltrim(key, 0, 0)
        pipe.expire(key, self.BELL_TTL_S)
        pipe.execute()

    def wait(self, bell: str, timeout_s: float) -> bool:
        if timeout_s <= 0:
            return self.client.lpop(self.prefix + bell) is not None
        # BLPOP takes fractions of a second (Redis >= 6); below 10 ms it would mean "forever"
        return self.client.blpop([self.prefix + bell], timeout=max(timeout_s, 0.01)) is not None


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


STATE_AT_TTL_S = 120  # the state before each chunk, kept this long for rewinds (seconds ahead)


def chunk_result_key(room: str, sequence: int) -> str:
    return f"chunk:{room}:{sequence}"


def state_key(room: str, sequence: int | None = None) -> str:
    """The stream's latest state, or (with ``sequence``) the state just before that chunk."""
    return f"state:{room}" if sequence is None else f"state:{room}@{sequence}"


def _start_session(eng, st: Store, job: dict, room: str, seq: int):
    """(session, state blob it came from, error): the session that makes chunk ``seq``."""
    blob = st.get(state_key(room))
    parent = job.get("parent")
    if blob is None and seq == 0 and parent:
        # A branch: the room rewinds to a chunk of another stream, to make it again under new
        # steering. It starts from the state just before that chunk (nothing if it was the
        # first of its stream: then the branch starts fresh, as that stream did).
        blob = st.get(state_key(str(parent["stream"]), int(parent["sequence"])))
        if blob is not None:
            session = eng.restore(blob)
            session.sequence = 0
            return session, blob, None
    session = eng.restore(blob) if blob else None
    if session is None:
        if seq != 0:
            return None, None, {"room": room, "sequence": seq, "error": "no state for this room"}
        return eng.session(int(job.get("seed", 0))), None, None
    if session.sequence != seq:
        error = {"room": room, "sequence": seq, "error": "stale", "next_sequence": session.sequence}
        return None, None, error
    return session, blob, None


SPLICE_GUARD_S = 0.02  # listeners switch this long (an Opus frame) before the audio differs


def _splice_plan(eng, job: dict):
    """The Splice a branch job asks for (``splice``: ``keep_s`` seconds of the parent chunk to
    keep, ``steering`` to ramp to after them), or None for a whole new chunk."""
    splice = job.get("splice")
    if not splice or not job.get("parent") or job.get("reset"):
        return None
    keep_s = float(splice.get("keep_s", 0.0))
    # frame f of a chunk is complete once step f is: keep a frame more than asked for, since
    # the switch happens a little before the first sample that differs
    keep_steps = math.ceil(keep_s * eng.frame_rate) + 1
    if not 0 < keep_steps < eng.chunk_frames:
        return None
    from generation.lm.stream import Splice  # torch: only where a model runs

    return Splice(keep_steps, Steering.from_dict(splice["steering"]))


def _parent_codes(st: Store, parent: dict, n_codebooks: int) -> np.ndarray | None:
    blob = st.get(chunk_result_key(str(parent["stream"]), int(parent["sequence"])))
    if blob is None:
        return None
    raw = np.frombuffer(base64.b64decode(json.loads(blob)["codes"]), dtype=np.int16)
    return raw.reshape(n_codebooks, -1)


def splice_point_s(old: np.ndarray, new: np.ndarray, sample_rate: int) -> float:
    """Where listeners may switch from the old chunk to its remake: a guard before the first
    sample that differs (to float error) between the two, 0.0 when they differ from the start.
    Measured on the decoded audio, not assumed from the tokens kept."""
    n = min(len(old), len(new))
    differ = np.flatnonzero(np.abs(old[:n] - new[:n]) > 1e-4)
    first = int(differ[0]) if len(differ) else n
    return max(0.0, first / sample_rate - SPLICE_GUARD_S)


def run_room_jobs(jobs: list[dict], out_dir: str, eng=None, st: Store | None = None) -> list[dict]:
    """The work of rooms_next_chunks, callable in-process (the embedded default does).

    A job: ``room`` (the stream's key), ``sequence`` (the chunk it wants, 0 for a stream's
    first), ``seed``, ``steering`` (Steering.as_dict, or None to keep the stream's), ``reset``
    (start the music afresh), and for the first chunk of a branch ``parent`` (``stream``,
    ``sequence``: the chunk of the other stream this one remakes). A branch may also ask for a
    ``splice`` (``keep_s``, ``steering``): the parent chunk is made again under ``steering``
    (its own) for its first ``keep_s`` seconds, the same music, and then turns to the splice's
    steering; the result's ``splice_s`` says from where listeners should take the remake."""
    eng = eng or engine()
    st = st or store()
    results: dict[int, dict] = {}
    todo, sessions, steerings, befores, splices = [], [], [], [], []
    for i, job in enumerate(jobs):
        room, seq = str(job["room"]), int(job["sequence"])
        done = st.get(chunk_result_key(room, seq))
        if done is not None:
            results[i] = {**json.loads(done), "reused": True}
            continue
        session, before, error = _start_session(eng, st, job, room, seq)
        if error is not None:
            results[i] = error
            continue
        steering = Steering.from_dict(job["steering"]) if job.get("steering") else None
        if job.get("reset"):
            session.hard_reset(steering)
            steering = None
        splice = _splice_plan(eng, job)
        old_codes = (
            _parent_codes(st, job["parent"], eng.model.config.n_codebooks) if splice else None
        )
        todo.append(i)
        sessions.append(session)
        steerings.append(steering)
        befores.append(before)
        splices.append((splice, session.decoder, old_codes) if old_codes is not None else None)
    if sessions:
        started = time.monotonic()
        chunks = eng.next_chunks(sessions, steerings, [p[0] if p else None for p in splices])
        metrics.room_batch_observe(chunks, elapsed_s=time.monotonic() - started)
        for i, session, chunk, before, planned in zip(
            todo, sessions, chunks, befores, splices, strict=True
        ):
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
            if planned is not None:
                splice, decoder, old_codes = planned
                old_pcm = eng.decode_codes(old_codes, decoder)
                result["splice_s"] = round(splice_point_s(old_pcm, chunk.pcm, eng.sample_rate), 4)
                result["provenance"] = {
                    **chunk.provenance,
                    "splice": {"keep_steps": splice.keep_steps, "splice_s": result["splice_s"]},
                }
            items = {
                chunk_result_key(room, chunk.sequence): json.dumps(result).encode(),
                state_key(room): session.to_bytes(),
            }
            ttls = dict.fromkeys(items, RESULT_TTL_S)
            if before is not None:  # kept for a rewind to this chunk
                items[state_key(room, chunk.sequence)] = before
                ttls[state_key(room, chunk.sequence)] = STATE_AT_TTL_S
            st.set_many(items, ttls)  # one round trip per chunk
            results[i] = {**result, "reused": False}
    return [results[i] for i in range(len(jobs))]


def audition_result_key(key: str) -> str:
    return f"audition:{key}"


def run_audition_jobs(
    jobs: list[dict], out_dir: str, eng=None, st: Store | None = None
) -> list[dict]:
    """Previews: each job continues a room's stream from its latest state for ``seconds`` under
    a proposal's steering, without touching the room's own state (a copy runs).

    A job: ``key`` (the audition's name, also its file name), ``stream`` (the room's stream
    key), ``steering`` (Steering.as_dict), ``seconds`` and ``seed`` (used when the stream has no
    state yet). Idempotent by key. Batched: all previews advance together, chunk by chunk."""
    eng = eng or engine()
    st = st or store()
    results: dict[int, dict] = {}
    todo, sessions, steerings = [], [], []
    for i, job in enumerate(jobs):
        key = str(job["key"])
        done = st.get(audition_result_key(key))
        if done is not None:
            results[i] = {**json.loads(done), "reused": True}
            continue
        blob = st.get(state_key(str(job["stream"])))
        session = eng.restore(blob) if blob else eng.session(int(job.get("seed", 0)))
        if blob is None:
            session.hard_reset(Steering.from_dict(job["steering"]))
        todo.append(i)
        sessions.append(session)
        steerings.append(Steering.from_dict(job["steering"]) if blob else None)
    if sessions:
        seconds = max(float(j.get("seconds", 5.0)) for j in (jobs[i] for i in todo))
        rounds = max(1, round(seconds * eng.frame_rate / eng.chunk_frames))
        pieces: list[list[np.ndarray]] = [[] for _ in sessions]
        provenance = [{} for _ in sessions]
        for n in range(rounds):
            chunks = eng.next_chunks(sessions, steerings if n == 0 else [None] * len(sessions))
            for piece, chunk, prov in zip(pieces, chunks, provenance, strict=True):
                piece.append(chunk.pcm)
                prov.setdefault("first", chunk.provenance)
        for i, session, piece, prov in zip(todo, sessions, pieces, provenance, strict=True):
            key = str(jobs[i]["key"])
            path = Path(out_dir) / "auditions" / f"{key}.ogg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pcm = np.concatenate(piece)
            write_chunk(path, pcm, eng.sample_rate)
            result = {
                "key": key,
                "path": str(path),
                "duration_s": len(pcm) / eng.sample_rate,
                "steering": session.steering.as_dict(),
                "provenance": {**prov["first"], "kind": "audition", "chunks": len(piece)},
            }
            st.set_many({audition_result_key(key): json.dumps(result).encode()}, RESULT_TTL_S)
            results[i] = {**result, "reused": False}
    return [results[i] for i in range(len(jobs))]


def write_chunk(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    tmp = path.with_suffix(".tmp")
    soundfile.write(tmp, pcm, sample_rate, format=CHUNK_FORMAT[0], subtype=CHUNK_FORMAT[1])
    tmp.replace(path)  # readers never see half a file


@shared_task(name="generation.tasks.rooms_next_chunks", queue="gpu", acks_late=True)
def rooms_next_chunks(jobs: list[dict], out_dir: str, bell: str | None = None) -> list[dict]:
    """Rooms' next chunks; rings `bell` (the conductor's) when their results are stored."""
    try:
        return run_room_jobs(jobs, out_dir)
    finally:
        if bell:
            store().ring(bell)


@shared_task(name="generation.tasks.auditions_render", queue="gpu", acks_late=True)
def auditions_render(jobs: list[dict], out_dir: str, bell: str | None = None) -> list[dict]:
    try:
        return run_audition_jobs(jobs, out_dir)
    finally:
        if bell:
            store().ring(bell)


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
