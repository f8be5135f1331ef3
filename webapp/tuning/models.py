"""Model versions, what each learned from, and every decision taken about them.

A version is one LM checkpoint (with the critic trained beside it, if any). It is *named by its
checkpoint's file stem*, because that is the name the engine reports and the feedback table's
``model_version`` carries: the feedback on a version's songs finds its way back here by name.

    candidate --start canary--> canary --promote--> promoted --(a newer one)--> retired
                                   \\--roll back--> rolled_back

At most one version is promoted (serves everything outside canaries) and one is in canary.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate"  # registered, serves nothing yet
        CANARY = "canary"  # serves `canary_share` of new songs and rooms
        PROMOTED = "promoted"  # serves everything else
        ROLLED_BACK = "rolled_back"  # was worse, or never proved itself: serves nothing
        RETIRED = "retired"  # was promoted, replaced by a newer version

    name = models.CharField(max_length=64, unique=True)  # the checkpoint's stem
    checkpoint = models.CharField(max_length=500)  # path of the LM checkpoint
    sha256 = models.CharField(max_length=64)
    critic = models.CharField(max_length=500, blank=True)  # the critic trained with it, if any
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    canary_share = models.FloatField(default=0.0)  # of new songs and rooms, while in canary
    # held-out accuracies, the DPO and critic runs, guardrails: whatever the loop measured
    metrics = models.JSONField(default=dict, blank=True)
    # what it learned from: the feedback window and the label rules' version
    feedback_from = models.DateTimeField(null=True, blank=True)
    feedback_to = models.DateTimeField(null=True, blank=True)
    labels_version = models.CharField(max_length=32, blank=True)
    note = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    canary_started_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="promoted"), name="one_promoted"
            ),
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="canary"), name="one_canary"
            ),
            models.CheckConstraint(
                condition=models.Q(canary_share__gte=0.0) & models.Q(canary_share__lte=1.0),
                name="canary_share_fraction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class VersionDecision(models.Model):
    """One evaluation of a canary against the version it would replace, kept for the record
    whatever it concluded (waiting included)."""

    class Action(models.TextChoices):
        PROMOTE = "promote"
        ROLL_BACK = "roll_back"
        WAIT = "wait"
        MANUAL = "manual"  # an admin acted by hand

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="decisions")
    baseline = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    reason = models.CharField(max_length=200)
    details = models.JSONField(default=dict, blank=True)  # rates, intervals, rules
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.action} {self.version.name}: {self.reason}"


class TuningRun(models.Model):
    """One run of the loop (beat job or `manage.py tune round`): what it read, what it made."""

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"  # made a candidate
        SKIPPED = "skipped"  # not enough feedback, or the guardrails refused the candidate
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    base = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    produced = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    feedback_from = models.DateTimeField(null=True, blank=True)
    feedback_to = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)  # events, pairs, dropped...
    metrics = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-started_at", "-id")

    def __str__(self) -> str:
        return f"tuning run {self.pk} ({self.status})"
