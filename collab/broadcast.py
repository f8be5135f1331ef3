"""What a room's listeners are told: frames built from rows, sent to the room's group on commit.

Services call the announcements below where a room's state changes, inside their transaction:
the frame is built at once, from what the transaction sees, and sent only once it commits, so
nobody hears of a change that rolled back. Each broadcast takes the room's next sequence number
(`seq`, a counter in the cache: Redis in service mode, local memory in the embedded default), so
a client that sees a gap knows it missed something and asks for a snapshot (docs/protocol.md).

Tallies and presence are not sent once per change: a change marks the room *dirty*, and the
consumers' ticker (collab.consumers) sends the latest state at most `THROTTLE_S` apart per room,
whichever web process claims the moment first (`claim_due`). Audio never goes through the
channel layer: chunks are announced by URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from datetime import datetime
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse

from collab import protocol
from collab.models import Audition, Chunk, Proposal, Room, Round, Vote
from collab.presence import presence_count
from collab.selectors import (
    ballot,
    participant_key,
    participants_muted,
    proposal_list_pending,
    room_can_host,
    round_current,
)
from collab.voting import ANCHOR

logger = logging.getLogger(__name__)

CHUNKS_IN_SNAPSHOT = 5
PENDING_IN_SNAPSHOT = 50
# Seconds between two sends of each throttled frame, per room: tallies at most 4 a second.
THROTTLE_S = {"tally": 0.25, "presence": 1.0}
DIRTY_TTL_S = 60  # a mark nobody flushes (no listeners left) goes away by itself
SEND_TIMEOUT_S = 5.0


def room_group(room_id) -> str:
    return f"room-{room_id}"


# --- Views: rows as they appear in frames ------------------------------------------------------


def unix(moment: datetime | None) -> float | None:
    """A time as the protocol gives it: unix seconds on the server's clock."""
    return None if moment is None else round(moment.timestamp(), 3)


def room_view(room: Room) -> dict:
    return {
        "id": str(room.pk),
        "title": room.title,
        "slug": room.slug,
        "host": room.host.get_username(),
        "visibility": room.visibility,
        "mode": room.mode,
        "status": room.status,
        "anchor_prompt": room.anchor_prompt,
        "round_length_s": room.round_length_s,
        "slow_mode_s": room.slow_mode_s,
        "who_may_propose": room.who_may_propose,
        "min_account_age_days": room.min_account_age_days,
        "login_required": room.login_required,
        # A chunk's start_s counts from here: it plays at timeline_origin + start_s.
        "timeline_origin": unix(room.created_at),
    }


def round_view(round: Round | None) -> dict | None:
    if round is None:
        return None
    return {
        "number": round.number,
        "opened_at": unix(round.opened_at),
        "ends_at": unix(round.ends_at),
    }


def proposal_view(proposal: Proposal, *, votes: int | None = None) -> dict:
    """A proposal as listeners see it. Never the author's key: for a signed-out author it holds
    their session key."""
    view = {
        "id": proposal.pk,
        "kind": proposal.kind,
        "text": proposal.text,
        "control": proposal.control,
        "status": proposal.status,
        "author": proposal.author.get_username() if proposal.author_id else None,
    }
    if votes is not None:
        view["votes"] = votes
    return view


def ballot_view(round: Round | None) -> list[dict]:
    """The round's ballot, most voted first, each proposal with its votes."""
    if round is None:
        return []
    entries = []
    for p in ballot(round=round).select_related("author", "audition"):
        entry = proposal_view(p, votes=p.vote_count)
        try:
            entry["audition"] = audition_view(p.audition)
        except Audition.DoesNotExist:
            entry["audition"] = None
        entries.append(entry)
    return entries


def blend_view(room: Room) -> list[dict]:
    """What the music is made of (or turning toward): each part of the room's blend, labelled."""
    ids = [int(k) for k in room.current_blend if k != ANCHOR and str(k).isdigit()]
    proposals = {str(p.pk): p for p in Proposal.objects.filter(pk__in=ids)}
    parts = []
    for key, weight in sorted(room.current_blend.items(), key=lambda item: -item[1]):
        if key == ANCHOR:
            kind, label = "anchor", room.anchor_prompt
        elif key in proposals:
            kind, label = proposals[key].kind, proposals[key].text
        else:
            continue
        parts.append({"key": key, "kind": kind, "label": label, "weight": round(weight, 4)})
    return parts


def chunk_audio_url(chunk: Chunk, room: Room | None = None) -> str:
    """Where listeners fetch a chunk's audio over HTTP: collab.views.chunk_audio, which checks
    that the caller may see the room. An unlisted room's URL carries its share token (every
    listener got in with it); a private room's listeners are its host and admins, by cookie."""
    room = room if room is not None else chunk.room
    url = reverse("room-chunk-audio", kwargs={"room_id": chunk.room_id, "sequence": chunk.sequence})
    query = {}
    if chunk.revision:  # a remade chunk has a URL of its own: caches never mix the two
        query["r"] = chunk.revision
    if room.visibility == Room.Visibility.UNLISTED:
        query["share"] = room.share_token
    return url + ("?" + urlencode(query) if query else "")


def chunk_view(chunk: Chunk, room: Room | None = None) -> dict:
    view = {
        "id": chunk.pk,
        "sequence": chunk.sequence,
        "revision": chunk.revision,
        "start_s": chunk.start_s,
        "duration_s": chunk.duration_s,
        "url": chunk_audio_url(chunk, room),
    }
    splice_s = (chunk.provenance or {}).get("splice_s") if chunk.revision else None
    if splice_s:  # a remake that is the same music up to here: switch to it at this point
        view["splice_s"] = splice_s
    return view


def audition_url(audition: Audition, room: Room | None = None) -> str:
    room = room if room is not None else audition.room
    url = reverse(
        "room-audition-audio",
        kwargs={"room_id": audition.room_id, "proposal_id": audition.proposal_id},
    )
    if room.visibility == Room.Visibility.UNLISTED:
        url += "?" + urlencode({"share": room.share_token})
    return url


def audition_view(audition: Audition | None, room: Room | None = None) -> dict | None:
    """A proposal's preview as listeners see it, or None while there is none (yet)."""
    if audition is None or audition.status != Audition.Status.READY:
        return None
    return {
        "id": audition.pk,
        "url": audition_url(audition, room),
        "duration_s": audition.duration_s,
    }


def viewer_role(room: Room, user, anon_key: str | None) -> str:
    """ "host", "participant" (may propose and vote, gates allowing) or "listener"."""
    if room_can_host(room, user):
        return "host"
    actor = participant_key(user, anon_key)
    if actor is None or (room.login_required and not actor.startswith("user:")):
        return "listener"
    return "participant"


def snapshot(*, room_id, user, anon_key: str | None) -> dict:
    """Everything a client needs to draw the room, as of now, with the room's current seq."""
    # The seq first: a change that lands between here and the reads below is then both in the
    # snapshot and announced after it, and applying it twice is harmless (frames carry state).
    seq = current_seq(room_id)
    room = Room.objects.select_related("host").get(pk=room_id)
    current = round_current(room=room)
    actor = participant_key(user, anon_key)
    voted_for = None
    if current is not None and actor is not None:
        voted_for = (
            Vote.objects.filter(round=current, voter_key=actor)
            .values_list("proposal_id", flat=True)
            .first()
        )
    chunks = list(Chunk.objects.filter(room=room).order_by("-sequence")[:CHUNKS_IN_SNAPSHOT])
    role = viewer_role(room, user, anon_key)
    frame = {
        "type": "snapshot",
        "protocol": protocol.VERSION,
        "seq": seq,
        "server_now": round(time.time(), 3),
        "room": room_view(room),
        "state": room.status,
        "round": round_view(current),
        "ballot": ballot_view(current),
        "blend": blend_view(room),
        "steering": room.current_steering,
        "chunks": [chunk_view(c, room) for c in reversed(chunks)],
        "presence": presence_count(room_id=room.pk),
        "you": {"role": role, "voted_for": voted_for},
    }
    if role == "host":
        pending = proposal_list_pending(room=room).select_related("author")
        frame["pending"] = [proposal_view(p) for p in pending[:PENDING_IN_SNAPSHOT]]
        frame["muted"] = participants_muted(room=room, now=time.time())
    return frame


# --- Sending ----------------------------------------------------------------------------------

_server_loop: asyncio.AbstractEventLoop | None = None
_send_lock = threading.Lock()  # one process numbers and sends its broadcasts in one order
_sending: set[asyncio.Task] = set()  # sends started on the loop's own thread, until they finish


def use_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Send through this event loop (the web server's; consumers register it on connect).

    The in-memory channel layer's queues belong to that loop: putting into them from another
    thread's loop would not wake it. Where no server loop runs (a Celery worker, a test without
    sockets), sends go through a loop of their own (async_to_sync)."""
    global _server_loop
    _server_loop = loop


_own_loop: asyncio.AbstractEventLoop | None = None
_own_loop_pid: int | None = None
_own_loop_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    """A loop of this process's own, on a daemon thread, for processes with no server loop (the
    conductor, Celery workers). The Redis layers keep a connection per event loop: a fresh loop
    per send (async_to_sync) would open one every time, 6 to 25 ms before each announcement."""
    global _own_loop, _own_loop_pid
    with _own_loop_lock:
        # a forked child (a Celery pool process) has the parent's loop but not its thread
        if _own_loop is None or _own_loop.is_closed() or _own_loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="chorus-broadcast", daemon=True)
            thread.start()
            _own_loop, _own_loop_pid = loop, os.getpid()
        return _own_loop


def _deliver(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _server_loop
    if loop is None or loop.is_closed() or not loop.is_running():
        if isinstance(layer, InMemoryChannelLayer):
            # its queues belong to whichever loop serves the consumers (tests, the embedded
            # default): async_to_sync finds that loop when there is one
            async_to_sync(layer.group_send)(group, event)
            return
        loop = _sender_loop()
        asyncio.run_coroutine_threadsafe(layer.group_send(group, event), loop).result(
            SEND_TIMEOUT_S
        )
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # called on the loop's own thread: it cannot wait for itself
        task = loop.create_task(layer.group_send(group, event))
        _sending.add(task)
        task.add_done_callback(_sending.discard)
        return
    asyncio.run_coroutine_threadsafe(layer.group_send(group, event), loop).result(SEND_TIMEOUT_S)


def deliver(group: str, event: dict) -> None:
    """Send a raw channel-layer event to a group now, through the server's loop where there is
    one (see use_loop). For events that are not room frames: webapp.moderation.realtime closes
    a sanctioned account's sockets with it."""
    _deliver(group, event)


def _seq_key(room_id) -> str:
    return f"room:{room_id}:seq"


def next_seq(room_id) -> int:
    key = _seq_key(room_id)
    try:
        return cache.incr(key)
    except ValueError:  # the room's first broadcast
        cache.add(key, 0, timeout=None)
        return cache.incr(key)


def current_seq(room_id) -> int:
    return int(cache.get(_seq_key(room_id), 0))


def send(
    room_id,
    frame: dict,
    *,
    hosts_only: bool = False,
    visibility: str | None = None,
    moderation: str | None = None,
    close_code: int | None = None,
    close_everyone: bool = False,
) -> None:
    """Number the frame with the room's next seq and send it to the room's group now.

    `hosts_only`: listeners other than the host get a noop with the same seq. `visibility` and
    `moderation`: the room's after a change, so that consumers drop viewers who may no longer
    see it. `close_code`: after the frame, sockets close with it: every one (`close_everyone`)
    or those who may no longer see the room.
    A failure is logged, never raised: the rows hold the truth, and a client that misses a frame
    sees the gap in seq and asks for a snapshot."""
    try:
        with _send_lock:
            seq = next_seq(room_id)
            numbered = {"type": frame["type"], "seq": seq, **frame}
            event = {
                "type": "room.frame",
                "seq": seq,
                "text": json.dumps(numbered, separators=(",", ":")),
                "hosts_only": hosts_only,
            }
            if visibility is not None:
                event["visibility"] = visibility
            if moderation is not None:
                event["moderation"] = moderation
            if close_code is not None:
                event["close_code"] = close_code
                event["close_everyone"] = close_everyone
            _deliver(room_group(room_id), event)
    except Exception:
        logger.warning("room %s: could not announce %s", room_id, frame.get("type"), exc_info=True)


def _send_on_commit(room_id, frame: dict, **options) -> None:
    transaction.on_commit(lambda: send(room_id, frame, **options))


def send_to_participant(room_id, tag: str, frame: dict, *, close_code: int | None = None) -> None:
    """Send a frame (no seq: it is not the room's news) to one participant's sockets in the
    room, by participant tag (collab.selectors.participant_tag), and close them with
    `close_code` if given. Through the room's group, so it reaches them in every process."""
    event = {
        "type": "room.frame",
        "to": tag,
        "text": json.dumps(frame, separators=(",", ":")),
    }
    if close_code is not None:
        event["close_code"] = close_code
    try:
        _deliver(room_group(room_id), event)
    except Exception:
        logger.warning("room %s: could not reach a participant", room_id, exc_info=True)


# --- Announcements: services call these inside their transaction -------------------------------


def proposal_changed(proposal: Proposal, *, public: bool) -> None:
    """A proposal was made or moderated. Not `public` (waiting for the host, or rejected before
    it reached the ballot): only the host hears of it."""
    frame = {"type": "proposal", "proposal": proposal_view(proposal)}
    _send_on_commit(proposal.room_id, frame, hosts_only=not public)


def tally_changed(*, room_id) -> None:
    """Votes changed: the next tick sends the room's tally (coalescing every change till then)."""
    transaction.on_commit(lambda: _mark_dirty(room_id, "tally"))


def steering_changed(room: Room) -> None:
    """The music's blend changed outside a round's close (the host vetoed a part of it)."""
    frame = {"type": "steering", "blend": blend_view(room), "steering": room.current_steering}
    _send_on_commit(room.pk, frame)


def round_closed(*, room: Room, closed: Round, following: Round, cut: bool = False) -> None:
    """A round closed into a blend; `following` is open now. `cut`: the host's hard cut, heard
    at once rather than ramped in."""
    frame = {
        "type": "round_result",
        "round": closed.number,
        "tally": closed.tally,
        "blend": blend_view(room),
        "steering": room.current_steering,
        "cut": cut,
        "next_round": round_view(following),
        "countdown": round(max(0.0, following.ends_at.timestamp() - time.time()), 3),
        "ballot": ballot_view(following),
    }
    _send_on_commit(room.pk, frame)


def room_changed(room: Room) -> None:
    """The room's status or settings changed (paused, resumed, ended, slow mode...)."""
    frame = {
        "type": "state",
        "status": room.status,
        "room": room_view(room),
        "round": round_view(round_current(room=room)),
    }
    _send_on_commit(room.pk, frame, visibility=room.visibility)


def room_moderated(room: Room, *, action: str, reason: str, everyone: bool) -> None:
    """Moderators closed, removed or hid the room: everyone hears why (a `moderated` frame),
    then the sockets close (4451), every one (`everyone`: the room ended) or those of people
    who may no longer see it (hidden: admins stay)."""
    frame = {
        "type": "moderated",
        "action": action,
        "reason": reason,
        "message": f"The moderators {action} this room" + (f": {reason}" if reason else "."),
    }
    _send_on_commit(
        room.pk,
        frame,
        visibility=room.visibility,
        moderation=room.moderation,
        close_code=protocol.CLOSE_MODERATED,
        close_everyone=everyone,
    )


def participant_told(room: Room, tag: str, frame: dict, *, close_code: int | None = None) -> None:
    """On commit, one participant hears of a host action on them (muted, kicked)."""
    transaction.on_commit(lambda: send_to_participant(room.pk, tag, frame, close_code=close_code))


def chunk_recorded(chunk: Chunk) -> None:
    """A chunk of the room's music is stored (or remade, with a higher `revision`): listeners
    fetch it by URL and schedule it."""
    _send_on_commit(chunk.room_id, {"type": "chunk", **chunk_view(chunk)})


def audition_ready(audition: Audition) -> None:
    """A proposal's preview is ready to play."""
    frame = {"type": "audition", "proposal_id": audition.proposal_id, **audition_view(audition)}
    _send_on_commit(audition.room_id, frame)


def presence_changed(*, room_id) -> None:
    """Someone joined or left: the next tick due for presence sends the count."""
    _mark_dirty(room_id, "presence")


# --- Throttled frames: the consumers' ticker calls these -----------------------------------------


def _dirty_key(room_id, kind: str) -> str:
    return f"room:{room_id}:dirty:{kind}"


def _mark_dirty(room_id, kind: str) -> None:
    try:
        cache.set(_dirty_key(room_id, kind), 1, timeout=DIRTY_TTL_S)
    except Exception:
        logger.warning("room %s: could not mark %s changed", room_id, kind, exc_info=True)


def claim_due(*, room_id, now: float | None = None) -> list[str]:
    """The throttled frames (`THROTTLE_S`) this process should send for the room now: those
    marked dirty whose next slot this call claims. Across processes, one claim per slot wins
    (an atomic add), so each room gets at most one tally per 0.25 s however many processes
    have listeners. The mark is cleared before the state is read, so a change that lands
    during the send marks the room again and goes out in the next slot."""
    now = time.time() if now is None else now
    keys = {kind: _dirty_key(room_id, kind) for kind in THROTTLE_S}
    dirty = cache.get_many(list(keys.values()))
    due = []
    for kind, key in keys.items():
        if key not in dirty:
            continue
        slot = int(now / THROTTLE_S[kind])
        if cache.add(f"room:{room_id}:sent:{kind}:{slot}", 1, timeout=2):
            cache.delete(key)
            due.append(kind)
    return due


def flush(*, room_id, kinds: list[str]) -> None:
    """Send the room's current tally and/or presence count (what claim_due gave)."""
    if "tally" in kinds:
        current = round_current(room=Room(pk=room_id))
        if current is not None:
            counts = {str(p.pk): p.vote_count for p in ballot(round=current)}
            frame = {
                "type": "tally",
                "round": current.number,
                "tally": counts,
                "votes": sum(counts.values()),
            }
            send(room_id, frame)
    if "presence" in kinds:
        send(room_id, {"type": "presence", "count": presence_count(room_id=room_id)})
