"""Rooms: a track that never stops, steered by rounds of proposals and votes.

A room plays its *current steering* (generation.steering.Steering as a dict), resolved from its
*current blend* (weights over proposals and the anchor prompt, collab.voting). Each round collects
proposals and votes; closing it turns the votes into the next blend (collab.voting.next_blend)
and the blend into the next steering (collab.steering_rules.blend_to_steering). The music itself
is a sequence of chunks on the room's timeline.

People take part as *participants*, named by a key: ``user:<id>`` for accounts, ``anon:<session>``
for signed-out listeners (the feedback table's actor convention). Slow mode, rate limits and the
one-vote-per-round rule count by that key.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from collab.voting import ANCHOR

MAX_TITLE_CHARS = 100
MAX_SLUG_CHARS = 80
MAX_ANCHOR_CHARS = 500
MAX_PROPOSAL_CHARS = 200
MAX_KEY_CHARS = 80  # participant keys: "user:<id>", "anon:<session key>", "system"
ROUND_LENGTH_RANGE = (5, 120)
SLOW_MODE_RANGE = (0, 300)
ACCOUNT_AGE_RANGE = (0, 365)


def new_share_token() -> str:
    return secrets.token_urlsafe(16)  # 128 bits: unguessable


def anchor_blend() -> dict:
    return {ANCHOR: 1.0}


def chunk_upload_to(chunk: Chunk, filename: str) -> str:
    return f"rooms/{chunk.room_id}/{filename}"


class Room(models.Model):
    class Visibility(models.TextChoices):
        PUBLIC = "public"  # listed, anyone may join
        UNLISTED = "unlisted"  # anyone with the share link
        PRIVATE = "private"  # the host (and admins) only

    class Mode(models.TextChoices):
        FRIENDS = "friends"  # proposals go on the ballot at once
        AUDIENCE = "audience"  # proposals wait for the host's approval

    class Status(models.TextChoices):
        LIVE = "live"
        PAUSED = "paused"
        ENDED = "ended"

    class Proposers(models.TextChoices):
        EVERYONE = "everyone"  # signed-out listeners too, unless login_required
        LOGGED_IN = "logged_in"
        HOST_ONLY = "host_only"

    class Moderation(models.TextChoices):
        VISIBLE = "visible"
        HIDDEN = "hidden"  # by a moderator: off the list, only admins may join; reversible
        REMOVED = "removed"  # taken down with a recorded reason: ended, only admins may open it

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    host = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hosted_rooms"
    )
    title = models.CharField(max_length=MAX_TITLE_CHARS)
    # From the title when the room is made; it never changes, so links keep working.
    slug = models.SlugField(max_length=MAX_SLUG_CHARS, unique=True)
    share_token = models.CharField(max_length=32, unique=True, default=new_share_token)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.UNLISTED
    )
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.FRIENDS)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LIVE)
    round_length_s = models.PositiveSmallIntegerField(
        default=20,
        validators=[
            MinValueValidator(ROUND_LENGTH_RANGE[0]),
            MaxValueValidator(ROUND_LENGTH_RANGE[1]),
        ],
    )

    # Gates on taking part.
    who_may_propose = models.CharField(
        max_length=16, choices=Proposers.choices, default=Proposers.EVERYONE
    )
    slow_mode_s = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(SLOW_MODE_RANGE[1])]
    )
    min_account_age_days = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(ACCOUNT_AGE_RANGE[1])]
    )
    # Only signed-in people may propose or vote (listening is up to `visibility`).
    login_required = models.BooleanField(default=False)
    # The host's mutes and kicks: {participant tag: {"muted_until": unix s, "kicked_until":
    # unix s}} (collab.selectors.participant_tag; expired ones are pruned on each change). On the
    # row because every vote and proposal reads the room already: checking costs no query.
    restrictions = models.JSONField(default=dict, blank=True)

    # Set by moderators only (webapp.moderation.services), never by the host.
    moderation = models.CharField(
        max_length=16, choices=Moderation.choices, default=Moderation.VISIBLE
    )
    moderation_reason = models.TextField(blank=True)
    moderated_at = models.DateTimeField(null=True, blank=True)

    anchor_prompt = models.TextField(max_length=MAX_ANCHOR_CHARS)  # the music when nobody votes
    seed = models.BigIntegerField()
    current_blend = models.JSONField(default=anchor_blend)  # {proposal id | "anchor": weight}
    current_steering = models.JSONField(default=dict)  # generation.steering.Steering.as_dict()

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(
                fields=["-created_at", "-id"],
                name="room_public_newest",
                condition=models.Q(visibility="public", status__in=("live", "paused")),
            ),
            models.Index(fields=["host", "status"], name="room_host_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(round_length_s__gte=ROUND_LENGTH_RANGE[0])
                & models.Q(round_length_s__lte=ROUND_LENGTH_RANGE[1]),
                name="room_round_length_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(slow_mode_s__lte=SLOW_MODE_RANGE[1]),
                name="room_slow_mode_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(min_account_age_days__lte=ACCOUNT_AGE_RANGE[1]),
                name="room_account_age_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(status="ended", ended_at__isnull=False)
                | (~models.Q(status="ended") & models.Q(ended_at__isnull=True)),
                name="room_ended_at_iff_ended",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status == self.Status.LIVE


class Round(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    tally = models.JSONField(default=dict, blank=True)  # {proposal id: votes}, set on close
    result_blend = models.JSONField(default=dict, blank=True)  # the blend it led to
    # Closed by the host's hard cut: the next chunk starts the music afresh (collab.conductor).
    cut = models.BooleanField(default=False)

    class Meta:
        ordering = ("room", "number")
        indexes = [
            # The conductor's sweep: open rounds whose time is up.
            models.Index(
                fields=["ends_at"], name="round_open_ends_at", condition=models.Q(status="open")
            ),
            # The conductor: each room's latest hard cut.
            models.Index(
                fields=["room", "-number"], name="round_cuts", condition=models.Q(cut=True)
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["room", "number"], name="round_number_once"),
            models.UniqueConstraint(
                fields=["room"], condition=models.Q(status="open"), name="round_one_open_per_room"
            ),
            models.CheckConstraint(
                condition=models.Q(ends_at__gte=models.F("opened_at")),
                name="round_ends_after_it_opens",
            ),
            models.CheckConstraint(
                condition=models.Q(status="closed", closed_at__isnull=False)
                | models.Q(status="open", closed_at__isnull=True),
                name="round_closed_at_iff_closed",
            ),
        ]

    def __str__(self) -> str:
        return f"round {self.number} of {self.room_id} ({self.status})"


class Proposal(models.Model):
    class Kind(models.TextChoices):
        PROMPT = "prompt"
        CONTROL = "control"

    class Status(models.TextChoices):
        PENDING = "pending"  # audience mode: waiting for the host
        APPROVED = "approved"  # on the ballot
        REJECTED = "rejected"  # off the ballot; its votes no longer count

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="proposals")
    # The round whose ballot it is on (for a pending one: the round it was made in; approval
    # moves it to the round open at that moment).
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="proposals")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="room_proposals",
    )
    author_key = models.CharField(max_length=MAX_KEY_CHARS)  # the participant key, see above
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # The prompt; for a control nudge, its label ("+8 BPM, add strings").
    text = models.CharField(max_length=MAX_PROPOSAL_CHARS)
    control = models.JSONField(default=dict, blank=True)  # collab.steering_rules canonical nudge
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.APPROVED)
    created_at = models.DateTimeField(default=timezone.now)
    moderated_at = models.DateTimeField(null=True, blank=True)
    moderated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ("created_at", "id")
        indexes = [
            models.Index(fields=["round", "status"], name="proposal_ballot"),
            models.Index(fields=["room", "status", "created_at"], name="proposal_room_queue"),
            models.Index(fields=["room", "author_key", "-created_at"], name="proposal_slow_mode"),
        ]
        constraints = [
            models.CheckConstraint(condition=~models.Q(text=""), name="proposal_has_text"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text} ({self.status})"


class Vote(models.Model):
    """One participant's vote in one round; changing it updates this row."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="votes")
    proposal = models.ForeignKey(Proposal, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="room_votes",
    )
    voter_key = models.CharField(max_length=MAX_KEY_CHARS)  # the participant key, see above
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)  # services set it when a vote changes

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "voter_key"], name="vote_once_per_round"),
        ]

    def __str__(self) -> str:
        return f"{self.voter_key} -> {self.proposal_id} (round {self.round_id})"


class Chunk(models.Model):
    """A stretch of a room's music, as generated (generation.tasks.rooms_next_chunks)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="chunks")
    sequence = models.PositiveIntegerField()
    start_s = models.FloatField()  # on the room's timeline
    duration_s = models.FloatField()
    audio = models.FileField(upload_to=chunk_upload_to, max_length=255)  # name in media storage
    # 0 as first made; up by one each time it is made again before anyone heard it (the steering
    # changed: collab.conductor rewinds). Its URL names the revision, so caches never mix them.
    revision = models.PositiveSmallIntegerField(default=0)
    steering = models.JSONField(default=dict)  # what it was generated under (Steering.as_dict)
    provenance = models.JSONField(default=dict, blank=True)  # model version, seed, batch...
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("room", "sequence")
        constraints = [
            models.UniqueConstraint(fields=["room", "sequence"], name="chunk_sequence_once"),
            models.CheckConstraint(condition=models.Q(duration_s__gt=0), name="chunk_has_length"),
            models.CheckConstraint(condition=models.Q(start_s__gte=0), name="chunk_starts_at_0"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.sequence} of {self.room_id}"


class Audition(models.Model):
    """A short preview of a proposal: the room's music continued for a few seconds under the
    steering the proposal would give it, made from the room's current context (collab.conductor)
    so that listeners can hear an idea before they vote for it. Never part of the room's stream."""

    class Status(models.TextChoices):
        PENDING = "pending"  # asked for
        READY = "ready"
        FAILED = "failed"  # asked for too often without an answer; the ballot shows none

    proposal = models.OneToOneField(Proposal, on_delete=models.CASCADE, related_name="audition")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="auditions")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=1)
    asked_at = models.DateTimeField(default=timezone.now)
    audio = models.FileField(upload_to=chunk_upload_to, max_length=255, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    steering = models.JSONField(default=dict, blank=True)  # what the preview was made under
    provenance = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["asked_at"], name="audition_pending", condition=models.Q(status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"audition of proposal {self.proposal_id} ({self.status})"
