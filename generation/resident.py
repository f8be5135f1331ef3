"""Resident rooms: the live stream sessions a worker process keeps between chunks.

In service mode a room's state lives in the store, so any worker can continue it; restoring it
costs a forward pass over the whole context window to rebuild the KV cache (Engine.prefill),
which at 1 s chunks costs more than the chunk. A worker that made a room's last chunk still
holds that session, with its caches: if the store's state is byte for byte the one this process
wrote last for the stream, nobody else has moved the room since, and the held session *is* that
state (caches included). Anything else (another worker wrote the state, a rewind, a reset, a
store write that failed, an expired entry) falls back to restoring from the store.

    rooms = ResidentRooms(capacity=64)
    session = rooms.take(stream, blob, engine)   # the held session, or None: restore instead
    ...                                          # generate; store the new state
    rooms.keep(stream, session, new_blob)        # only once the store holds new_blob

`take` removes the entry: a session in use is held by nobody else, and one whose chunk failed
half-way is never handed out again. The bound is a count of sessions (least recently used go
first); `default_capacity` sizes it from the memory a session's caches take.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

# What the held sessions' KV caches may take by default, per worker process. On a GPU the same
# budget sits in GPU memory; CHORUS_RESIDENT_ROOMS overrides the count.
DEFAULT_BUDGET_BYTES = 512 * 2**20
MIN_CAPACITY, MAX_CAPACITY = 8, 1024


def cache_bytes(*, dim: int, layers: int, context: int, guided: bool = True) -> int:
    """Bytes of one session's KV caches: keys and values (float32) of every layer over the
    whole context window, twice with classifier-free guidance (the unconditioned cache)."""
    one = 2 * layers * context * dim * 4
    return one * (2 if guided else 1)


def default_capacity(per_session_bytes: int, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> int:
    """Sessions that fit the budget, within [MIN_CAPACITY, MAX_CAPACITY]. The shipped LM (dim
    192, 4 layers, context 256, guided) takes 3 MiB a session: 170 sessions in 512 MiB."""
    fits = budget_bytes // max(1, per_session_bytes)
    return max(MIN_CAPACITY, min(MAX_CAPACITY, int(fits)))


@dataclass
class _Held:
    session: Any  # a StreamSession (no torch import here)
    blob: bytes  # the state this process wrote to the store after the session's last chunk


class ResidentRooms:
    """A bounded, least-recently-used map of stream key -> live session. Thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, int(capacity))
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def __contains__(self, stream: str) -> bool:
        with self._lock:
            return stream in self._held

    def take(self, stream: str, blob: bytes | None, engine: Any) -> Any | None:
        """The session held for `stream` if `blob` (the store's current state) is exactly what
        this process wrote last and the session runs on `engine`; None otherwise. Either way
        the entry is gone: the caller keeps the session again once its new state is stored."""
        with self._lock:
            held = self._held.pop(stream, None)
            if (
                held is not None
                and blob is not None
                and held.blob == blob
                and held.session.engine is engine
            ):
                self.hits += 1
                return held.session
            self.misses += 1
            return None

    def keep(self, stream: str, session: Any, blob: bytes) -> None:
        """Hold `session`, whose state the store now holds as `blob`; evict the least recently
        used beyond the capacity."""
        if self.capacity == 0:
            return
        with self._lock:
            self._held.pop(stream, None)
            self._held[stream] = _Held(session, blob)
            while len(self._held) > self.capacity:
                self._held.popitem(last=False)

    def drop(self, stream: str) -> None:
        with self._lock:
            self._held.pop(stream, None)

    def clear(self) -> None:
        with self._lock:
            self._held.clear()
