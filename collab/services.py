"""Writes on rooms. Consumers, views, the conductor and tasks call these; nothing else changes a
room, its rounds, proposals, votes or chunks.

Checks are separate functions that raise ServiceError (or Forbidden) and change nothing. Every
function takes the room as its caller fetched it (through collab.selectors.room_get_for_viewer for
people, so visibility is already settled) and takes the room's row lock itself where a change
must not interleave with closing a round. Participants are named by key (see collab.models):
pass `user` for accounts and `anon_key` (the session key) for signed-out listeners.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from collab import audio as room_audio
from collab import bell, broadcast, protocol
from collab.models import (
    ACCOUNT_AGE_RANGE,
    MAX_ANCHOR_CHARS,
    MAX_PROPOSAL_CHARS,
    MAX_SLUG_CHARS,
    MAX_TITLE_CHARS,
    ROUND_LENGTH_RANGE,
    SLOW_MODE_RANGE,
    Audition,
    Chunk,
    Proposal,
    Room,
    Round,
    Vote,
)
from collab.selectors import (
    participant_key,
    participant_kicked_until,
    participant_muted_until,
    participant_tag,
    room_can_host,
)
from collab.steering_rules import NudgeError, blend_to_steering, clean_nudge, describe_nudge
from collab.voting import ANCHOR, BlendRules, next_blend, normalise, round_ends_at, tally
from generation.interface import MAX_SONG_SECONDS, MIN_SONG_SECONDS
from generation.steering import Controls, Steering
from webapp.errors import Forbidden, NotFound, ServiceError
from webapp.feedback.models import FeedbackEvent
from webapp.feedback.services import THUMBS, feedback_actor
from webapp.moderation.audit import audit_record
from webapp.ratelimit import ratelimit_enforce
from webapp.safety.checks import text_check_allowed
from webapp.songs import audio as song_audio
from webapp.songs.models import MAX_PROMPT_CHARS as MAX_SONG_PROMPT_CHARS
from webapp.songs.models import MAX_TITLE_CHARS as MAX_SONG_TITLE_CHARS
from webapp.songs.models import Song
from webapp.songs.services import MAX_SEED, song_clean_controls, song_store_master

logger = logging.getLogger(__name__)

MAX_LIVE_ROOMS_PER_HOST = 3  # live or paused: a live room costs a share of a GPU
MAX_BALLOT = 24  # approved proposals on one round's ballot
MAX_PENDING = 200  # proposals waiting for the host of an audience room
LATE_PROPOSAL_FRACTION = 0.25  # an unvoted proposal made this late in a round moves to the next
DEFAULT_RULES = BlendRules()
MAX_KEEP_CHUNKS = 2000  # bounds the query of room_keep (600 s of 0.3 s chunks)
# Bidirectional overrides and isolates (they would let a proposal rearrange an overlay's text),
# zero-width space and BOM. Other format characters stay: emoji sequences need the joiner.
_INVISIBLE = frozenset(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0x200E, 0x200F, 0x061C, 0xFEFF]
)


# --- Checks (they raise and change nothing) ---------------------------------------------------


def _visible(ch: str) -> bool:
    return ord(ch) not in _INVISIBLE and unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn")


def _clean_line(value: str, *, limit: int, empty: str, too_long: str, field: str) -> str:
    """One line of text as people should see it: whitespace collapsed, control and invisible
    characters removed, and nothing the prompt filter refuses (code `prompt_refused`)."""
    text = "".join(ch if ch.isspace() or _visible(ch) else "" for ch in str(value))
    text = " ".join(text.split())
    if not text:
        raise ServiceError(empty, field=field)
    if len(text) > limit:
        raise ServiceError(too_long.format(limit=limit, length=len(text)), field=field)
    text_check_allowed(text, field=field)  # the prompt filter (webapp/safety): shown on overlays
    return text


def room_clean_title(title: str) -> str:
    return _clean_line(
        title,
        limit=MAX_TITLE_CHARS,
        empty="A room needs a title.",
        too_long="Room titles are at most {limit} characters (this one has {length}).",
        field="title",
    )


def room_clean_anchor_prompt(prompt: str) -> str:
    return _clean_line(
        prompt,
        limit=MAX_ANCHOR_CHARS,
        empty="Write the room's prompt: what should it play when nobody votes?",
        too_long="The room's prompt is at most {limit} characters (this one has {length}).",
        field="anchor_prompt",
    )


def proposal_clean_text(text: str) -> str:
    return _clean_line(
        text,
        limit=MAX_PROPOSAL_CHARS,
        empty="Write an idea: what should the music do next?",
        too_long="Proposals are at most {limit} characters (this one has {length}).",
        field="text",
    )


def _clean_whole(name: str, value, low: int, high: int, message: str) -> int:
    number = value
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ServiceError(f"{message}; got {value!r}.", field=name)
    return number


def _clean_choice(name: str, value, choices: type, label: str) -> str:
    if value not in choices.values:
        known = ", ".join(choices.values)
        raise ServiceError(f"Unknown {label} {value!r}; choose one of {known}.", field=name)
    return value


def room_clean_settings(
    *,
    visibility: str | None = None,
    mode: str | None = None,
    round_length_s: int | None = None,
    who_may_propose: str | None = None,
    slow_mode_s: int | None = None,
    min_account_age_days: int | None = None,
    login_required: bool | None = None,
) -> dict:
    """The given settings, checked; settings left as None are not in the answer."""
    cleaned: dict = {}
    if visibility is not None:
        cleaned["visibility"] = _clean_choice(
            "visibility", visibility, Room.Visibility, "visibility"
        )
    if mode is not None:
        cleaned["mode"] = _clean_choice("mode", mode, Room.Mode, "mode")
    if who_may_propose is not None:
        cleaned["who_may_propose"] = _clean_choice(
            "who_may_propose", who_may_propose, Room.Proposers, "setting"
        )
    if round_length_s is not None:
        low, high = ROUND_LENGTH_RANGE
        cleaned["round_length_s"] = _clean_whole(
            "round_length_s", round_length_s, low, high, f"Rounds last {low} to {high} seconds"
        )
    if slow_mode_s is not None:
        low, high = SLOW_MODE_RANGE
        cleaned["slow_mode_s"] = _clean_whole(
            "slow_mode_s", slow_mode_s, low, high, f"Slow mode is {low} (off) to {high} seconds"
        )
    if min_account_age_days is not None:
        low, high = ACCOUNT_AGE_RANGE
        cleaned["min_account_age_days"] = _clean_whole(
            "min_account_age_days",
            min_account_age_days,
            low,
            high,
            f"The minimum account age is {low} to {high} days",
        )
    if login_required is not None:
        if not isinstance(login_required, bool):
            raise ServiceError("login_required is true or false.", field="login_required")
        cleaned["login_required"] = login_required
    return cleaned


def room_check_host(room: Room, user, *, action: str = "change this room") -> None:
    if not room_can_host(room, user):
        raise Forbidden(f"Only the host can {action}.")


def room_check_not_ended(room: Room) -> None:
    if room.status == Room.Status.ENDED:
        raise ServiceError("This room has ended.", code="ended")


def room_check_live(room: Room) -> None:
    room_check_not_ended(room)
    if room.status == Room.Status.PAUSED:
        raise ServiceError(
            "The room is paused; it opens again when the host resumes it.", code="paused"
        )


def room_check_host_capacity(host) -> None:
    running = Room.objects.filter(
        host=host, status__in=(Room.Status.LIVE, Room.Status.PAUSED)
    ).count()
    if running >= MAX_LIVE_ROOMS_PER_HOST:
        raise ServiceError(
            f"You already host {running} rooms that are on (at most "
            f"{MAX_LIVE_ROOMS_PER_HOST}); end one to start another.",
            code="too_many_rooms",
        )


def participant_check_may_take_part(
    room: Room, user, anon_key: str | None, *, to: str, now: datetime | None = None
) -> str:
    """The participant's key, if they may take part in the room at all (`to`: "propose",
    "vote"); the room must be live, and the host must not have muted or kicked them."""
    room_check_live(room)
    actor = participant_key(user, anon_key)
    if actor is None or (room.login_required and not actor.startswith("user:")):
        raise ServiceError(f"Sign in to {to} in this room.", code="login_required")
    participant_check_not_muted(room, actor, now=now)
    return actor


def participant_check_not_muted(room: Room, actor: str, *, now: datetime | None = None) -> None:
    """Refuses a participant the host muted (or kicked), until it runs out. Reads the room's
    row as the caller has it: no query."""
    moment = (now or timezone.now()).timestamp()
    until = participant_muted_until(room, actor, now=moment) or participant_kicked_until(
        room, actor, now=moment
    )
    if until is not None:
        minutes = max(1, math.ceil((until - moment) / 60))
        raise ServiceError(
            f"The host muted you in this room: you may listen, and propose or vote again in "
            f"{minutes} min.",
            code="muted",
        )


def proposal_check_author(room: Room, user, anon_key: str | None, *, now: datetime) -> str:
    """The author's participant key, if the room's gates let them propose (slow mode aside,
    which needs the database: proposal_check_slow_mode)."""
    actor = participant_check_may_take_part(room, user, anon_key, to="propose", now=now)
    if room_can_host(room, user):
        return actor
    if room.who_may_propose == Room.Proposers.HOST_ONLY:
        raise Forbidden("Only the host proposes in this room; vote on the ballot instead.")
    signed_in = actor.startswith("user:")
    if room.who_may_propose == Room.Proposers.LOGGED_IN and not signed_in:
        raise ServiceError("Sign in to propose in this room.", code="login_required")
    days = room.min_account_age_days
    if days:
        age = (now - user.date_joined) if signed_in else None
        if age is None or age < timedelta(days=days):
            yours = f" (yours is {age.days} days old)" if age is not None else ""
            raise ServiceError(
                f"Proposals in this room need an account at least {days} days old{yours}.",
                code="account_too_new",
            )
    return actor


def proposal_check_slow_mode(room: Room, actor: str, *, now: datetime) -> None:
    """Slow mode: one proposal per participant per `slow_mode_s` (the host is exempt).

    Two requests of one participant at the same instant may both pass; the per-participant rate
    limit (room_propose) is the hard bound, slow mode the host's pacing tool."""
    if not room.slow_mode_s or actor == f"user:{room.host_id}":
        return
    last = (
        Proposal.objects.filter(room=room, author_key=actor)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if last is None:
        return
    wait = room.slow_mode_s - (now - last).total_seconds()
    if wait > 0:
        raise ServiceError(
            f"Slow mode is on: wait {math.ceil(wait)} s before proposing again.",
            code="slow_mode",
        )


def proposal_clean(*, text: str | None, control: Mapping | None) -> tuple[str, str, dict]:
    """(kind, text, control) of a proposal: a prompt, or a control nudge labelled for the ballot."""
    if control:
        if text and str(text).strip():
            raise ServiceError(
                "A proposal is a prompt or a control nudge, not both.", field="control"
            )
        try:
            nudge = clean_nudge(control)
        except NudgeError as exc:
            raise ServiceError(str(exc), field="control") from exc
        return Proposal.Kind.CONTROL, describe_nudge(nudge)[:MAX_PROPOSAL_CHARS], nudge
    return Proposal.Kind.PROMPT, proposal_clean_text(text or ""), {}


def proposal_check_ballot(room: Room, round: Round, *, kind: str, text: str, status: str) -> None:
    """Room on the ballot (or in the host's queue), and not the same idea twice."""
    same = Proposal.objects.filter(room=room, kind=kind, text__iexact=text)
    if (
        same.filter(round=round, status=Proposal.Status.APPROVED).exists()
        or same.filter(status=Proposal.Status.PENDING).exists()
    ):
        raise ServiceError(
            f"“{text}” is already proposed: vote for it instead.", code="duplicate", field="text"
        )
    if status == Proposal.Status.APPROVED:
        on_ballot = Proposal.objects.filter(round=round, status=Proposal.Status.APPROVED).count()
        if on_ballot >= MAX_BALLOT:
            raise ServiceError(
                f"The ballot is full ({MAX_BALLOT} proposals): vote for one of them, or propose "
                "again next round.",
                code="ballot_full",
            )
    else:
        waiting = Proposal.objects.filter(room=room, status=Proposal.Status.PENDING).count()
        if waiting >= MAX_PENDING:
            raise ServiceError(
                f"The host has {waiting} proposals to look at; try again in a moment.",
                code="queue_full",
            )


# --- Helpers --------------------------------------------------------------------------------


def _round_length(room: Room) -> timedelta:
    """How long the room's rounds last (slow mode stretches them: collab.voting)."""
    end = round_ends_at(opened_at=0.0, length_s=room.round_length_s, slow_mode_s=room.slow_mode_s)
    return timedelta(seconds=end)


def _round_open(room: Room, *, number: int, now: datetime) -> Round:
    return Round.objects.create(
        room=room, number=number, opened_at=now, ends_at=now + _round_length(room)
    )


def _open_round_locked(room: Room) -> Round | None:
    return Round.objects.select_for_update().filter(room=room, status=Round.Status.OPEN).first()


def _lock(room: Room) -> Room:
    """The room's row, locked until the end of the caller's transaction."""
    return Room.objects.select_for_update().get(pk=room.pk)


def _copy_back(room: Room, locked: Room) -> None:
    """Let the caller's instance see what the locked copy now holds."""
    for field in room._meta.concrete_fields:
        setattr(room, field.attname, getattr(locked, field.attname))


def _steering_for(
    room: Room, blend: Mapping[str, float], new_nudges: Mapping[str, Proposal] | None = None
) -> dict:
    """The steering (Steering.as_dict) a blend gives the room, from its current controls.

    Prompts come from every prompt proposal in the blend; control nudges only from
    `new_nudges`: those already in the blend are part of the current controls."""
    ids = [int(k) for k in blend if k != ANCHOR and str(k).isdigit()]
    prompts = Proposal.objects.filter(
        pk__in=ids, kind=Proposal.Kind.PROMPT, status=Proposal.Status.APPROVED
    )
    proposals: dict[str, Proposal] = {str(p.pk): p for p in prompts}
    proposals.update(new_nudges or {})
    base = Steering.from_dict(room.current_steering or {}).controls
    return blend_to_steering(blend, proposals, base, anchor=room.anchor_prompt).as_dict()


def _room_resteer(room: Room, *, new_nudges: Mapping[str, Proposal] | None = None) -> None:
    """Set `room.current_steering` from its current blend (the caller saves the room); once
    that commits, the conductor is woken to remake what was made ahead under the old one."""
    room.current_steering = _steering_for(room, room.current_blend, new_nudges)
    transaction.on_commit(bell.ring_conductor)


def _round_counts(round: Round) -> dict[str, int]:
    """Votes per proposal among the approved ones, in the order they reached their count."""
    rows = (
        Vote.objects.filter(round=round, proposal__status=Proposal.Status.APPROVED)
        .order_by("updated_at", "id")
        .values_list("voter_key", "proposal_id")
    )
    return dict(tally({voter: str(proposal_id) for voter, proposal_id in rows}))


def _unique_slug(title: str) -> str:
    base = slugify(title)[: MAX_SLUG_CHARS - 7].strip("-") or "room"
    if not Room.objects.filter(slug=base).exists():
        return base
    return f"{base}-{secrets.token_hex(3)}"


# --- Rooms ----------------------------------------------------------------------------------


def room_create(
    *,
    host,
    title: str,
    anchor_prompt: str,
    mode: str = Room.Mode.FRIENDS,
    visibility: str = Room.Visibility.UNLISTED,
    round_length_s: int = 20,
    who_may_propose: str = Room.Proposers.EVERYONE,
    slow_mode_s: int = 0,
    min_account_age_days: int = 0,
    login_required: bool = False,
    controls: dict | None = None,
    seed: int | None = None,
    now: datetime | None = None,
) -> Room:
    """Open a live room playing its anchor prompt (under `controls`), with round 1 open."""
    ratelimit_enforce(domain="room_create", key=f"user:{host.pk}")
    now = now or timezone.now()
    title = room_clean_title(title)
    anchor = room_clean_anchor_prompt(anchor_prompt)
    gates = room_clean_settings(
        visibility=visibility,
        mode=mode,
        round_length_s=round_length_s,
        who_may_propose=who_may_propose,
        slow_mode_s=slow_mode_s,
        min_account_age_days=min_account_age_days,
        login_required=login_required,
    )
    start_controls = Controls.from_dict(song_clean_controls(controls))
    if seed is not None and (isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        raise ServiceError(f"Seed must be between 0 and {MAX_SEED}.", field="seed")
    room_check_host_capacity(host)

    for attempt in range(5):
        try:
            with transaction.atomic():
                room = Room.objects.create(
                    host=host,
                    title=title,
                    slug=_unique_slug(title),
                    anchor_prompt=anchor,
                    seed=seed if seed is not None else secrets.randbelow(MAX_SEED + 1),
                    current_blend={ANCHOR: 1.0},
                    current_steering=Steering(((anchor, 1.0),), start_controls).as_dict(),
                    **gates,
                )
                _round_open(room, number=1, now=now)
                return room
        except IntegrityError:  # another room took the slug between the check and the insert
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def room_update(
    *,
    room: Room,
    user,
    title: str | None = None,
    anchor_prompt: str | None = None,
    visibility: str | None = None,
    mode: str | None = None,
    round_length_s: int | None = None,
    who_may_propose: str | None = None,
    slow_mode_s: int | None = None,
    min_account_age_days: int | None = None,
    login_required: bool | None = None,
) -> Room:
    """Change a room's settings (host only). A new round length or slow mode applies from the
    next round; a new anchor prompt is heard at once. The slug never changes."""
    room_check_host(room, user)
    changes = room_clean_settings(
        visibility=visibility,
        mode=mode,
        round_length_s=round_length_s,
        who_may_propose=who_may_propose,
        slow_mode_s=slow_mode_s,
        min_account_age_days=min_account_age_days,
        login_required=login_required,
    )
    if title is not None:
        changes["title"] = room_clean_title(title)
    if anchor_prompt is not None:
        changes["anchor_prompt"] = room_clean_anchor_prompt(anchor_prompt)
    with transaction.atomic():
        locked = _lock(room)
        room_check_not_ended(locked)
        for name, value in changes.items():
            setattr(locked, name, value)
        fields = list(changes)
        if "anchor_prompt" in changes:
            _room_resteer(locked)
            fields.append("current_steering")
        if fields:
            locked.save(update_fields=[*fields, "updated_at"])
            broadcast.room_changed(locked)
    _copy_back(room, locked)
    return room


def room_pause(*, room: Room, user, now: datetime | None = None) -> Room:
    """Pause the room (host): no proposals or votes, and its open round stands still."""
    room_check_host(room, user, action="pause the room")
    with transaction.atomic():
        locked = _lock(room)
        room_check_not_ended(locked)
        if locked.status == Room.Status.LIVE:
            locked.status = Room.Status.PAUSED
            locked.save(update_fields=["status", "updated_at"])
            broadcast.room_changed(locked)
    _copy_back(room, locked)
    return room


def room_resume(*, room: Room, user, now: datetime | None = None) -> Room:
    """Resume a paused room (host); its open round gets a full round's time again."""
    room_check_host(room, user, action="resume the room")
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(room)
        room_check_not_ended(locked)
        if locked.status == Room.Status.PAUSED:
            locked.status = Room.Status.LIVE
            locked.save(update_fields=["status", "updated_at"])
            current = _open_round_locked(locked)
            if current is not None:
                current.ends_at = max(current.ends_at, now + _round_length(locked))
                current.save(update_fields=["ends_at"])
            broadcast.room_changed(locked)
    _copy_back(room, locked)
    return room


def room_end(*, room: Room, user, now: datetime | None = None) -> Room:
    """End the room for good (host): its open round closes with its votes counted for the
    record, and the music stays where it was."""
    room_check_host(room, user, action="end the room")
    return _room_end(room=room, now=now)


def _room_end(*, room: Room, now: datetime | None = None) -> Room:
    """room_end without the host check: for room_end, and room_moderate (whose caller checked
    the moderator)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(room)
        if locked.status != Room.Status.ENDED:
            current = _open_round_locked(locked)
            if current is not None:
                current.status = Round.Status.CLOSED
                current.closed_at = now
                current.tally = _round_counts(current)
                current.result_blend = locked.current_blend
                current.save(update_fields=["status", "closed_at", "tally", "result_blend"])
            locked.status = Room.Status.ENDED
            locked.ended_at = now
            locked.save(update_fields=["status", "ended_at", "updated_at"])
            broadcast.room_changed(locked)
    _copy_back(room, locked)
    return room


def room_moderate(
    *, room: Room, moderator, moderation: str, reason: str, end: bool = False, now=None
) -> Room:
    """Set the room's moderation state and, with `end`, end it (webapp.moderation.services
    calls this: it checks the moderator and writes the audit entry in the same transaction).

    Listeners hear why in a `moderated` frame; then the sockets of those who may no longer see
    the room close (hidden: everyone but admins), or all of them if it ended (4451)."""
    moderation = _clean_choice("moderation", moderation, Room.Moderation, "moderation state")
    now = now or timezone.now()
    with transaction.atomic():
        if end:
            _room_end(room=room, now=now)
        locked = _lock(room)
        locked.moderation = moderation
        locked.moderation_reason = reason
        locked.moderated_at = now
        locked.save(update_fields=["moderation", "moderation_reason", "moderated_at", "updated_at"])
        if end or moderation != Room.Moderation.VISIBLE:
            action = {Room.Moderation.REMOVED: "removed", Room.Moderation.HIDDEN: "hid"}.get(
                moderation, "closed"
            )
            broadcast.room_moderated(locked, action=action, reason=reason, everyone=end)
    _copy_back(room, locked)
    return room


# --- Host tools: mutes and kicks ---------------------------------------------------------------

DEFAULT_RESTRICTION_MINUTES = 10
MAX_RESTRICTION_MINUTES = 24 * 60
MAX_RESTRICTED = 1000  # participants muted or kicked at once in one room
MAX_RESTRICTION_REASON_CHARS = 500


def participant_resolve(*, room: Room, proposal_id=None, username=None) -> str:
    """The participant a host points at: the author of one of the room's proposals (how a
    signed-out participant is named), or an account by username. Their participant key."""
    if (proposal_id is None) == (username is None):
        raise ServiceError("Name one participant: a proposal_id or a username.", field="username")
    if proposal_id is not None:
        proposal = Proposal.objects.filter(room=room, pk=proposal_id).first()
        if proposal is None:
            raise NotFound("No such proposal in this room.")
        return proposal.author_key
    from django.contrib.auth import get_user_model

    account = get_user_model()._default_manager.filter(username=username).first()
    if account is None:
        raise NotFound("No such account.")
    return f"user:{account.pk}"


def participant_check_restrictable(room: Room, key: str) -> None:
    """Nobody mutes or kicks the room's host, nor an admin (who host every room)."""
    if key == f"user:{room.host_id}":
        raise ServiceError("The host cannot be muted or removed.", code="invalid")
    if key.startswith("user:"):
        from django.contrib.auth import get_user_model

        account = get_user_model()._default_manager.filter(pk=key[5:]).first()
        if account is not None and room_can_host(room, account):
            raise Forbidden("Admins cannot be muted or removed from a room.")


def _restrict(
    *, room: Room, host, key: str, what: str, until: float | None, reason: str, now: datetime
) -> None:
    """Set (or, with until None, clear) one restriction of a participant, under the room's row
    lock, pruning the ones that ran out; record it in the audit log; tell the participant."""
    tag = participant_tag(key)
    moment = now.timestamp()
    reason = " ".join(str(reason or "").split())[:MAX_RESTRICTION_REASON_CHARS]
    with transaction.atomic():
        locked = _lock(room)
        room_check_not_ended(locked)
        entries = {
            t: {w: u for w, u in entry.items() if isinstance(u, int | float) and u > moment}
            for t, entry in (locked.restrictions or {}).items()
        }
        entries = {t: entry for t, entry in entries.items() if entry}
        before = dict(entries.get(tag, {}))
        after = {w: u for w, u in before.items() if w != what}
        if until is not None:
            after[what] = round(until, 3)
        if after:
            entries[tag] = after
        else:
            entries.pop(tag, None)
        if len(entries) > MAX_RESTRICTED:
            raise ServiceError(
                f"At most {MAX_RESTRICTED} participants can be muted or removed at once.",
                code="too_many",
            )
        locked.restrictions = entries
        locked.save(update_fields=["restrictions", "updated_at"])
        action = {"muted_until": "mute", "kicked_until": "kick"}[what]
        audit_record(
            actor=host,
            action=f"room.{action if until is not None else 'un' + action}",
            target_type="room",
            target_id=room.pk,
            before={"participant": tag, **before},
            after={"participant": tag, **after},
            reason=reason,
        )
        minutes = max(1, math.ceil((until - moment) / 60)) if until is not None else 0
        if what == "kicked_until":
            frame = protocol.kicked_frame(until=until, now=moment)
            broadcast.participant_told(locked, tag, frame, close_code=protocol.CLOSE_KICKED)
        else:
            message = (
                f"The host muted you for {minutes} min: you may listen, not propose or vote."
                if until is not None
                else "The host unmuted you: you may propose and vote again."
            )
            frame = {
                "type": "notice",
                "code": "muted" if until is not None else "unmuted",
                "message": message,
                "until": round(until, 3) if until is not None else None,
            }
            broadcast.participant_told(locked, tag, frame)
    _copy_back(room, locked)


def _restriction_until(minutes, now: datetime) -> float:
    minutes = _clean_whole(
        "minutes",
        minutes,
        1,
        MAX_RESTRICTION_MINUTES,
        f"Minutes are 1 to {MAX_RESTRICTION_MINUTES}",
    )
    return now.timestamp() + 60 * minutes


def participant_mute(
    *, room: Room, user, key: str, minutes: int, reason: str = "", now: datetime | None = None
) -> float:
    """The host mutes a participant (`key`, an account or a signed-out session) for `minutes`:
    they may listen, not propose or vote. Their sockets get a `notice`. Returns until when."""
    room_check_host(room, user, action="mute participants")
    participant_check_restrictable(room, key)
    now = now or timezone.now()
    until = _restriction_until(minutes, now)
    _restrict(
        room=room, host=user, key=key, what="muted_until", until=until, reason=reason, now=now
    )
    return until


def participant_unmute(*, room: Room, user, key: str, now: datetime | None = None) -> None:
    room_check_host(room, user, action="unmute participants")
    now = now or timezone.now()
    _restrict(room=room, host=user, key=key, what="muted_until", until=None, reason="", now=now)


def participant_kick(
    *, room: Room, user, key: str, minutes: int, reason: str = "", now: datetime | None = None
) -> float:
    """The host removes a participant from the room: their sockets get an `error` `kicked` and
    close at once (4410), and they may not come back (nor propose or vote) for `minutes`."""
    room_check_host(room, user, action="remove participants")
    participant_check_restrictable(room, key)
    now = now or timezone.now()
    until = _restriction_until(minutes, now)
    _restrict(
        room=room, host=user, key=key, what="kicked_until", until=until, reason=reason, now=now
    )
    return until


# --- Proposals and votes ----------------------------------------------------------------------


def proposal_create(
    *,
    room: Room,
    user=None,
    anon_key: str | None = None,
    text: str | None = None,
    control: Mapping | None = None,
    now: datetime | None = None,
) -> Proposal:
    """Propose a prompt (`text`) or a control nudge (`control`) for the open round.

    In friends mode (and always for the host) it goes on the ballot at once; in audience mode it
    waits for the host (proposal_moderate). Every gate refuses with a ServiceError and creates
    nothing."""
    now = now or timezone.now()
    actor = participant_key(user, anon_key)
    if actor is not None:
        ratelimit_enforce(domain="room_propose", key=actor)
    room = Room.objects.get(pk=room.pk)  # the gates as they are now: a consumer's copy may be old
    actor = proposal_check_author(room, user, anon_key, now=now)
    kind, clean_text, nudge = proposal_clean(text=text, control=control)
    approved = room.mode == Room.Mode.FRIENDS or room_can_host(room, user)
    status = Proposal.Status.APPROVED if approved else Proposal.Status.PENDING
    with transaction.atomic():
        proposal_check_slow_mode(room, actor, now=now)
        # Locked, so that the round cannot close between this check and the insert.
        current = _open_round_locked(room)
        if current is None:
            raise ServiceError("This room has ended.", code="ended")
        proposal_check_ballot(room, current, kind=kind, text=clean_text, status=status)
        if approved:  # on the ballot: the conductor makes it a preview, GPU time the room pays
            ratelimit_enforce(domain="room_audition", key=f"room:{room.pk}")
        proposal = Proposal.objects.create(
            room=room,
            round=current,
            author=user if actor.startswith("user:") else None,
            author_key=actor,
            kind=kind,
            text=clean_text,
            control=nudge,
            status=status,
            created_at=now,
        )
        broadcast.proposal_changed(proposal, public=approved)
        return proposal


def proposal_moderate(
    *, proposal: Proposal, user, approve: bool, now: datetime | None = None
) -> Proposal:
    """Approve a proposal onto the open round's ballot, or reject it (host).

    A rejected proposal leaves the ballot (its votes stop counting) and, if the music already
    follows it, leaves the blend at once (a veto); a control nudge it applied stays applied."""
    room_check_host(proposal.room, user, action="moderate proposals")
    return proposal_set_status(proposal=proposal, user=user, approve=approve, now=now)


def proposal_set_status(
    *, proposal: Proposal, user, approve: bool, now: datetime | None = None
) -> Proposal:
    """proposal_moderate without the host check: the caller has checked that `user` may (the
    host, in proposal_moderate; a moderator, in webapp.moderation.services.proposal_reject)."""
    room = proposal.room
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(room)
        room_check_not_ended(locked)
        proposal = Proposal.objects.select_for_update().get(pk=proposal.pk)
        wanted = Proposal.Status.APPROVED if approve else Proposal.Status.REJECTED
        if proposal.status == wanted:
            return proposal
        was_on_ballot = proposal.status == Proposal.Status.APPROVED
        if approve:
            current = _open_round_locked(locked)
            if current is None:
                raise ServiceError("This room has ended.", code="ended")
            on_ballot = Proposal.objects.filter(
                round=current, status=Proposal.Status.APPROVED
            ).count()
            if on_ballot >= MAX_BALLOT:
                raise ServiceError(
                    f"The ballot is full ({MAX_BALLOT} proposals); approve this one next round.",
                    code="ballot_full",
                )
            proposal.round = current
        proposal.status = wanted
        proposal.moderated_at = now
        proposal.moderated_by = user
        proposal.save(update_fields=["round", "status", "moderated_at", "moderated_by"])
        # Listeners hear of proposals on the ballot, and of one leaving it; a pending one that
        # is turned down was only ever the host's business.
        broadcast.proposal_changed(proposal, public=approve or was_on_ballot)
        if was_on_ballot:
            broadcast.tally_changed(room_id=room.pk)  # its votes stop counting
        key = str(proposal.pk)
        if not approve and key in locked.current_blend:
            locked.current_blend = normalise(
                {k: w for k, w in locked.current_blend.items() if k != key}
            )
            _room_resteer(locked)
            locked.save(update_fields=["current_blend", "current_steering", "updated_at"])
            broadcast.steering_changed(locked)
    _copy_back(room, locked)
    return proposal


def vote_cast(
    *, proposal: Proposal, user=None, anon_key: str | None = None, now: datetime | None = None
) -> Vote:
    """Vote for an approved proposal of the open round; a participant's second vote in a round
    changes their first (same row).

    The single-vote entry point of the vote ingest path (collab.votes): the same checks and the
    same one-statement upsert as a batch of votes from websockets, here for a batch of one, in
    the caller's thread. Counted in the `room_vote` rate limit.

    Takes no lock on the round (every voter of a round would queue on it): a vote that lands
    while the round is closing may miss that round's tally, as a vote after the bell would."""
    from collab import votes  # the ingest path imports these services' checks

    request = votes.VoteRequest(
        room_id=str(proposal.room_id),
        proposal_id=proposal.pk,
        user=user,
        anon_key=anon_key,
        now=now or timezone.now(),
    )
    (result,) = votes.vote_write_batch([request])
    if isinstance(result, Exception):
        raise result
    return Vote.objects.get(round_id=result.round_id, voter_key=result.voter_key)


# --- Rounds ---------------------------------------------------------------------------------


def round_close(
    *,
    room: Room,
    number: int | None = None,
    now: datetime | None = None,
    rules: BlendRules = DEFAULT_RULES,
    cut: bool = False,
) -> Round:
    """Close the room's open round and open the next one; return the closed round.

    The votes (approved proposals only) become the next blend (collab.voting.next_blend: carry,
    cap, hysteresis, drift to the anchor when nobody votes), the blend becomes the room's steering
    (collab.steering_rules.blend_to_steering; the control nudges of this round that entered the
    blend are applied to the current controls). Unvoted proposals made in the last quarter of the
    round move to the next ballot: they had no time to be seen.

    Idempotent when `number` is given: closing a round that is already closed returns it and
    changes nothing, so two timers (or a timer and the host's "skip") may race. Holds the room's
    row lock for the whole change. Listeners hear the result on commit (`cut`: announced as the
    host's hard cut, see room_hard_cut)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(room)
        current = _open_round_locked(locked)
        if number is not None and (current is None or current.number != number):
            closed = Round.objects.filter(room=locked, number=number).first()
            if closed is None:
                raise NotFound("No such round.")
            return closed
        if current is None:
            raise ServiceError("This room has ended.", code="ended")
        room_check_live(locked)

        counts = _round_counts(current)
        blend = next_blend(counts, locked.current_blend, rules)
        new_nudges = {
            str(p.pk): p
            for p in Proposal.objects.filter(
                round=current, kind=Proposal.Kind.CONTROL, status=Proposal.Status.APPROVED
            )
            if str(p.pk) in blend
        }
        locked.current_blend = blend
        _room_resteer(locked, new_nudges=new_nudges)

        current.status = Round.Status.CLOSED
        current.closed_at = now
        current.tally = counts
        current.result_blend = blend
        current.cut = cut
        current.save(update_fields=["status", "closed_at", "tally", "result_blend", "cut"])
        following = _round_open(locked, number=current.number + 1, now=now)
        late = max(3.0, LATE_PROPOSAL_FRACTION * locked.round_length_s)
        Proposal.objects.filter(
            round=current,
            status=Proposal.Status.APPROVED,
            created_at__gte=now - timedelta(seconds=late),
            votes__isnull=True,
        ).update(round=following)
        locked.save(update_fields=["current_blend", "current_steering", "updated_at"])
        FeedbackEvent.objects.bulk_create(_choice_set_events(current))
        broadcast.round_closed(room=locked, closed=current, following=following, cut=cut)
    _copy_back(room, locked)
    return current


def round_skip(*, room: Room, user, now: datetime | None = None) -> Round:
    """Close the open round now (host): its votes count as if its time were up."""
    room_check_host(room, user, action="skip to the next round")
    current = Round.objects.filter(room=room, status=Round.Status.OPEN).first()
    if current is None:
        raise ServiceError("This room has ended.", code="ended")
    return round_close(room=room, number=current.number, now=now)


# The vote alone decides, nothing carried over or held back: a clean break. Nobody voted: back to
# the anchor prompt.
HARD_CUT_RULES = BlendRules(
    max_share=1.0, carry=0.0, enter_weight=0.0, exit_weight=0.0, idle_pull=1.0
)


def room_hard_cut(*, room: Room, user, now: datetime | None = None) -> Round:
    """The host's reset: close the open round now into exactly what its votes say (the anchor
    prompt if nobody voted), with nothing of the previous blend carried over, and announce it
    as a cut, which clients and the conductor play at once rather than ramping in."""
    room_check_host(room, user, action="cut to the vote")
    current = Round.objects.filter(room=room, status=Round.Status.OPEN).first()
    if current is None:
        raise ServiceError("This room has ended.", code="ended")
    return round_close(room=room, number=current.number, now=now, rules=HARD_CUT_RULES, cut=True)


# --- Chunks and keeping ---------------------------------------------------------------------


def _storage_name(path: str) -> str:
    """A chunk's audio as a name in media storage (workers may report absolute paths)."""
    if not os.path.isabs(path):
        return path
    root = Path(settings.MEDIA_ROOT).resolve()
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        raise ServiceError(
            f"Chunk audio must be stored under MEDIA_ROOT ({root}); got {path}.", field="audio"
        ) from None


def chunk_record(
    *,
    room: Room,
    sequence: int,
    start_s: float,
    duration_s: float,
    audio: str,
    steering: dict | None = None,
    provenance: dict | None = None,
) -> Chunk:
    """Record a generated chunk of the room's music. Idempotent by (room, sequence): recording
    a sequence again (a redelivered task) returns the first record unchanged.

    `audio` is the file's name in media storage, or an absolute path under MEDIA_ROOT;
    `steering` defaults to the room's current steering."""
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        raise ServiceError("A chunk's sequence is a whole number from 0.", field="sequence")
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ServiceError("A chunk starts at 0 s or later.", field="start_s")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ServiceError("A chunk lasts longer than 0 s.", field="duration_s")
    existing = Chunk.objects.filter(room=room, sequence=sequence).first()
    if existing is not None:
        return existing
    name = _storage_name(str(audio))
    try:
        with transaction.atomic():
            chunk = Chunk.objects.create(
                room=room,
                sequence=sequence,
                start_s=float(start_s),
                duration_s=float(duration_s),
                audio=name,
                steering=steering if steering is not None else room.current_steering,
                provenance=provenance or {},
            )
            broadcast.chunk_recorded(chunk)
            return chunk
    except IntegrityError:  # recorded by a concurrent call
        return Chunk.objects.get(room=room, sequence=sequence)


def chunk_replace(
    *,
    room: Room,
    sequence: int,
    revision: int,
    duration_s: float,
    audio: str,
    steering: dict | None = None,
    provenance: dict | None = None,
    not_before_s: float | None = None,
    splice_s: float = 0.0,
) -> Chunk | None:
    """Put a remade chunk in the place of one nobody has heard yet: the steering changed after
    it was made (collab.conductor rewinds). The chunks after it go (they continued the old
    one); listeners get the chunk again with its new `revision` and drop what they had
    scheduled from it on (docs/protocol.md).

    A splice (`splice_s` > 0): the remake is the same music as the chunk for its first
    `splice_s` seconds, so listeners may already be hearing the chunk: they switch to the
    remake at that point (the chunk frame's `splice_s`), and what was not heard yet is the
    moment from which it must be in place.

    Returns None, changing nothing, when the chunk is no longer there, already has this
    revision or a later one, or its new part starts before `not_before_s` on the room's
    timeline (it may be playing by now: then it stays as it was)."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ServiceError("A chunk lasts longer than 0 s.", field="duration_s")
    if not (math.isfinite(splice_s) and 0.0 <= splice_s < duration_s):
        raise ServiceError("A splice lies within the chunk.", field="splice_s")
    name = _storage_name(str(audio))
    with transaction.atomic():
        chunk = Chunk.objects.select_for_update().filter(room=room, sequence=sequence).first()
        if chunk is None or chunk.revision >= revision:
            return None
        if not_before_s is not None and chunk.start_s + splice_s < not_before_s:
            return None
        chunk.revision = revision
        chunk.duration_s = float(duration_s)
        chunk.audio = name
        chunk.steering = steering if steering is not None else room.current_steering
        chunk.provenance = (
            {**(provenance or {}), "splice_s": splice_s} if splice_s else (provenance or {})
        )
        chunk.save(update_fields=["revision", "duration_s", "audio", "steering", "provenance"])
        Chunk.objects.filter(room=room, sequence__gt=sequence).delete()
        broadcast.chunk_recorded(chunk)
    return chunk


# --- Auditions ----------------------------------------------------------------------------------

AUDITION_MAX_ATTEMPTS = 2


def proposal_preview_steering(proposal: Proposal, room: Room | None = None) -> dict:
    """The steering the room would take if this proposal got every vote of the round: what its
    audition is made under (Steering.as_dict). Changes nothing."""
    room = room if room is not None else proposal.room
    blend = next_blend({str(proposal.pk): 1}, room.current_blend, DEFAULT_RULES)
    # A nudge applies once, as it would when it wins; a prompt is in the blend in any case.
    return _steering_for(room, blend, {str(proposal.pk): proposal})


def audition_request(*, proposal: Proposal, now: datetime | None = None) -> Audition:
    """Mark a proposal's audition as asked for (the conductor, which then asks the engine).
    Asking again for one still pending counts an attempt."""
    now = now or timezone.now()
    audition, created = Audition.objects.get_or_create(
        proposal=proposal, defaults={"room_id": proposal.room_id, "asked_at": now}
    )
    if not created and audition.status == Audition.Status.PENDING:
        audition.attempts += 1
        audition.asked_at = now
        audition.save(update_fields=["attempts", "asked_at"])
    return audition


def audition_record(
    *,
    audition: Audition,
    audio: str,
    duration_s: float,
    steering: dict | None = None,
    provenance: dict | None = None,
) -> Audition:
    """The preview is made: store it and tell the room (an `audition` frame). Idempotent."""
    if audition.status == Audition.Status.READY:
        return audition
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ServiceError("An audition lasts longer than 0 s.", field="duration_s")
    audition.audio = _storage_name(str(audio))
    audition.duration_s = float(duration_s)
    audition.steering = steering or {}
    audition.provenance = provenance or {}
    audition.status = Audition.Status.READY
    with transaction.atomic():
        audition.save(update_fields=["audio", "duration_s", "steering", "provenance", "status"])
        broadcast.audition_ready(audition)
    return audition


def audition_fail(*, audition: Audition) -> Audition:
    """Give up on a preview (asked for too often): the ballot shows the proposal without one."""
    audition.status = Audition.Status.FAILED
    audition.save(update_fields=["status"])
    return audition


def _choice_set_events(round: Round) -> list[FeedbackEvent]:
    """Votes between auditioned proposals as choice sets for tuning: one `vote` event per vote
    for a proposal with a preview, when the ballot had two or more previews to choose from.
    The target is the chosen preview; `choice_set` names the round; `slot` is the preview's
    place among them; `conditioning` holds every candidate (audition id and steering)."""
    auditions = list(
        Audition.objects.filter(
            proposal__round=round,
            proposal__status=Proposal.Status.APPROVED,
            status=Audition.Status.READY,
        ).order_by("proposal_id")
    )
    if len(auditions) < 2:
        return []
    by_proposal = {a.proposal_id: (slot, a) for slot, a in enumerate(auditions)}
    candidates = [
        {"audition": a.pk, "proposal": a.proposal_id, "steering": a.steering} for a in auditions
    ]
    events = []
    for vote in Vote.objects.filter(round=round, proposal_id__in=list(by_proposal)):
        slot, audition = by_proposal[vote.proposal_id]
        seed = (audition.provenance or {}).get("seed")
        events.append(
            FeedbackEvent(
                kind=FeedbackEvent.Kind.VOTE,
                user_id=vote.voter_id,
                actor=vote.voter_key,
                target_type=FeedbackEvent.TargetType.AUDITION,
                target_id=str(audition.pk),
                value=1.0,
                choice_set=f"round:{round.pk}",
                slot=slot,
                model_version=str((audition.provenance or {}).get("model_version", ""))[:64],
                seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                conditioning={"room": str(round.room_id), "candidates": candidates},
                server_ts=round.closed_at or timezone.now(),
            )
        )
    return events


def chunk_thumb(
    *,
    room: Room,
    sequence: int,
    up: bool,
    user=None,
    anon_key: str | None = None,
    client_event_id: str = "",
) -> FeedbackEvent:
    """A listener's thumb on a chunk of the room's music, appended to the feedback table as a
    ``chunk`` target (target_id: the chunk's id) with the chunk's provenance: its model
    version and seed, and as conditioning its steering, room and sequence.

    Counted in the feedback rate-limit domain, like every feedback event; retries with the same
    `client_event_id` are recorded once."""
    actor = feedback_actor(user=user, session_key=anon_key)
    ratelimit_enforce(domain="feedback", key=actor)
    chunk = Chunk.objects.filter(room=room, sequence=sequence).first()
    if chunk is None:
        raise NotFound("No such chunk in this room.")
    if client_event_id:
        known = FeedbackEvent.objects.filter(actor=actor, client_event_id=client_event_id).first()
        if known is not None:
            return known
    kind = FeedbackEvent.Kind.THUMB_UP if up else FeedbackEvent.Kind.THUMB_DOWN
    seed = chunk.provenance.get("seed")
    event = FeedbackEvent(
        kind=kind,
        user=user if actor.startswith("user:") else None,
        actor=actor,
        target_type=FeedbackEvent.TargetType.CHUNK,
        target_id=str(chunk.pk),
        value=THUMBS[kind],
        model_version=str(chunk.provenance.get("model_version", ""))[:64],
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else room.seed,
        conditioning={
            "room": str(room.pk),
            "sequence": chunk.sequence,
            "steering": chunk.steering,
        },
        client_event_id=client_event_id,
    )
    try:
        with transaction.atomic():
            event.save(force_insert=True)
    except IntegrityError:  # the same retry, a moment earlier
        return FeedbackEvent.objects.get(actor=actor, client_event_id=client_event_id)
    return event


def _keep_prompt(chunks: list[Chunk], anchor: str) -> str:
    """The prompts heard in the kept stretch, most heard first."""
    heard: dict[str, float] = {}
    for chunk in chunks:
        for text, weight in Steering.from_dict(chunk.steering or {}).prompts:
            heard[text] = heard.get(text, 0.0) + weight * chunk.duration_s
    ranked = [text for text, _ in sorted(heard.items(), key=lambda item: -item[1])][:3]
    return (" + ".join(ranked) or anchor)[:MAX_SONG_PROMPT_CHARS]


def _steering_history(chunks: list[Chunk]) -> list[dict]:
    history: list[dict] = []
    for chunk in chunks:
        if not history or history[-1]["steering"] != chunk.steering:
            history.append(
                {"sequence": chunk.sequence, "start_s": chunk.start_s, "steering": chunk.steering}
            )
    return history


def room_keep(
    *,
    room: Room,
    user,
    seconds: float,
    title: str | None = None,
    visibility: str = Song.Visibility.PRIVATE,
) -> Song:
    """Keep the last `seconds` (10..600) of the room's music as a ready song owned by `user`
    (any signed-in participant), with the chunks' sequences and steering in its provenance.

    The caller fetched the room through room_get_for_viewer. Reads and encodes up to ten minutes
    of audio in the calling thread (about a second)."""
    if user is None or not user.is_authenticated:
        raise ServiceError("Sign in to keep music from a room.", code="login_required")
    ratelimit_enforce(domain="room_keep", key=f"user:{user.pk}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ServiceError("How many seconds should be kept?", field="seconds")
    if not MIN_SONG_SECONDS <= seconds <= MAX_SONG_SECONDS:
        raise ServiceError(
            f"Keep between {MIN_SONG_SECONDS:.0f} and {MAX_SONG_SECONDS:.0f} seconds; "
            f"got {seconds:g}.",
            field="seconds",
        )
    if visibility not in Song.Visibility.values:
        raise ServiceError(f"Unknown visibility {visibility!r}.", field="visibility")
    song_title = _clean_line(
        title if title is not None else f"{room.title} (kept)",
        limit=MAX_SONG_TITLE_CHARS,
        empty="A song needs a title.",
        too_long="Song titles are at most {limit} characters.",
        field="title",
    )

    chunks: list[Chunk] = []
    heard = 0.0
    for chunk in Chunk.objects.filter(room=room).order_by("-sequence")[:MAX_KEEP_CHUNKS]:
        chunks.append(chunk)
        heard += chunk.duration_s
        if heard >= seconds:
            break
    chunks.reverse()
    if heard < MIN_SONG_SECONDS:
        raise ServiceError(
            f"The room has played {heard:.0f} s so far; keep at least {MIN_SONG_SECONDS:.0f} s.",
            code="too_short",
            field="seconds",
        )

    clips = []
    for chunk in chunks:
        try:
            with chunk.audio.open("rb") as file:
                clips.append(room_audio.read_clip(file))
        except (OSError, RuntimeError) as exc:  # soundfile raises LibsndfileError (RuntimeError)
            logger.warning("room %s: chunk %s unreadable: %s", room.pk, chunk.sequence, exc)
            raise ServiceError(
                "Part of that stretch is no longer stored; keep a shorter one.",
                code="audio_missing",
                field="seconds",
            ) from exc
    pcm, sample_rate, skipped_s = room_audio.join_tail(clips, seconds)
    duration = len(pcm) / sample_rate
    if duration < MIN_SONG_SECONDS - 1e-6:
        raise ServiceError(
            f"Only {duration:.1f} s of audio is stored; keep at least {MIN_SONG_SECONDS:.0f} s.",
            code="too_short",
            field="seconds",
        )
    master = song_audio.encode(pcm, sample_rate, song_audio.FORMATS["flac"])
    last = chunks[-1]
    last_steering = Steering.from_dict(last.steering or {})
    # Model versions heard in the stretch, the latest first (a canary may have taken over).
    versions_heard = list(
        dict.fromkeys(
            str(c.provenance["model_version"])
            for c in reversed(chunks)
            if c.provenance.get("model_version")
        )
    )

    with transaction.atomic():
        song = Song(
            owner=user,
            title=song_title,
            prompt=_keep_prompt(chunks, room.anchor_prompt),
            duration_s=min(max(duration, MIN_SONG_SECONDS), MAX_SONG_SECONDS),
            seed=room.seed,
            guidance=float(last.provenance.get("guidance", 3.0)),
            controls=last_steering.controls.as_dict(),
            expand_prompt=False,
            status=Song.Status.READY,
            progress=1.0,
            model_version=(versions_heard[0] if versions_heard else "room")[:64],
            provenance={
                "source": "room",
                "room": str(room.pk),
                "room_title": room.title,
                "seed": room.seed,
                "kept_s": round(duration, 3),
                "chunks": [c.sequence for c in chunks],
                "first_chunk_from_s": round(skipped_s, 3),  # where in the first chunk it starts
                "steering": _steering_history(chunks),
                "model_versions": versions_heard,
            },
            visibility=visibility,
            started_at=timezone.now(),
            finished_at=timezone.now(),
        )
        song_store_master(song=song, pcm=pcm, sample_rate=sample_rate, master=master)
        song.save(force_insert=True)
    return song
