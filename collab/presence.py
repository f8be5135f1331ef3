"""How many connections listen to each room: a counter in the cache, up on join, down on leave.

The cache is Redis in service mode (one count across every web process) and the process's
local memory in the embedded default. A web process that dies with sockets open leaves its
connections counted until the key expires, a day after the room's last join. The conductor
(collab.conductor) generates music for rooms whose count is above zero, so such a room keeps
costing its share of a GPU until then.
"""

from __future__ import annotations

from django.core.cache import cache

PRESENCE_TTL_S = 24 * 3600


def _key(room_id) -> str:
    return f"room:{room_id}:presence"


def presence_join(*, room_id) -> int:
    """Count one more connection to the room; the new count."""
    key = _key(room_id)
    cache.add(key, 0, timeout=PRESENCE_TTL_S)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.add(key, 1, timeout=PRESENCE_TTL_S)
        return 1
    cache.touch(key, PRESENCE_TTL_S)
    return count


def presence_leave(*, room_id) -> int:
    """Count one connection fewer; the new count (never below 0)."""
    key = _key(room_id)
    try:
        count = cache.decr(key)
    except ValueError:  # expired: nobody is counted any more
        return 0
    if count < 0:  # the key expired and came back while this connection was open
        cache.incr(key, -count)
        return 0
    return count


def presence_count(*, room_id) -> int:
    return max(0, int(cache.get(_key(room_id), 0)))


def presence_counts(room_ids) -> dict[str, int]:
    """Counts of many rooms in one cache round trip, by str(room id); 0 for rooms nobody joined."""
    keys = {_key(room_id): str(room_id) for room_id in room_ids}
    found = cache.get_many(list(keys))
    return {room: max(0, int(found.get(key, 0))) for key, room in keys.items()}
