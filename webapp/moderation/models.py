"""Moderation: reports from people, sanctions on accounts, and the audit log of every action.

Who moderates: superusers, and staff users who hold the `moderation.moderate` permission (the
"moderators" group carries it; webapp.moderation.permissions). Everything they do goes through
webapp.moderation.services, which writes one AuditEntry per action in the action's transaction.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

MAX_DETAILS_CHARS = 1000  # a report's free text
MAX_REASON_CHARS = 1000  # a moderator's reason
MAX_TARGET_ID_CHARS = 64


class TargetType(models.TextChoices):
    """What a report or an audit entry is about."""

    SONG = "song"
    ROOM = "room"
    PROPOSAL = "proposal"
    USER = "user"


class Report(models.Model):
    """One person's report of one thing. A reporter has at most one open report per target: a
    second report of the same thing updates the first (reason, details, time)."""

    class Reason(models.TextChoices):
        IMPERSONATION = "impersonation"
        HATE = "hate"
        SEXUAL = "sexual"
        SPAM = "spam"
        COPYRIGHT = "copyright"
        OTHER = "other"

    class Status(models.TextChoices):
        OPEN = "open"
        ACTIONED = "actioned"  # a moderator acted on the target (hid it, banned its author...)
        DISMISSED = "dismissed"  # a moderator looked and left the target as it was

    # None: the site itself reported it (a sign-up flagged as a banned person's: SignupBlock).
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reports_made",
    )
    target_type = models.CharField(max_length=16, choices=TargetType.choices)
    target_id = models.CharField(max_length=MAX_TARGET_ID_CHARS)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    details = models.TextField(max_length=MAX_DETAILS_CHARS, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)  # a repeat report moves it
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    resolution = models.CharField(max_length=64, blank=True)  # the action that closed it

    class Meta:
        ordering = ("-updated_at", "-id")
        permissions = [
            ("moderate", "Can moderate: act on reports, hide and remove content, sanction users")
        ]
        indexes = [
            models.Index(fields=["target_type", "target_id", "status"], name="report_target"),
            models.Index(
                fields=["-updated_at"], name="report_open_queue", condition=models.Q(status="open")
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["reporter", "target_type", "target_id"],
                condition=models.Q(status="open"),
                name="report_one_open_per_reporter_and_target",
            ),
            models.CheckConstraint(
                condition=models.Q(status="open", resolved_at__isnull=True)
                | (~models.Q(status="open") & models.Q(resolved_at__isnull=False)),
                name="report_resolved_at_iff_closed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} report of {self.target_type} {self.target_id} ({self.status})"


class Sanction(models.Model):
    """A suspension (until a time) or a ban (for good) of an account. In force while not lifted
    and, for a suspension, until `ends_at`. A sanctioned account cannot log in, its API tokens
    and sessions stop working, and its open websockets are closed (docs/moderation.md)."""

    class Kind(models.TextChoices):
        SUSPENSION = "suspension"
        BAN = "ban"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sanctions"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.TextField(max_length=MAX_REASON_CHARS)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True)  # suspensions only
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ("-starts_at", "-id")
        indexes = [
            # Every authentication asks this: the account's sanctions not lifted.
            models.Index(
                fields=["user"],
                name="sanction_unlifted",
                condition=models.Q(lifted_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="ban", ends_at__isnull=True)
                | models.Q(kind="suspension", ends_at__isnull=False),
                name="sanction_suspensions_end_bans_do_not",
            ),
        ]

    def __str__(self) -> str:
        until = f" until {self.ends_at:%Y-%m-%d %H:%M}" if self.ends_at else ""
        return f"{self.kind} of {self.user_id}{until}"

    def in_force(self, now=None) -> bool:
        now = now or timezone.now()
        if self.lifted_at is not None or self.starts_at > now:
            return False
        return self.ends_at is None or self.ends_at > now

    def describe(self) -> str:
        """The sanction as its subject is told (login form, API, websocket error frames)."""
        if self.kind == self.Kind.BAN:
            return "This account is banned."
        return f"This account is suspended until {self.ends_at:%Y-%m-%d %H:%M} UTC."


class LoginAddress(models.Model):
    """An address an account signed in from, as a keyed digest (HMAC with the site's secret key:
    never the address itself; webapp.moderation.signup). Kept CHORUS_LOGIN_ADDRESS_DAYS, so that
    a ban can remember where the banned person signed in from lately (SignupBlock)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "digest"], name="login_address_once"),
        ]
        indexes = [models.Index(fields=["last_seen_at"], name="login_address_seen")]

    def __str__(self) -> str:
        return f"account {self.user_id} from {self.digest[:12]}… ({self.last_seen_at:%Y-%m-%d})"


class SignupBlock(models.Model):
    """An address (digest) that a banned account signed in from lately: sign-ups from it are
    refused or flagged (CHORUS_SIGNUP_BLOCK_ACTION) until `expires_at`, or until the ban is
    lifted, whichever comes first."""

    digest = models.CharField(max_length=64)
    sanction = models.ForeignKey(Sanction, on_delete=models.CASCADE, related_name="signup_blocks")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["digest", "expires_at"], name="signup_block_digest")]

    def __str__(self) -> str:
        return f"sign-ups from {self.digest[:12]}… until {self.expires_at:%Y-%m-%d %H:%M}"


class AuditEntryIsAppendOnly(Exception):
    """The audit log is never changed: entries are only ever added."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditEntryIsAppendOnly("audit entries are append-only: they are never updated")

    def delete(self):
        raise AuditEntryIsAppendOnly("audit entries are append-only: they are never deleted")

    # bulk_update goes through update(); the delete of a single row through the model's delete().


class AuditEntry(models.Model):
    """One moderation or host action: who did what to what, the state before and after, why.

    Append-only, twice over: this model refuses updates and deletes (save of an existing row,
    delete, queryset update and delete), and on PostgreSQL a trigger refuses UPDATE and DELETE
    on the table whatever the client (migration 0002). The actor is kept by id and by name, with
    no database constraint, so deleting an account never has to touch the log."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150, blank=True)  # the username at the time
    action = models.CharField(max_length=64)  # "song.hide", "user.ban", "room.mute"...
    target_type = models.CharField(max_length=16, choices=TargetType.choices)
    target_id = models.CharField(max_length=MAX_TARGET_ID_CHARS)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["target_type", "target_id", "-created_at"], name="audit_target"),
            models.Index(fields=["-created_at"], name="audit_newest"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label or 'system'} {self.action} {self.target_type} {self.target_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AuditEntryIsAppendOnly("audit entries are append-only: they are never updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEntryIsAppendOnly("audit entries are append-only: they are never deleted")
