"""Reads for moderation: sanctions in force, the report queue, targets, and the audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import SESSION_KEY, get_user_model
from django.db.models import Count, F, Max, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from webapp.errors import NotFound, ServiceError
from webapp.moderation.models import AuditEntry, Report, Sanction, TargetType

QUEUE_SORTS = ("most", "newest")
QUEUE_PAGE = 50


# --- Sanctions --------------------------------------------------------------------------------


def sanction_in_force(*, user_id, now: datetime | None = None) -> Sanction | None:
    """The account's sanction in force now, if any: a ban before any suspension, then the
    suspension that ends last. One indexed query (every authentication asks it)."""
    if user_id is None:
        return None
    now = now or timezone.now()
    return (
        Sanction.objects.filter(user_id=user_id, lifted_at__isnull=True, starts_at__lte=now)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by(F("ends_at").desc(nulls_first=True), "-id")
        .first()
    )


def sanction_for_credentials(*, username: str, password: str) -> Sanction | None:
    """The sanction that refused a login with these credentials, if they are right: so that the
    login form and the token endpoint can say why, without telling anyone else anything."""
    user = get_user_model()._default_manager.filter(username=username).first()
    if user is None or not user.is_active or not user.check_password(password):
        return None
    return sanction_in_force(user_id=user.pk)


# A session that a sanctioned account used, or tried to log in with, keeps its account's id under
# this key (and keeps it when it logs out): it is that person's, signed in or not.
SANCTIONED_ACCOUNT_SESSION_KEY = "moderation_sanctioned_account"


def session_account_id(session) -> str | None:
    """The account a session names: the one signed in (even one authentication now refuses),
    or the sanctioned account it was marked with (session_mark_sanctioned)."""
    if session is None:
        return None
    return session.get(SESSION_KEY) or session.get(SANCTIONED_ACCOUNT_SESSION_KEY)


def sanction_of_session(session, *, now: datetime | None = None) -> Sanction | None:
    """The sanction in force on the account a session names, if any: a banned person's session
    reads as signed out, and must not take part as a signed-out visitor either."""
    account_id = session_account_id(session)
    return sanction_in_force(user_id=account_id, now=now) if account_id else None


class SanctionRefused(ServiceError):
    """What a sanctioned person is refused with: 403, code `banned` or `suspended`."""

    status_code = 403


def sanction_check_session(session, *, now: datetime | None = None) -> None:
    """Refuses a signed-out session that a banned or suspended account used
    (sanction_of_session)."""
    sanction = sanction_of_session(session, now=now)
    if sanction is not None:
        code = "banned" if sanction.kind == Sanction.Kind.BAN else "suspended"
        raise SanctionRefused(sanction.describe(), code=code)


def sanctions_of(*, user) -> QuerySet:
    return Sanction.objects.filter(user=user).select_related("created_by", "lifted_by")


# --- Targets ------------------------------------------------------------------------------------


def _parse_id(target_type: str, target_id) -> object:
    """The target's primary key from its string form, or NotFound."""
    text = str(target_id).strip()
    try:
        if target_type in (TargetType.SONG, TargetType.ROOM):
            return uuid.UUID(text)
        if target_type in (TargetType.PROPOSAL, TargetType.USER):
            if not text.isdigit() or len(text) > 18:
                raise ValueError(text)
            return int(text)
    except ValueError:
        pass
    raise NotFound(f"No such {target_type}.")


def target_get(*, target_type: str, target_id):
    """The song, room, proposal or user a report or an action is about (no visibility rule:
    moderators see everything). NotFound for an unknown type or id."""
    from collab.models import Proposal, Room
    from webapp.songs.models import Song

    models = {
        TargetType.SONG: Song.objects.select_related("owner"),
        TargetType.ROOM: Room.objects.select_related("host"),
        TargetType.PROPOSAL: Proposal.objects.select_related("room", "author"),
        TargetType.USER: get_user_model()._default_manager.all(),
    }
    if target_type not in models:
        raise NotFound(f"Unknown target type {str(target_type)[:20]!r}.")
    found = models[target_type].filter(pk=_parse_id(target_type, target_id)).first()
    if found is None:
        raise NotFound(f"No such {target_type}.")
    return found


def target_get_for_reporter(*, target_type: str, target_id, user, share_token: str | None):
    """The target, if the reporter may see it: the same rules as every other path (songs and
    rooms by their visibility and share token; a proposal if its room is visible and it reached
    the ballot, or the reporter hosts the room; an active account). NotFound otherwise."""
    from collab.models import Proposal
    from collab.selectors import room_can_host, room_can_view
    from webapp.songs.selectors import song_can_view

    try:
        target = target_get(target_type=target_type, target_id=target_id)
    except NotFound:
        raise NotFound(f"No such {target_type}.") from None
    if target_type == TargetType.SONG:
        visible = song_can_view(target, user, share_token=share_token)
    elif target_type == TargetType.ROOM:
        visible = room_can_view(target, user, share_token=share_token)
    elif target_type == TargetType.PROPOSAL:
        visible = room_can_view(target.room, user, share_token=share_token) and (
            target.status != Proposal.Status.PENDING or room_can_host(target.room, user)
        )
    else:
        visible = target.is_active
    if not visible:
        raise NotFound(f"No such {target_type}.")
    return target


@dataclass(frozen=True)
class TargetSummary:
    """A target as the moderation page shows it."""

    target_type: str
    target_id: str
    label: str
    url: str | None = None  # where the thing is on the site (None: nowhere, or gone)
    owner: object = None  # the account behind it (song owner, room host, proposal author)
    state: dict = field(default_factory=dict)  # moderation state, visibility, status...
    exists: bool = True


def target_summary(target_type: str, target) -> TargetSummary:
    from webapp.songs.models import Song

    if target_type == TargetType.SONG:
        return TargetSummary(
            target_type,
            str(target.pk),
            label=target.title,
            url=reverse("song-page", args=[target.pk]),
            owner=target.owner,
            state={
                "moderation": target.moderation,
                "visibility": target.visibility,
                "status": target.status,
                "prompt": target.prompt,
                "reason": target.moderation_reason,
                "hidden": target.moderation != Song.Moderation.VISIBLE,
            },
        )
    if target_type == TargetType.ROOM:
        return TargetSummary(
            target_type,
            str(target.pk),
            label=target.title,
            url=reverse("room-page", args=[target.pk]),
            owner=target.host,
            state={
                "moderation": target.moderation,
                "visibility": target.visibility,
                "status": target.status,
                "prompt": target.anchor_prompt,
                "reason": target.moderation_reason,
                "hidden": target.moderation != "visible",
            },
        )
    if target_type == TargetType.PROPOSAL:
        return TargetSummary(
            target_type,
            str(target.pk),
            label=target.text,
            url=reverse("room-page", args=[target.room_id]),
            owner=target.author,
            state={"status": target.status, "room": target.room.title, "kind": target.kind},
        )
    sanction = sanction_in_force(user_id=target.pk)
    return TargetSummary(
        target_type,
        str(target.pk),
        label=target.get_username(),
        url=reverse("profile", args=[target.get_username()]) if target.is_active else None,
        owner=target,
        state={
            "active": target.is_active,
            "sanction": sanction.describe() if sanction else "",
            "sanctioned": sanction is not None,
            "staff": target.is_staff,
        },
    )


def target_summary_or_gone(target_type: str, target_id: str) -> TargetSummary:
    try:
        return target_summary(target_type, target_get(target_type=target_type, target_id=target_id))
    except NotFound:
        return TargetSummary(target_type, target_id, label="(deleted)", exists=False)


# --- The queue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    """Open reports of one target: how many, why, and the latest."""

    target: TargetSummary
    count: int
    reasons: list[tuple[str, int]]  # (reason, reports), most first
    latest_at: datetime
    latest: list[Report]  # the newest few, with their free text


def report_queue(*, sort: str = "most", limit: int = QUEUE_PAGE) -> list[QueueEntry]:
    """Open reports grouped by target: most reported first (then newest), or newest first."""
    groups = (
        Report.objects.filter(status=Report.Status.OPEN)
        .values("target_type", "target_id")
        .annotate(count=Count("id"), latest_at=Max("updated_at"))
    )
    if sort == "newest":
        groups = groups.order_by("-latest_at", "-count", "target_type", "target_id")
    else:
        groups = groups.order_by("-count", "-latest_at", "target_type", "target_id")
    groups = list(groups[:limit])
    if not groups:
        return []
    keys = Q()
    for group in groups:
        keys |= Q(target_type=group["target_type"], target_id=group["target_id"])
    open_reports = list(
        Report.objects.filter(keys, status=Report.Status.OPEN)
        .select_related("reporter")
        .order_by("-updated_at", "-id")
    )
    reasons: dict[tuple, dict[str, int]] = {}
    latest: dict[tuple, list[Report]] = {}
    for report in open_reports:
        key = (report.target_type, report.target_id)
        counts = reasons.setdefault(key, {})
        counts[report.reason] = counts.get(report.reason, 0) + 1
        if len(latest.setdefault(key, [])) < 3:
            latest[key].append(report)
    return [
        QueueEntry(
            target=target_summary_or_gone(group["target_type"], group["target_id"]),
            count=group["count"],
            reasons=sorted(
                reasons.get((group["target_type"], group["target_id"]), {}).items(),
                key=lambda item: (-item[1], item[0]),
            ),
            latest_at=group["latest_at"],
            latest=latest.get((group["target_type"], group["target_id"]), []),
        )
        for group in groups
    ]


def reports_of_target(*, target_type: str, target_id: str) -> QuerySet:
    return Report.objects.filter(target_type=target_type, target_id=str(target_id)).select_related(
        "reporter", "resolved_by"
    )


def audit_of_target(*, target_type: str, target_id: str, limit: int = 100) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(target_type=target_type, target_id=str(target_id))[:limit]
    )
