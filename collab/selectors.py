"""Reads of rooms, and the one visibility rule every path (API, pages, websockets) goes through."""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import (
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)

from collab.models import Audition, Chunk, Proposal, Room, Round
from webapp.errors import NotFound

CHUNKS_PAGE = 100


def participant_key(user, anon_key: str | None = None) -> str | None:
    """Who is acting, as rooms count them: ``user:<id>``, ``anon:<session key>``, or None."""
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    if anon_key:
        return f"anon:{anon_key}"
    return None


def participant_tag(key: str) -> str:
    """A participant as others may read about them (the room's mutes and kicks, the audit log):
    accounts by their key, signed-out visitors by a digest of theirs, never the key itself (it
    holds their session key, which would let whoever reads it act as them)."""
    if key.startswith("anon:"):
        return "anon:" + hashlib.sha256(key.encode()).hexdigest()[:24]
    return key


def _restricted_until(room: Room, key: str | None, what: str, now: float) -> float | None:
    if key is None:
        return None
    until = ((room.restrictions or {}).get(participant_tag(key)) or {}).get(what)
    return until if isinstance(until, int | float) and until > now else None


def participant_muted_until(room: Room, key: str | None, *, now: float) -> float | None:
    """Until when (unix s) the host muted this participant (no proposing or voting), if now."""
    return _restricted_until(room, key, "muted_until", now)


def participant_kicked_until(room: Room, key: str | None, *, now: float) -> float | None:
    """Until when (unix s) the host kicked this participant out of the room, if now."""
    return _restricted_until(room, key, "kicked_until", now)


def participants_muted(*, room: Room, now: float) -> list[dict]:
    """Who the host muted, as the host's snapshot lists them (so that a reload remembers): each
    with `until` (unix s), `username` (None for a signed-out visitor) and `proposal_ids`, their
    proposals on the open round's ballot or waiting for the host (how the page points at a
    visitor). Soonest to end first."""
    muted = {
        tag: entry["muted_until"]
        for tag, entry in (room.restrictions or {}).items()
        if isinstance((entry or {}).get("muted_until"), int | float) and entry["muted_until"] > now
    }
    if not muted:
        return []
    from django.contrib.auth import get_user_model

    ids = [tag[5:] for tag in muted if tag.startswith("user:") and tag[5:].isdigit()]
    names = dict(get_user_model()._default_manager.filter(pk__in=ids).values_list("pk", "username"))
    shown = Proposal.objects.filter(room=room).filter(
        Q(status=Proposal.Status.PENDING)
        | Q(status=Proposal.Status.APPROVED, round__status=Round.Status.OPEN)
    )
    proposals: dict[str, list[int]] = {}
    for pk, key in shown.order_by("id").values_list("pk", "author_key"):
        tag = participant_tag(key)
        if tag in muted:
            proposals.setdefault(tag, []).append(pk)
    entries = []
    for tag, until in sorted(muted.items(), key=lambda item: item[1]):
        username = (
            names.get(int(tag[5:])) if tag.startswith("user:") and tag[5:].isdigit() else None
        )
        if tag.startswith("user:") and username is None:
            continue  # an account deleted since
        entries.append(
            {"username": username, "until": round(until, 3), "proposal_ids": proposals.get(tag, [])}
        )
    return entries


def _is_admin(user) -> bool:
    return user is not None and user.is_authenticated and (user.is_staff or user.is_superuser)


def room_can_host(room: Room, user) -> bool:
    """The host, and superusers. Not staff: moderators act on other people's rooms only through
    the audited moderation actions (webapp.moderation.services: hide, close, remove, reject a
    proposal); the host's controls (pause, end, settings, approve) write no audit entry."""
    return (
        user is not None
        and user.is_authenticated
        and (user.pk == room.host_id or user.is_superuser)
    )


def room_can_view(room: Room, user, *, share_token: str | None = None) -> bool:
    """As for songs: public rooms anyone; unlisted ones by share token; private ones the host
    and staff (moderators included: they see every room, and host none but their own).
    A room the moderators hid or removed: staff only (its host included out)."""
    if room.moderation != Room.Moderation.VISIBLE:
        return _is_admin(user)
    if room_can_host(room, user) or _is_admin(user):
        return True
    if room.visibility == Room.Visibility.PUBLIC:
        return True
    if room.visibility == Room.Visibility.UNLISTED:
        return share_token is not None and share_token == room.share_token
    return False


def room_get_for_viewer(
    *, user, room_id=None, slug: str | None = None, share_token: str | None = None
) -> Room:
    """The room (by id or slug) if `user` may see it; NotFound otherwise (existence is not
    revealed)."""
    if (room_id is None) == (slug is None):
        raise ValueError("pass exactly one of room_id and slug")
    lookup = {"pk": room_id} if room_id is not None else {"slug": slug}
    try:
        room = Room.objects.select_related("host").get(**lookup)
    except (Room.DoesNotExist, ValidationError, ValueError):  # the last two: not a UUID
        room = None
    if room is None or not room_can_view(room, user, share_token=share_token):
        raise NotFound("No such room.")
    return room


def room_list_public() -> QuerySet:
    """Public rooms that are still on (live or paused), newest first; none the moderators hid."""
    return (
        Room.objects.filter(
            visibility=Room.Visibility.PUBLIC,
            status__in=(Room.Status.LIVE, Room.Status.PAUSED),
            moderation=Room.Moderation.VISIBLE,
        )
        .select_related("host")
        .order_by("-created_at", "-id")
    )


def round_current(*, room: Room) -> Round | None:
    """The room's open round (None once the room has ended)."""
    return Round.objects.filter(room=room, status=Round.Status.OPEN).first()


def round_list_due(*, now: datetime) -> QuerySet:
    """Open rounds of live rooms whose time is up: what the conductor closes next."""
    return Round.objects.filter(
        status=Round.Status.OPEN, ends_at__lte=now, room__status=Room.Status.LIVE
    ).select_related("room")


def ballot(*, round: Round) -> QuerySet:
    """The approved proposals of a round, each with `vote_count`, most voted first."""
    return (
        Proposal.objects.filter(round=round, status=Proposal.Status.APPROVED)
        .annotate(vote_count=Count("votes", filter=Q(votes__round=round)))
        .order_by("-vote_count", "created_at", "id")
    )


def proposal_get_in_room(*, room: Room, proposal_id: int) -> Proposal:
    """One of the room's proposals; NotFound for another room's (or no such) proposal."""
    proposal = Proposal.objects.filter(room=room, pk=proposal_id).first()
    if proposal is None:
        raise NotFound("No such proposal in this room.")
    return proposal


def proposal_list_pending(*, room: Room) -> QuerySet:
    """The host's queue in audience mode: proposals waiting for approval, oldest first."""
    return Proposal.objects.filter(room=room, status=Proposal.Status.PENDING).order_by(
        "created_at", "id"
    )


def chunks_since(*, room: Room, sequence: int, limit: int = CHUNKS_PAGE) -> QuerySet:
    """The room's chunks after `sequence` (-1 for all), in order, at most `limit` of them."""
    return Chunk.objects.filter(room=room, sequence__gt=sequence).order_by("sequence")[:limit]


def chunk_get(*, room: Room, sequence: int) -> Chunk | None:
    """The room's chunk of that sequence, if it was recorded."""
    return Chunk.objects.filter(room=room, sequence=sequence).first()


# --- The conductor's reads (collab.conductor) -------------------------------------------------


def audition_get(*, room: Room, proposal_id: int) -> Audition | None:
    """A proposal's preview, if it is ready."""
    return Audition.objects.filter(
        room=room, proposal_id=proposal_id, status=Audition.Status.READY
    ).first()


def auditions_wanted(*, room_ids, limit: int) -> list[Proposal]:
    """Approved proposals on the open ballots of these rooms that have no preview yet and none
    asked for, oldest first."""
    return list(
        Proposal.objects.filter(
            room_id__in=list(room_ids),
            status=Proposal.Status.APPROVED,
            round__status=Round.Status.OPEN,
            audition__isnull=True,
        )
        .select_related("room")
        .order_by("created_at", "id")[:limit]
    )


def auditions_pending(*, room_ids) -> list[Audition]:
    return list(
        Audition.objects.filter(room_id__in=list(room_ids), status=Audition.Status.PENDING)
        .select_related("proposal", "room")
        .order_by("asked_at")
    )


def chunks_ahead(*, room: Room, after_s: float) -> list[Chunk]:
    """The room's chunks that start at or after `after_s` on its timeline: not heard yet."""
    return list(Chunk.objects.filter(room=room, start_s__gte=after_s).order_by("sequence"))


def chunks_sounding_after(*, room: Room, at_s: float) -> list[Chunk]:
    """The room's chunks that still sound after `at_s` on its timeline: the one playing then
    (part of it not heard yet) and those after it."""
    ends = ExpressionWrapper(F("start_s") + F("duration_s"), output_field=FloatField())
    return list(
        Chunk.objects.filter(room=room)
        .alias(end_s=ends)
        .filter(end_s__gt=at_s)
        .order_by("sequence")
    )


def room_list_on_air() -> list[tuple]:
    """(id, status) of every room that is live or paused."""
    return list(
        Room.objects.filter(status__in=(Room.Status.LIVE, Room.Status.PAUSED)).values_list(
            "pk", "status"
        )
    )


def room_list_for_conductor(*, room_ids) -> dict[str, Room]:
    """The rooms (by str(id)), each with `last_chunk` (its latest Chunk or None) and
    `last_cut_round` (the number of its latest round closed by a hard cut, or None).

    The steering and the latest cut are read in one statement, so a chunk asked for with a
    steering is never marked with a cut that steering does not include yet."""
    last = Chunk.objects.filter(room=OuterRef("pk")).order_by("-sequence").values("pk")[:1]
    cuts = Round.objects.filter(room=OuterRef("pk"), cut=True).order_by("-number").values("number")
    rooms = list(
        Room.objects.filter(pk__in=list(room_ids)).annotate(
            last_chunk_id=Subquery(last), last_cut_round=Subquery(cuts[:1])
        )
    )
    chunks = Chunk.objects.in_bulk([r.last_chunk_id for r in rooms if r.last_chunk_id])
    for room in rooms:
        room.last_chunk = chunks.get(room.last_chunk_id)
    return {str(room.pk): room for room in rooms}
