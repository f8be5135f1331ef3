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
import io
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
from generation.resident import ResidentRooms, cache_bytes, default_capacity
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
    for all of them, or one per key. With `unless`, it writes nothing when that key exists, and
    says whether it wrote (the first writer of a chunk wins: see run_room_jobs).

    A store also carries doorbells: `ring(bell)` wakes whoever is in (or next enters)
    `wait(bell, timeout_s)`; rings before a wait are kept (one, not a count), so a ring is never
    lost between two waits. The conductor sleeps on one between ticks, and a worker that has
    finished a batch rings it, so results are collected at once instead of on the next tick."""

    def get(self, key: str) -> bytes | None: ...
    def set_many(
        self, items: dict[str, bytes], ttl_s: int | dict[str, int], unless: str | None = None
    ) -> bool: ...
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

    def set_many(
        self, items: dict[str, bytes], ttl_s: int | dict[str, int], unless: str | None = None
    ) -> bool:
        with self._lock:
            if unless is not None and unless in self._data:
                return False
            self._data.update(items)
            return True

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

    # all the items, unless KEYS[1] exists: one atomic step (ARGV: value, ttl of each key)
    _SET_UNLESS = """
    if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
    for i = 2, #KEYS do
        redis.call('SET', KEYS[i], ARGV[2 * i - 3], 'EX', ARGV[2 * i - 2])
    end
    return 1
    """

    def set_many(
        self, items: dict[str, bytes], ttl_s: int | dict[str, int], unless: str | None = None
    ) -> bool:
        def ttl(key: str) -> int:
            return ttl_s[key] if isinstance(ttl_s, dict) else ttl_s

        if unless is not None:
            keys = [self.prefix + unless] + [self.prefix + k for k in items]
            args = [a for k, v in items.items() for a in (v, ttl(k))]
            return bool(self.client.eval(self._SET_UNLESS, len(keys), *keys, *args))
        pipe = self.client.pipeline(transaction=True)  # result and state land together
        for key, value in items.items():
            pipe.set(self.prefix + key, value, ex=ttl(key))
        pipe.execute()
        return True

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
_resident: ResidentRooms | None = None
_resident_lock = threading.Lock()


def resident_rooms(eng=None) -> ResidentRooms:
    """This process's resident rooms: CHORUS_RESIDENT_ROOMS sessions (0 turns residency off);
    by default as many as generation.resident.DEFAULT_BUDGET_BYTES of `eng`'s KV caches."""
    global _resident
    with _resident_lock:
        if _resident is None:
            setting = os.environ.get("CHORUS_RESIDENT_ROOMS", "").strip()
            if setting:
                capacity = int(setting)
            else:
                config = (eng or engine()).model.config
                per_session = cache_bytes(
                    dim=config.dim, layers=config.layers, context=config.context
                )
                capacity = default_capacity(per_session)
            _resident = ResidentRooms(capacity)
        return _resident


def set_resident_rooms(new: ResidentRooms | None) -> None:
    """Use another set of resident rooms (tests, benchmarks); None: the configured one."""
    global _resident
    with _resident_lock:
        _resident = new


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


def _start_session(eng, st: Store, job: dict, room: str, seq: int, held: ResidentRooms):
    """(session, state blob it came from, error, resident): the session that makes chunk
    ``seq``; the one this process holds for the room (`held`, then `resident` is True) when
    the store's state is the one it wrote."""
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
            return session, blob, None, False
    session = held.take(room, blob, eng)
    resident = session is not None
    if session is None and blob:
        session = eng.restore(blob)
    if session is None:
        if seq != 0:
            error = {"room": room, "sequence": seq, "error": "no state for this room"}
            return None, None, error, False
        return eng.session(int(job.get("seed", 0))), None, None, False
    if session.sequence != seq:
        if resident:  # an old job: the room stays as it is, and resident
            held.keep(room, session, blob)
        error = {"room": room, "sequence": seq, "error": "stale", "next_sequence": session.sequence}
        return None, None, error, False
    return session, blob, None, resident


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


def chunk_path(out_dir: str, room: str, sequence: int, attempt: int = 1) -> Path:
    """Where a chunk's audio goes. A second ask for the same chunk (the conductor's retry,
    which may run beside a slow first copy) writes a file of its own: copies never overwrite
    each other's audio, and the one whose result the store keeps names its file."""
    name = f"{sequence:08d}.ogg" if attempt <= 1 else f"{sequence:08d}-a{attempt}.ogg"
    return Path(out_dir) / room / name


def run_room_jobs(
    jobs: list[dict],
    out_dir: str,
    eng=None,
    st: Store | None = None,
    *,
    worker: str | None = None,
    resident: ResidentRooms | None = None,
) -> list[dict]:
    """The work of rooms_next_chunks, callable in-process (the embedded default does).

    A job: ``room`` (the stream's key), ``sequence`` (the chunk it wants, 0 for a stream's
    first), ``seed``, ``steering`` (Steering.as_dict, or None to keep the stream's), ``reset``
    (start the music afresh), and for the first chunk of a branch ``parent`` (``stream``,
    ``sequence``: the chunk of the other stream this one remakes). A branch may also ask for a
    ``splice`` (``keep_s``, ``steering``): the parent chunk is made again under ``steering``
    (its own) for its first ``keep_s`` seconds, the same music, and then turns to the splice's
    steering; the result's ``splice_s`` says from where listeners should take the remake.
    ``attempt`` (above 1: the conductor asked again) only changes the audio's file name.

    Rooms stay resident (`resident`, by default this process's `resident_rooms`): a room whose
    state in the store is the one this process wrote last continues from the session it holds,
    caches and all, instead of restoring it (generation/resident.py). Results name the
    `worker` that made them, so the conductor can send the room's next chunk back to it.

    Two copies of one chunk (a retry beside a slow first ask): the first to store its result
    wins, result and state together; the other's are dropped and it answers with the winner's
    result (``reused``). The room then goes on from the state matching the chunk recorded."""
    eng = eng or engine()
    st = st or store()
    held = resident if resident is not None else resident_rooms(eng)
    results: dict[int, dict] = {}
    todo, sessions, steerings, befores, splices, residents = [], [], [], [], [], []
    for i, job in enumerate(jobs):
        room, seq = str(job["room"]), int(job["sequence"])
        if job.get("parent"):
            # the room moves to this branch: the stream it leaves is not continued (were it,
            # the byte check would restore it), so its session must not sit in the bound
            held.drop(str(job["parent"]["stream"]))
        done = st.get(chunk_result_key(room, seq))
        if done is not None:
            results[i] = {**json.loads(done), "reused": True}
            continue
        session, before, error, was_resident = _start_session(eng, st, job, room, seq, held)
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
        residents.append(was_resident)
        splices.append((splice, session.decoder, old_codes) if old_codes is not None else None)
    if sessions:
        started = time.monotonic()
        chunks = eng.next_chunks(sessions, steerings, [p[0] if p else None for p in splices])
        metrics.room_batch_observe(chunks, elapsed_s=time.monotonic() - started)
        for i, session, chunk, before, planned, was_resident in zip(
            todo, sessions, chunks, befores, splices, residents, strict=True
        ):
            room = str(jobs[i]["room"])
            path = chunk_path(out_dir, room, chunk.sequence, int(jobs[i].get("attempt") or 1))
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
                "resident": was_resident,  # continued the session held here (no restore)
            }
            if worker:
                result["worker"] = worker
            if planned is not None:
                splice, decoder, old_codes = planned
                old_pcm = eng.decode_codes(old_codes, decoder)
                result["splice_s"] = round(splice_point_s(old_pcm, chunk.pcm, eng.sample_rate), 4)
                result["provenance"] = {
                    **chunk.provenance,
                    "splice": {"keep_steps": splice.keep_steps, "splice_s": result["splice_s"]},
                }
            key, state = chunk_result_key(room, chunk.sequence), session.to_bytes()
            items = {key: json.dumps(result).encode(), state_key(room): state}
            ttls = dict.fromkeys(items, RESULT_TTL_S)
            if before is not None:  # kept for a rewind to this chunk
                items[state_key(room, chunk.sequence)] = before
                ttls[state_key(room, chunk.sequence)] = STATE_AT_TTL_S
            if st.set_many(items, ttls, unless=key):  # one round trip per chunk
                held.keep(room, session, state)
                results[i] = {**result, "reused": False}
                continue
            # another copy of this chunk was stored first: its result and state stand
            winner = st.get(key)
            if winner is not None and json.loads(winner).get("path") != str(path):
                path.unlink(missing_ok=True)
            results[i] = {**json.loads(winner), "reused": True} if winner else {**result}
    return [results[i] for i in range(len(jobs))]


def audition_result_key(key: str) -> str:
    return f"audition:{key}"


def audition_progress_key(key: str) -> str:
    return f"audition-progress:{key}"


# Rung by the conductor whenever it asks for rooms' chunks (above all a remake a vote waits on:
# collab.conductor): a batch of previews that is running checks it between chunks and hands the
# engine over (it yields), so rooms never wait behind seconds of previews.
URGENT_BELL = "urgent"
AUDITION_PROGRESS_TTL_S = 300


def _audition_progress(session, pcm: np.ndarray, rounds_done: int, first: dict) -> bytes:
    """A preview cut short: its stream state, the audio made so far and where it stands."""
    buffer = io.BytesIO()
    meta = {"rounds_done": rounds_done, "first": first}
    np.savez(
        buffer,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        state=np.frombuffer(session.to_bytes(), dtype=np.uint8),
        pcm=pcm.astype(np.float32),
    )
    return buffer.getvalue()


def _audition_rounds(eng, job: dict) -> int:
    """Chunks a preview of ``seconds`` takes."""
    return max(1, round(float(job.get("seconds", 5.0)) * eng.frame_rate / eng.chunk_frames))


def run_audition_jobs(
    jobs: list[dict],
    out_dir: str,
    eng=None,
    st: Store | None = None,
    should_yield=None,
) -> list[dict]:
    """Previews: each job continues a room's stream from its latest state for ``seconds`` under
    a proposal's steering, without touching the room's own state (a copy runs).

    A job: ``key`` (the audition's name, also its file name), ``stream`` (the room's stream
    key), ``steering`` (Steering.as_dict), ``seconds`` and ``seed`` (used when the stream has no
    state yet). Idempotent by key. Batched: all previews advance together, chunk by chunk.

    Previews give way to rooms: a batch of 5 s previews holds the engine for several chunks'
    time, and rooms' chunks (a remake that a closed round waits on above all) must not queue
    behind it. Between chunks, ``should_yield()`` (by default: the store's URGENT_BELL rang since
    the batch began) may stop the batch; each unfinished preview's progress (state, audio so
    far) is kept in the store, and its result is ``{"key": ..., "yielded": True}``. Running the
    same job again carries on from there."""
    eng = eng or engine()
    st = st or store()
    if should_yield is None:
        st.wait(URGENT_BELL, 0)  # a ring from before this batch started was not for it

        def should_yield() -> bool:
            return st.wait(URGENT_BELL, 0)

    results: dict[int, dict] = {}
    todo, sessions, steerings, pieces, firsts, left, totals = [], [], [], [], [], [], []
    for i, job in enumerate(jobs):
        key = str(job["key"])
        done = st.get(audition_result_key(key))
        if done is not None:
            results[i] = {**json.loads(done), "reused": True}
            continue
        rounds = _audition_rounds(eng, job)
        totals.append(rounds)
        progress = st.get(audition_progress_key(key))
        if progress is not None:
            with np.load(io.BytesIO(progress)) as saved:
                meta = json.loads(saved["meta"].tobytes())
                session = eng.restore(saved["state"].tobytes())
                pieces.append([saved["pcm"]])
            steerings.append(None)  # the session is under the preview's steering already
            firsts.append(meta["first"])
            left.append(rounds - int(meta["rounds_done"]))
        else:
            blob = st.get(state_key(str(job["stream"])))
            session = eng.restore(blob) if blob else eng.session(int(job.get("seed", 0)))
            if blob is None:
                session.hard_reset(Steering.from_dict(job["steering"]))
            steerings.append(Steering.from_dict(job["steering"]) if blob else None)
            pieces.append([])
            firsts.append(None)
            left.append(rounds)
        todo.append(i)
        sessions.append(session)
    active = [n for n in range(len(sessions)) if left[n] > 0]
    while active:
        chunks = eng.next_chunks([sessions[n] for n in active], [steerings[n] for n in active])
        for n, chunk in zip(active, chunks, strict=True):
            pieces[n].append(chunk.pcm)
            firsts[n] = firsts[n] or chunk.provenance
            steerings[n] = None
            left[n] -= 1
        active = [n for n in active if left[n] > 0]
        if active and should_yield():
            break
    for n, i in enumerate(todo):
        key = str(jobs[i]["key"])
        pcm = np.concatenate(pieces[n]) if pieces[n] else np.zeros(0, dtype=np.float32)
        if left[n] > 0:  # yielded: kept for the next run of this job
            blob = _audition_progress(sessions[n], pcm, totals[n] - left[n], firsts[n])
            st.set_many({audition_progress_key(key): blob}, AUDITION_PROGRESS_TTL_S)
            results[i] = {"key": key, "yielded": True}
            continue
        path = Path(out_dir) / "auditions" / f"{key}.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_chunk(path, pcm, eng.sample_rate)
        result = {
            "key": key,
            "path": str(path),
            "duration_s": len(pcm) / eng.sample_rate,
            "steering": sessions[n].steering.as_dict(),
            "provenance": {
                **firsts[n],
                "kind": "audition",
                "chunks": totals[n],
            },
        }
        st.set_many({audition_result_key(key): json.dumps(result).encode()}, RESULT_TTL_S)
        results[i] = {**result, "reused": False}
    return [results[i] for i in range(len(jobs))]


def yielded(jobs: list[dict], results: list[dict]) -> list[dict]:
    """The jobs of a preview batch that gave way, to be run again (they carry on)."""
    return [job for job, result in zip(jobs, results, strict=True) if result.get("yielded")]


def write_chunk(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    tmp = path.with_suffix(".tmp")
    soundfile.write(tmp, pcm, sample_rate, format=CHUNK_FORMAT[0], subtype=CHUNK_FORMAT[1])
    tmp.replace(path)  # readers never see half a file


@shared_task(name="generation.tasks.rooms_next_chunks", queue="gpu", acks_late=True, bind=True)
def rooms_next_chunks(self, jobs: list[dict], out_dir: str, bell: str | None = None) -> list[dict]:
    """Rooms' next chunks; rings `bell` (the conductor's) when their results are stored. Each
    result names this worker (its Celery node name), where the conductor sends the room next."""
    try:
        return run_room_jobs(jobs, out_dir, worker=self.request.hostname or None)
    finally:
        if bell:
            store().ring(bell)


@shared_task(name="generation.tasks.auditions_render", queue="gpu", acks_late=True)
def auditions_render(jobs: list[dict], out_dir: str, bell: str | None = None) -> list[dict]:
    """Previews; those that gave way to a remake (run_audition_jobs) go to the back of the
    queue, behind it, and carry on from where they stopped."""
    try:
        results = run_audition_jobs(jobs, out_dir)
        again = yielded(jobs, results)
        if again:
            auditions_render.apply_async((again, out_dir, bell), queue="gpu")
        return results
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
