"""Moderation actions for the Django admin's change lists: the same services as the moderation
page, so the admin writes the same audit entries and closes the same reports.

Each admin that offers them sets `action_form = ModerationActionForm` (a reason box, and a
duration for suspensions, beside the action menu) and defines `has_moderate_permission`
through ModerationActionsMixin: the actions are listed to moderators only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.utils import timezone

from webapp.errors import ServiceError
from webapp.moderation.models import MAX_REASON_CHARS
from webapp.moderation.permissions import user_is_moderator

SUSPENSION_HOURS = ((24, "1 day"), (72, "3 days"), (24 * 7, "7 days"), (24 * 30, "30 days"))


class ModerationActionForm(ActionForm):
    reason = forms.CharField(
        max_length=MAX_REASON_CHARS,
        required=False,
        help_text="Recorded in the audit log (required to remove, close, suspend or ban).",
    )
    hours = forms.TypedChoiceField(
        label="Suspend for", choices=SUSPENSION_HOURS, coerce=int, required=False
    )


class ModerationActionsMixin:
    action_form = ModerationActionForm

    def has_moderate_permission(self, request) -> bool:
        return user_is_moderator(request.user)


def moderation_action(
    service: Callable, *, keyword: str, name: str, description: str, suspend: bool = False
):
    """An admin action calling `service(moderator=, reason=, ip=, <keyword>=obj)` for each
    selected object (with `until=` for a suspension), reporting what worked and what not."""

    def action(modeladmin, request, queryset) -> None:
        reason = request.POST.get("reason", "")
        extra = {}
        if suspend:
            try:
                hours = int(request.POST.get("hours") or 0)
            except ValueError:
                hours = 0
            if hours <= 0:
                modeladmin.message_user(request, "Choose how long.", messages.ERROR)
                return
            extra["until"] = timezone.now() + timedelta(hours=hours)
        done, failed = 0, []
        for obj in queryset:
            try:
                service(
                    moderator=request.user,
                    reason=reason,
                    ip=request.META.get("REMOTE_ADDR") or None,
                    **{keyword: obj},
                    **extra,
                )
                done += 1
            except ServiceError as exc:
                failed.append(f"{obj}: {exc.message}")
        if done:
            modeladmin.message_user(request, f"{description}: {done} done.", messages.SUCCESS)
        for failure in failed[:10]:
            modeladmin.message_user(request, failure, messages.ERROR)

    action.__name__ = name
    return admin.action(description=description, permissions=["moderate"])(action)
