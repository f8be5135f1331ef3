"""Recording feedback events: validate a batch, attach provenance, append it, apply thumbs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from webapp.errors import ServiceError
from webapp.feedback.models import FeedbackEvent
from webapp.ratelimit import ratelimit_enforce
from webapp.songs.models import Song
from webapp.songs.selectors import song_can_view
from webapp.songs.services import song_thumb

MAX_BATCH = 100
THUMBS = {FeedbackEvent.Kind.THUMB_UP: 1, FeedbackEvent.Kind.THUMB_DOWN: -1}


@dataclass(frozen=True)
class Target:
    """What an event is about, as the server knows it: its provenance for the tuning jobs."""

    model_version: str
    seed: int | None
    conditioning: dict
    song: Song | None = None  # for songs: thumbs also move the listener's like state
    # a target shown in a choice set by design (webapp/tuning/exposure.py): its set and slot
    # are the server's record, and replace whatever the client said
    choice_set: str = ""
    slot: int | None = None


# target_type -> resolve(ids, user, share tokens by id) -> {id: Target} for the ids the caller
# may see. Songs are resolved here; other apps register theirs (collab: room chunks, previews).
Resolver = Callable[[list[str], object, dict[str, str | None]], dict[str, Target]]
_resolvers: dict[str, Resolver] = {}


def register_target(target_type: str, resolve: Resolver) -> None:
    _resolvers[target_type] = resolve


def _resolve_songs(ids: list[str], user, share_tokens: dict[str, str | None]) -> dict:
    normal = {i: _normalise_uuid(i) for i in ids}
    songs = {str(s.pk): s for s in Song.objects.filter(pk__in={n for n in normal.values() if n})}
    found = {}
    for original, key in normal.items():
        song = songs.get(key or "")
        if song is None or not song_can_view(song, user, share_token=share_tokens.get(original)):
            continue
        exposure = song.exposure or {}
        conditioning = {
            "prompt": song.prompt,
            "style_tags": song.style_tags,
            "guidance": song.guidance,
        }
        if exposure:  # shown beside another candidate: the propensity of its slot
            conditioning["exposure"] = exposure
        best_of = (song.provenance or {}).get("best_of") or {}
        if best_of.get("n", 1) > 1:  # picked from n by the critic, or at random: with what chance
            conditioning["best_of"] = {k: best_of.get(k) for k in ("n", "policy", "propensity")}
        found[original] = Target(
            model_version=song.model_version,
            seed=song.seed,
            conditioning=conditioning,
            song=song,
            choice_set=str(exposure.get("choice_set", ""))[:64],
            slot=exposure.get("slot"),
        )
    return found


register_target(FeedbackEvent.TargetType.SONG, _resolve_songs)


@dataclass(frozen=True)
class EventIn:
    """One event as a client sent it, already type-checked by the serializer."""

    kind: str
    target_type: str
    target_id: str
    value: float | None = None
    position_s: float | None = None
    choice_set: str = ""
    slot: int | None = None
    client_event_id: str = ""
    client_ts: datetime | None = None
    share_token: str | None = None  # lets listeners of an unlisted song give feedback on it


@dataclass(frozen=True)
class BatchResult:
    received: int
    recorded: int  # received minus client retries already recorded


def feedback_actor(*, user, session_key: str | None) -> str:
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    if not session_key:
        raise ServiceError("Anonymous feedback needs a session.", code="no_session")
    return f"anon:{session_key}"


def _check_event(event: EventIn, index: int) -> None:
    kind = FeedbackEvent.Kind
    if event.kind == kind.PROGRESS and (event.value is None or not 0.0 <= event.value <= 1.0):
        raise ServiceError(
            f"events[{index}]: a progress event needs value, the fraction heard (0 to 1).",
            field="events",
        )
    if event.kind == kind.VOTE and not event.choice_set:
        raise ServiceError(f"events[{index}]: a vote needs its choice_set.", field="events")
    if event.slot is not None and not event.choice_set:
        raise ServiceError(
            f"events[{index}]: a slot only makes sense with a choice_set.", field="events"
        )
    if event.target_type not in _resolvers:
        raise ServiceError(
            f"events[{index}]: unknown target_type {event.target_type!r}.", field="events"
        )


def feedback_record_batch(
    *, user, session_key: str | None, events: Sequence[EventIn]
) -> BatchResult:
    """Append a batch of events atomically: all of it is recorded, or none and a 4xx says why.

    Provenance (model version, seed, conditioning) comes from the target row, never from the
    client. Retries are idempotent by (actor, client_event_id). Thumbs from signed-in users also
    update the song's like state.
    """
    actor = feedback_actor(user=user, session_key=session_key)
    ratelimit_enforce(domain="feedback", key=actor)
    if not events:
        raise ServiceError("Send at least one event.", field="events")
    if len(events) > MAX_BATCH:
        raise ServiceError(f"At most {MAX_BATCH} events per batch.", field="events")
    for index, event in enumerate(events):
        _check_event(event, index)

    targets: dict[str, dict[str, Target]] = {}
    for target_type in {e.target_type for e in events}:
        of_type = [e for e in events if e.target_type == target_type]
        tokens = {e.target_id: e.share_token for e in of_type}
        targets[target_type] = _resolvers[target_type]([e.target_id for e in of_type], user, tokens)
    rows = []
    for index, event in enumerate(events):
        target = targets[event.target_type].get(event.target_id)
        if target is None:  # no such target, or not the caller's to see: the same answer
            raise ServiceError(
                f"events[{index}]: no such {event.target_type} {event.target_id!r}.",
                field="events",
            )
        target_id = str(target.song.pk) if target.song is not None else event.target_id
        rows.append(
            FeedbackEvent(
                kind=event.kind,
                user=user if user is not None and user.is_authenticated else None,
                actor=actor,
                target_type=event.target_type,
                target_id=target_id,
                value=THUMBS.get(event.kind, event.value),
                position_s=event.position_s,
                choice_set=target.choice_set or event.choice_set,
                slot=target.slot if target.choice_set else event.slot,
                model_version=target.model_version[:64],
                seed=target.seed,
                conditioning=target.conditioning,
                client_event_id=event.client_event_id,
                client_ts=event.client_ts,
            )
        )
    songs = {str(t.song.pk): t.song for by_id in targets.values() for t in by_id.values() if t.song}

    with transaction.atomic():
        new_rows = _drop_retries(actor, rows)
        FeedbackEvent.objects.bulk_create(new_rows, ignore_conflicts=True)
        if user is not None and user.is_authenticated:
            # Only new events move the like state: a late retry of an old thumb_up must not undo
            # the listener's later thumb_down.
            for row in new_rows:
                if row.kind in THUMBS and row.target_id in songs:
                    song_thumb(song=songs[row.target_id], user=user, value=THUMBS[row.kind])
    return BatchResult(received=len(rows), recorded=len(new_rows))


def _drop_retries(actor: str, rows: list[FeedbackEvent]) -> list[FeedbackEvent]:
    """The rows not recorded before: client event ids already stored for this actor, or repeated
    earlier in the batch, are retries. (Two concurrent copies of one batch are still stored once,
    by the unique constraint; then `recorded` may over-count by the overlap.)"""
    ids = [r.client_event_id for r in rows if r.client_event_id]
    known = (
        set(
            FeedbackEvent.objects.filter(actor=actor, client_event_id__in=ids).values_list(
                "client_event_id", flat=True
            )
        )
        if ids
        else set()
    )
    fresh = []
    for row in rows:
        if row.client_event_id:
            if row.client_event_id in known:
                continue
            known.add(row.client_event_id)
        fresh.append(row)
    return fresh


def _normalise_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None
