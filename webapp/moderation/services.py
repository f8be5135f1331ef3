"""Moderation actions: reports in, and everything a moderator does about them.

Every action here (the moderation page, the Django admin's actions and the shell all call these)
checks that its caller is a moderator (webapp.moderation.permissions), changes the rows under a
lock, writes one AuditEntry with the state before and after in the same transaction, and closes
the open reports of its target that it settles. What clients must hear (a room closing, a
banned account's sockets closing) is sent on commit.

Reports come from people (`report_submit`): rate limited, one open report per reporter and
target, and only of things the reporter can see.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from collab import services as room_services
from collab.models import Proposal, Room
from webapp.errors import Forbidden, ServiceError
from webapp.moderation import realtime
from webapp.moderation.audit import audit_record
from webapp.moderation.models import (
    MAX_DETAILS_CHARS,
    MAX_REASON_CHARS,
    Report,
    Sanction,
    TargetType,
)
from webapp.moderation.permissions import user_is_moderator
from webapp.moderation.selectors import (
    SANCTIONED_ACCOUNT_SESSION_KEY,
    sanction_in_force,
    target_get_for_reporter,
)
from webapp.moderation.signup import signup_blocks_create
from webapp.ratelimit import ratelimit_enforce
from webapp.songs.models import Song

MAX_SUSPENSION = timedelta(days=365)


# --- Checks (they raise and change nothing) ---------------------------------------------------


def moderation_check_moderator(user) -> None:
    if not user_is_moderator(user):
        raise Forbidden("Only moderators can do that.")


def moderation_clean_reason(reason: str | None, *, required: bool) -> str:
    """A moderator's reason: required for takedowns, closures and sanctions (the subject is
    told it, and the audit log keeps it)."""
    reason = " ".join(str(reason or "").split())
    if required and not reason:
        raise ServiceError(
            "Give a reason: it is recorded, and shown to the person.", field="reason"
        )
    if len(reason) > MAX_REASON_CHARS:
        raise ServiceError(f"Reasons are at most {MAX_REASON_CHARS} characters.", field="reason")
    return reason


def report_clean_details(details: str | None) -> str:
    details = str(details or "").strip()
    if len(details) > MAX_DETAILS_CHARS:
        raise ServiceError(
            f"Details are at most {MAX_DETAILS_CHARS} characters (these have {len(details)}).",
            field="details",
        )
    return details


def user_check_sanctionable(moderator, user) -> None:
    """Nobody sanctions themselves, nor a superuser; only superusers sanction staff."""
    if user.pk == moderator.pk:
        raise ServiceError("You cannot sanction your own account.", field="user")
    if user.is_superuser or (user.is_staff and not moderator.is_superuser):
        raise Forbidden("Only a superuser can sanction a staff account, and nobody a superuser.")


# --- Reports ------------------------------------------------------------------------------------


def report_submit(
    *,
    reporter,
    target_type: str,
    target_id,
    reason: str,
    details: str = "",
    share_token: str | None = None,
    now: datetime | None = None,
) -> tuple[Report, bool]:
    """Report a song, room, proposal or account to the moderators. Returns (report, created):
    a reporter's second report of the same thing, while the first is open, updates the first.

    Counted in the `report` rate limit before anything else (a refused one counts too, so that
    reports cannot probe for what exists). NotFound for a target the reporter cannot see."""
    if reporter is None or not reporter.is_authenticated:
        raise Forbidden("Sign in to report something.")
    ratelimit_enforce(domain="report", key=f"user:{reporter.pk}")
    if reason not in Report.Reason.values:
        known = ", ".join(Report.Reason.values)
        raise ServiceError(f"Unknown reason {str(reason)[:30]!r}; one of {known}.", field="reason")
    details = report_clean_details(details)
    target = target_get_for_reporter(
        target_type=target_type, target_id=target_id, user=reporter, share_token=share_token
    )
    if target_type == TargetType.USER and target.pk == reporter.pk:
        raise ServiceError("You cannot report your own account.", field="target_id")
    now = now or timezone.now()
    key = {"reporter": reporter, "target_type": target_type, "target_id": str(target.pk)}
    for _ in range(2):
        with transaction.atomic():
            existing = (
                Report.objects.select_for_update().filter(**key, status=Report.Status.OPEN).first()
            )
            if existing is not None:
                existing.reason, existing.details, existing.updated_at = reason, details, now
                existing.save(update_fields=["reason", "details", "updated_at"])
                return existing, False
            try:
                with transaction.atomic():
                    report = Report.objects.create(
                        **key, reason=reason, details=details, created_at=now, updated_at=now
                    )
                return report, True
            except IntegrityError:  # the same report, a moment earlier: update that one
                continue
    raise ServiceError("That report is being made already; try again.", code="conflict")


def _reports_close(
    *, target_type: str, target_id, moderator, status: str, resolution: str, now: datetime
) -> int:
    """Close the target's open reports (in the caller's transaction); how many were open."""
    return Report.objects.filter(
        target_type=target_type, target_id=str(target_id), status=Report.Status.OPEN
    ).update(status=status, resolved_at=now, resolved_by=moderator, resolution=resolution)


def reports_dismiss(
    *, moderator, target_type: str, target_id, reason: str = "", ip: str | None = None
) -> int:
    """The moderator looked and leaves the target as it is: its open reports close as
    dismissed. Returns how many."""
    moderation_check_moderator(moderator)
    reason = moderation_clean_reason(reason, required=False)
    if target_type not in TargetType.values:
        raise ServiceError(f"Unknown target type {str(target_type)[:20]!r}.", field="target_type")
    now = timezone.now()
    with transaction.atomic():
        closed = _reports_close(
            target_type=target_type,
            target_id=target_id,
            moderator=moderator,
            status=Report.Status.DISMISSED,
            resolution="reports.dismiss",
            now=now,
        )
        audit_record(
            actor=moderator,
            action="reports.dismiss",
            target_type=target_type,
            target_id=target_id,
            before={"open_reports": closed},
            after={"open_reports": 0},
            reason=reason,
            ip=ip,
        )
    return closed


# --- Content: songs, rooms, proposals ---------------------------------------------------------


def _content_moderate(
    *,
    moderator,
    target_type: str,
    action: str,
    reason: str,
    ip: str | None,
    change: Callable[[datetime], tuple[dict, object, dict]],
    settles: bool,
):
    """The one shape of every action on a song, a room or a proposal: check the caller, then in
    one transaction let `change(now)` lock the row and change it (returning the state before, the
    changed thing and the state after), write the audit entry, and close the target's open
    reports if the action settles them (every action but making a thing visible again)."""
    moderation_check_moderator(moderator)
    now = timezone.now()
    with transaction.atomic():
        before, changed, after = change(now)
        audit_record(
            actor=moderator,
            action=action,
            target_type=target_type,
            target_id=changed.pk,
            before=before,
            after=after,
            reason=reason,
            ip=ip,
        )
        if settles:
            _reports_close(
                target_type=target_type,
                target_id=changed.pk,
                moderator=moderator,
                status=Report.Status.ACTIONED,
                resolution=action,
                now=now,
            )
    return changed


def _song_state(song: Song) -> dict:
    return {
        "moderation": song.moderation,
        "moderation_reason": song.moderation_reason,
        "visibility": song.visibility,
    }


def _song_moderate(
    *, moderator, song: Song, state: str, reason: str, required: bool, action: str, ip
) -> Song:
    reason = moderation_clean_reason(reason, required=required)

    def change(now: datetime) -> tuple[dict, Song, dict]:
        locked = Song.objects.select_for_update().get(pk=song.pk)
        before = _song_state(locked)
        locked.moderation, locked.moderation_reason, locked.moderated_at = state, reason, now
        # A save, not an update: Song's save signal invalidates the public response cache.
        locked.save(update_fields=["moderation", "moderation_reason", "moderated_at", "updated_at"])
        return before, locked, _song_state(locked)

    return _content_moderate(
        moderator=moderator,
        target_type=TargetType.SONG,
        action=action,
        reason=reason,
        ip=ip,
        change=change,
        settles=state != Song.Moderation.VISIBLE,
    )


def song_hide(*, moderator, song: Song, reason: str = "", ip: str | None = None) -> Song:
    """Hide a song: only its owner (who sees it marked) and admins reach it; out of the feed,
    profiles, share links and the API for everyone else. Reversible (song_unhide)."""
    return _song_moderate(
        moderator=moderator,
        song=song,
        state=Song.Moderation.HIDDEN,
        reason=reason,
        required=False,
        action="song.hide",
        ip=ip,
    )


def song_unhide(*, moderator, song: Song, reason: str = "", ip: str | None = None) -> Song:
    """Make a hidden or removed song visible again (as its own visibility says)."""
    return _song_moderate(
        moderator=moderator,
        song=song,
        state=Song.Moderation.VISIBLE,
        reason=reason,
        required=False,
        action="song.unhide",
        ip=ip,
    )


def song_remove(*, moderator, song: Song, reason: str, ip: str | None = None) -> Song:
    """Take a song down (a reason is required): hidden as by song_hide, and its audio is no
    longer served to anyone, its owner included. The files stay in storage until the owner
    deletes the song (an appeal may restore it: song_unhide)."""
    return _song_moderate(
        moderator=moderator,
        song=song,
        state=Song.Moderation.REMOVED,
        reason=reason,
        required=True,
        action="song.remove",
        ip=ip,
    )


def _room_state(room: Room) -> dict:
    return {
        "moderation": room.moderation,
        "moderation_reason": room.moderation_reason,
        "status": room.status,
        "visibility": room.visibility,
    }


def _room_moderate(
    *, moderator, room: Room, state: str | None, reason: str, required: bool, end: bool, action, ip
) -> Room:
    """`state` None: the room keeps its moderation state (a close)."""
    reason = moderation_clean_reason(reason, required=required)

    def change(now: datetime) -> tuple[dict, Room, dict]:
        locked = Room.objects.select_for_update().get(pk=room.pk)
        before = _room_state(locked)
        changed = room_services.room_moderate(
            room=room,
            moderator=moderator,
            moderation=state or locked.moderation,
            reason=reason,
            end=end,
            now=now,
        )
        return before, changed, _room_state(changed)

    return _content_moderate(
        moderator=moderator,
        target_type=TargetType.ROOM,
        action=action,
        reason=reason,
        ip=ip,
        change=change,
        settles=end or state not in (None, Room.Moderation.VISIBLE),
    )


def room_hide(*, moderator, room: Room, reason: str = "", ip: str | None = None) -> Room:
    """Hide a room: off the room list; nobody but admins may open or join it (listeners who
    are not admins are told why and let go). Reversible (room_unhide). It goes on playing for
    the admins who stay; close it to stop it."""
    return _room_moderate(
        moderator=moderator,
        room=room,
        state=Room.Moderation.HIDDEN,
        reason=reason,
        required=False,
        end=False,
        action="room.hide",
        ip=ip,
    )


def room_unhide(*, moderator, room: Room, reason: str = "", ip: str | None = None) -> Room:
    return _room_moderate(
        moderator=moderator,
        room=room,
        state=Room.Moderation.VISIBLE,
        reason=reason,
        required=False,
        end=False,
        action="room.unhide",
        ip=ip,
    )


def room_close(*, moderator, room: Room, reason: str, ip: str | None = None) -> Room:
    """End a room for good (a reason is required): every listener gets a `moderated` frame
    saying why and their socket closes (4451). Its page stays, ended."""
    return _room_moderate(
        moderator=moderator,
        room=room,
        state=None,
        reason=reason,
        required=True,
        end=True,
        action="room.close",
        ip=ip,
    )


def room_remove(*, moderator, room: Room, reason: str, ip: str | None = None) -> Room:
    """Take a room down: closed as by room_close, and nobody but admins may open it again."""
    return _room_moderate(
        moderator=moderator,
        room=room,
        state=Room.Moderation.REMOVED,
        reason=reason,
        required=True,
        end=True,
        action="room.remove",
        ip=ip,
    )


def proposal_reject(
    *, moderator, proposal: Proposal, reason: str = "", ip: str | None = None
) -> Proposal:
    """Take a proposal off its room's ballot and out of the music, as the host's veto does."""
    reason = moderation_clean_reason(reason, required=False)

    def change(now: datetime) -> tuple[dict, Proposal, dict]:
        before = {"status": proposal.status}
        changed = room_services.proposal_set_status(
            proposal=proposal, user=moderator, approve=False, now=now
        )
        return before, changed, {"status": changed.status}

    return _content_moderate(
        moderator=moderator,
        target_type=TargetType.PROPOSAL,
        action="proposal.reject",
        reason=reason,
        ip=ip,
        change=change,
        settles=True,
    )


# --- Accounts -----------------------------------------------------------------------------------


def _standing(user, now: datetime) -> dict:
    sanction = sanction_in_force(user_id=user.pk, now=now)
    if sanction is None:
        return {"sanction": None}
    return {
        "sanction": sanction.kind,
        "sanction_id": sanction.pk,
        "ends_at": sanction.ends_at.isoformat() if sanction.ends_at else None,
    }


def _sanction(
    *, moderator, user, kind: str, ends_at: datetime | None, reason: str, ip: str | None
) -> Sanction:
    moderation_check_moderator(moderator)
    user_check_sanctionable(moderator, user)
    now = timezone.now()
    with transaction.atomic():
        # One sanction change per account at a time.
        get_user_model()._default_manager.select_for_update().filter(pk=user.pk).first()
        before = _standing(user, now)
        sanction = Sanction.objects.create(
            user=user,
            kind=kind,
            reason=reason,
            starts_at=now,
            ends_at=ends_at,
            created_by=moderator,
        )
        after = _standing(user, now)
        if kind == Sanction.Kind.BAN:  # sign-ups from where the account signed in lately
            after["signup_blocks"] = signup_blocks_create(sanction=sanction, now=now)
        audit_record(
            actor=moderator,
            action=f"user.{'ban' if kind == Sanction.Kind.BAN else 'suspend'}",
            target_type=TargetType.USER,
            target_id=user.pk,
            before=before,
            after=after,
            reason=reason,
            ip=ip,
        )
        _reports_close(
            target_type=TargetType.USER,
            target_id=user.pk,
            moderator=moderator,
            status=Report.Status.ACTIONED,
            resolution=f"user.{kind}",
            now=now,
        )
        transaction.on_commit(lambda: realtime.user_sanctioned(user_id=user.pk, sanction=sanction))
    return sanction


def user_ban(*, moderator, user, reason: str, ip: str | None = None) -> Sanction:
    """Ban an account for good (until lifted): it cannot log in, its sessions and API tokens
    stop working, and its open websockets close at once (an `error` `banned` first, then
    4403), in every web process."""
    reason = moderation_clean_reason(reason, required=True)
    return _sanction(
        moderator=moderator, user=user, kind=Sanction.Kind.BAN, ends_at=None, reason=reason, ip=ip
    )


def user_suspend(
    *, moderator, user, until: datetime, reason: str, ip: str | None = None
) -> Sanction:
    """Suspend an account until a time (at most a year ahead): as a ban until then."""
    reason = moderation_clean_reason(reason, required=True)
    now = timezone.now()
    if not isinstance(until, datetime) or timezone.is_naive(until):
        raise ServiceError("A suspension needs an end time (with its time zone).", field="until")
    if not now < until <= now + MAX_SUSPENSION:
        raise ServiceError(
            f"A suspension ends in the future, within {MAX_SUSPENSION.days} days; ban for longer.",
            field="until",
        )
    return _sanction(
        moderator=moderator,
        user=user,
        kind=Sanction.Kind.SUSPENSION,
        ends_at=until,
        reason=reason,
        ip=ip,
    )


def user_lift_sanctions(*, moderator, user, reason: str = "", ip: str | None = None) -> int:
    """Lift the account's bans and suspensions in force (they may log in again). How many."""
    moderation_check_moderator(moderator)
    reason = moderation_clean_reason(reason, required=False)
    now = timezone.now()
    with transaction.atomic():
        get_user_model()._default_manager.select_for_update().filter(pk=user.pk).first()
        before = _standing(user, now)
        lifted = Sanction.objects.filter(user=user, lifted_at__isnull=True).update(
            lifted_at=now, lifted_by=moderator
        )
        audit_record(
            actor=moderator,
            action="user.lift",
            target_type=TargetType.USER,
            target_id=user.pk,
            before=before,
            after=_standing(user, now),
            reason=reason,
            ip=ip,
        )
    return lifted


# --- Sessions -------------------------------------------------------------------------------------


def session_mark_sanctioned(*, session, user_id) -> None:
    """Mark a session as a sanctioned account's (its login was refused for the sanction, or it
    logs out), so that it cannot go on as a signed-out visitor: feedback, rooms
    (webapp.moderation.selectors.sanction_of_session). Clearing cookies gets round it, as it
    would any cookie; what it stops is the easy path of an old cookie."""
    if session is not None and user_id:
        session[SANCTIONED_ACCOUNT_SESSION_KEY] = str(user_id)
