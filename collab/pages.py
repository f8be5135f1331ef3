"""Browser pages for rooms: the list of live public rooms, "start a room", the room itself and
the streamer overlay. Thin, as the house style wants: each parses, calls one selector or
service, and renders. The room page's behaviour is the front end's (frontend/src/room-page.ts),
speaking the websocket protocol of docs/protocol.md.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_http_methods

from collab import selectors, services
from collab.models import MAX_ANCHOR_CHARS, MAX_TITLE_CHARS, ROUND_LENGTH_RANGE, Room
from webapp.errors import NotFound, ServiceError
from webapp.ratelimit import RateLimited

KEEP_SECONDS_DEFAULT = 60


class RoomCreateForm(forms.Form):
    title = forms.CharField(max_length=MAX_TITLE_CHARS)
    anchor_prompt = forms.CharField(
        label="What it plays when nobody votes",
        max_length=MAX_ANCHOR_CHARS,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "warm lo-fi beat with soft piano"}),
    )
    visibility = forms.ChoiceField(
        choices=Room.Visibility.choices,
        initial=Room.Visibility.UNLISTED,
        help_text="Public rooms are listed; unlisted ones are open to whoever has the link.",
    )
    mode = forms.ChoiceField(
        choices=Room.Mode.choices,
        initial=Room.Mode.FRIENDS,
        help_text="Friends: ideas go on the ballot at once. Audience: you approve them first.",
    )
    round_length_s = forms.IntegerField(
        label="Round length (seconds)",
        min_value=ROUND_LENGTH_RANGE[0],
        max_value=ROUND_LENGTH_RANGE[1],
        initial=20,
    )
    who_may_propose = forms.ChoiceField(
        label="Who may propose", choices=Room.Proposers.choices, initial=Room.Proposers.EVERYONE
    )
    login_required = forms.BooleanField(
        label="Only signed-in people may propose and vote", required=False
    )


def _share_token(request) -> str | None:
    token = request.GET.get("share")
    return token if token and len(token) <= 64 else None


def _room_for_viewer(request, room_id) -> Room:
    try:
        return selectors.room_get_for_viewer(
            user=request.user, room_id=room_id, share_token=_share_token(request)
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _client_config(request, room: Room) -> dict:
    return {
        "room_id": str(room.pk),
        "share_token": _share_token(request),
        "signed_in": request.user.is_authenticated,
    }


def room_list(request):
    rooms = selectors.room_list_public()[:50]
    return render(request, "rooms/list.html", {"rooms": rooms})


@login_required
@require_http_methods(["GET", "POST"])
def room_new(request):
    form = RoomCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                room = services.room_create(host=request.user, **form.cleaned_data)
            except RateLimited as exc:
                form.add_error(None, str(exc))
                status = 429
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                return redirect(room_url(room))
    return render(request, "rooms/new.html", {"form": form}, status=status)


def room_url(room: Room) -> str:
    """The room page's address; an unlisted room's carries its share token."""
    url = reverse("room-page", args=[room.pk])
    return f"{url}?share={room.share_token}" if room.visibility == Room.Visibility.UNLISTED else url


def room_page(request, room_id):
    room = _room_for_viewer(request, room_id)
    if not request.user.is_authenticated and not request.session.session_key:
        # Signed-out visitors take part under their session (docs/protocol.md): give them one.
        request.session["rooms_visitor"] = True
        request.session.save()
    is_host = selectors.room_can_host(room, request.user)
    return render(
        request,
        "rooms/room.html",
        {
            "room": room,
            "is_host": is_host,
            "share_url": request.build_absolute_uri(room_url(room)),
            "overlay_url": _overlay_url(request, room),
            "config": _client_config(request, room),
            "keep_seconds": KEEP_SECONDS_DEFAULT,
            "visibility_choices": Room.Visibility.choices,
        },
    )


def _overlay_url(request, room: Room) -> str:
    url = reverse("room-overlay", args=[room.pk])
    if room.visibility == Room.Visibility.UNLISTED:
        url += f"?share={room.share_token}"
    return request.build_absolute_uri(url)


@xframe_options_exempt  # OBS and streaming tools embed it
def room_overlay(request, room_id):
    room = _room_for_viewer(request, room_id)
    return render(
        request, "rooms/overlay.html", {"room": room, "config": _client_config(request, room)}
    )
