"""The moderation pages: the queue of open reports (`/moderation/`), and one target's page with
its reports, its audit log and the actions (`/moderation/<type>/<id>/`). Moderators only.

Thin, as the house style wants: each action is one call to webapp.moderation.services, the same
functions the Django admin's actions call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from webapp.errors import NotFound, ServiceError
from webapp.moderation import selectors, services
from webapp.moderation.models import MAX_REASON_CHARS, Report, TargetType
from webapp.moderation.permissions import user_is_moderator

SUSPENSIONS = (
    (1, "1 hour"),
    (24, "1 day"),
    (72, "3 days"),
    (24 * 7, "7 days"),
    (24 * 30, "30 days"),
)


def moderator_required(view: Callable) -> Callable:
    """Signed-out visitors go to the login page; signed-in non-moderators get a 403."""

    @wraps(view)
    @login_required
    def check(request, *args, **kwargs):
        if not user_is_moderator(request.user):
            raise PermissionDenied("Moderators only.")
        return view(request, *args, **kwargs)

    return check


class ActionForm(forms.Form):
    action = forms.CharField(max_length=32)
    reason = forms.CharField(max_length=MAX_REASON_CHARS, required=False)
    hours = forms.TypedChoiceField(
        choices=[(h, label) for h, label in SUSPENSIONS], coerce=int, required=False
    )


def _suspend(*, moderator, target, reason, ip, hours):
    """A suspension from now for the chosen number of hours."""
    if not hours:
        raise ServiceError("Choose how long the suspension lasts.", field="hours")
    until = timezone.now() + timedelta(hours=hours)
    return services.user_suspend(
        moderator=moderator, user=target, until=until, reason=reason, ip=ip
    )


# target type -> action -> (button label, service; suspend is _suspend, which needs `hours`)
ACTIONS: dict[str, dict[str, tuple[str, Callable]]] = {
    TargetType.SONG: {
        "hide": ("Hide", services.song_hide),
        "unhide": ("Make visible again", services.song_unhide),
        "remove": ("Remove (take down)", services.song_remove),
    },
    TargetType.ROOM: {
        "hide": ("Hide", services.room_hide),
        "unhide": ("Make visible again", services.room_unhide),
        "close": ("Close (end it now)", services.room_close),
        "remove": ("Remove (end and take down)", services.room_remove),
    },
    TargetType.PROPOSAL: {
        "reject": ("Reject (off the ballot)", services.proposal_reject),
    },
    TargetType.USER: {
        "suspend": ("Suspend", None),
        "ban": ("Ban", services.user_ban),
        "lift": ("Lift bans and suspensions", services.user_lift_sanctions),
    },
}
KEYWORDS = {
    TargetType.SONG: "song",
    TargetType.ROOM: "room",
    TargetType.PROPOSAL: "proposal",
    TargetType.USER: "user",
}


def _run(request, target_type: str, target, form: ActionForm) -> str:
    """Carry out the posted action; the message to show."""
    action = form.cleaned_data["action"]
    reason = form.cleaned_data["reason"]
    ip = request.META.get("REMOTE_ADDR") or None
    if action == "dismiss":
        closed = services.reports_dismiss(
            moderator=request.user,
            target_type=target_type,
            target_id=str(target.pk),
            reason=reason,
            ip=ip,
        )
        return f"Dismissed {closed} report{'s' if closed != 1 else ''}."
    if action not in ACTIONS[target_type]:
        raise ServiceError(f"Unknown action {action[:32]!r} for a {target_type}.", field="action")
    label, service = ACTIONS[target_type][action]
    if action == "suspend":
        _suspend(
            moderator=request.user,
            target=target,
            reason=reason,
            ip=ip,
            hours=form.cleaned_data["hours"],
        )
    else:
        service(moderator=request.user, reason=reason, ip=ip, **{KEYWORDS[target_type]: target})
    return f"Done: {label.lower()}."


@moderator_required
def queue(request):
    sort = request.GET.get("sort", "most")
    sort = sort if sort in selectors.QUEUE_SORTS else "most"
    entries = selectors.report_queue(sort=sort)
    return render(
        request,
        "moderation/queue.html",
        {"entries": entries, "sort": sort, "reasons": dict(Report.Reason.choices)},
    )


@moderator_required
@require_http_methods(["GET", "POST"])
def target(request, target_type: str, target_id: str):
    if target_type not in TargetType.values:
        raise Http404("No such kind of target.")
    try:
        found = selectors.target_get(target_type=target_type, target_id=target_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    here = reverse("moderation:target", args=[target_type, found.pk])
    if request.method == "POST":
        form = ActionForm(request.POST)
        if not form.is_valid():
            messages.error(request, "That action could not be read; try again.")
        else:
            try:
                messages.success(request, _run(request, target_type, found, form))
            except ServiceError as exc:
                messages.error(request, exc.message)
        back = request.POST.get("next") or here
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = here
        return redirect(back)
    summary = selectors.target_summary(target_type, found)
    return render(
        request,
        "moderation/target.html",
        {
            "summary": summary,
            "actions": [(name, label) for name, (label, _) in ACTIONS[target_type].items()],
            "needs_reason": {"remove", "close", "ban", "suspend"},
            "suspensions": SUSPENSIONS,
            "reports": selectors.reports_of_target(
                target_type=target_type, target_id=str(found.pk)
            )[:200],
            "audit": selectors.audit_of_target(target_type=target_type, target_id=str(found.pk)),
            "sanctions": selectors.sanctions_of(user=found)[:50]
            if target_type == TargetType.USER
            else None,
            "owner_url": _owner_url(summary),
        },
    )


def _owner_url(summary: selectors.TargetSummary) -> str | None:
    """The moderation page of the account behind a song, room or proposal."""
    owner = summary.owner
    if owner is None or summary.target_type == TargetType.USER:
        return None
    return reverse("moderation:target", args=[TargetType.USER, owner.pk])
