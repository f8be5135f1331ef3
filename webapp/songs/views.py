"""Browser pages for songs: feed, library, create, the song page, and the public share page.

The player, waveform, progress and feedback on these pages are the front end's
(frontend/src/song-page.ts, built into webapp/static/dist/).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from generation.steering import KEYS, MODES
from webapp.errors import NotFound, ServiceError
from webapp.ratelimit import RateLimited
from webapp.safety.quotas import quota_get
from webapp.songs import selectors, services, uploads
from webapp.songs.forms import SongCreateForm
from webapp.songs.models import Song

CONTROL_FIELDS = ("bpm", "key", "mode", "energy", "brightness")


class SongCreatePageForm(SongCreateForm):
    """The create page: one box (the prompt) in simple mode; expert mode adds the rest."""

    expand_prompt = forms.BooleanField(
        label="Prompt expansion",
        required=False,
        initial=True,
        help_text="Fill in tempo, key and instruments you leave unset from the nearest style.",
    )
    bpm = forms.IntegerField(label="Tempo (BPM)", required=False, min_value=40, max_value=220)
    key = forms.ChoiceField(choices=[("", "any")] + [(k, k) for k in KEYS], required=False)
    mode = forms.ChoiceField(choices=[("", "any")] + [(m, m) for m in MODES], required=False)
    energy = forms.FloatField(required=False, min_value=0, max_value=1, help_text="0 to 1")
    brightness = forms.FloatField(required=False, min_value=0, max_value=1, help_text="0 to 1")

    SIMPLE_FIELDS = ("prompt",)

    def song_arguments(self) -> dict:
        """The cleaned form as song_create's keyword arguments (controls gathered)."""
        data = dict(self.cleaned_data)
        controls = {name: data.pop(name) for name in CONTROL_FIELDS}
        data["controls"] = {k: v for k, v in controls.items() if v not in (None, "")}
        return data

    def simple_fields(self):
        return [self[name] for name in self.SIMPLE_FIELDS]

    def expert_fields(self):
        return [self[name] for name in self.fields if name not in self.SIMPLE_FIELDS]


def home(request):
    sort = request.GET.get("sort", "newest")
    sort = sort if sort in selectors.FEED_SORTS else "newest"
    songs = selectors.song_feed(sort=sort)[:30]
    return render(request, "songs/home.html", {"songs": songs, "sort": sort})


@csrf_exempt  # only until the upload handler is in place: _song_new checks the token
def song_new(request):
    """The create page. A reference clip streams through the capped upload handler, which
    has to be installed before the CSRF check reads the form (Django's documented pattern)."""
    if request.method == "POST":
        uploads.reference_upload_install(request)
    return _song_new(request)


@csrf_protect
@login_required
@require_http_methods(["GET", "POST"])
def _song_new(request):
    data = request.POST if request.method == "POST" else None
    form = SongCreatePageForm(data, request.FILES or None, initial={"expand_prompt": True})
    status = 200
    if request.method == "POST":
        try:
            uploads.reference_upload_check(request)
        except ServiceError as exc:
            form.add_error(exc.field, exc.message)
            status = exc.status_code
    if request.method == "POST" and status == 200 and form.is_valid():
        try:
            song = services.song_create(owner=request.user, **form.song_arguments())
        except RateLimited as exc:
            form.add_error(None, str(exc))
            status = 429
        except ServiceError as exc:  # the prompt filter, the clip, the daily quota (429)...
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            status = exc.status_code
        else:
            return redirect("song-page", song_id=song.pk)
    if request.method == "POST" and form.errors and status == 200:
        status = 400
    # Expert options open by themselves when one of them needs fixing.
    expert = any(name in form.errors for name in form.fields if name not in form.SIMPLE_FIELDS)
    quota = quota_get(user=request.user)
    return render(
        request, "songs/new.html", {"form": form, "expert": expert, "quota": quota}, status=status
    )


@login_required
def library(request):
    """Your songs, every status and visibility, newest first."""
    status = request.GET.get("status")
    status = status if status in Song.Status.values else None
    songs = selectors.song_list_for_owner(owner=request.user, status=status)[:200]
    return render(
        request,
        "songs/library.html",
        {"songs": songs, "status": status, "statuses": Song.Status.choices},
    )


def song_page(request, song_id):
    try:
        song = selectors.song_get_for_viewer(song_id=song_id, user=request.user)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    can_edit = selectors.song_can_edit(song, request.user)
    if request.method == "POST" and not can_edit:
        # Staff may see the song (and moderators act on it from the moderation page), not edit it.
        raise PermissionDenied("Only the song's owner can change it.")
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "delete":
                services.song_delete(song=song)
                messages.success(request, "Song deleted.")
                return redirect("profile", username=request.user.username)
            if action == "update":
                services.song_update(
                    song=song,
                    title=request.POST.get("title") or None,
                    visibility=request.POST.get("visibility") or None,
                )
                messages.success(request, "Saved.")
            if action == "rotate":
                services.song_rotate_share_token(song=song)
                messages.success(request, "New share link made; the old one no longer works.")
        except ServiceError as exc:
            messages.error(request, exc.message)
        return redirect("song-page", song_id=song.pk)
    return render(
        request,
        "songs/song.html",
        {
            "song": song,
            "can_edit": can_edit,
            "player": _player_config(request, song, share_token=None),
            # Only its owner learns the share token; others pass the public page on.
            "share_url": request.build_absolute_uri(
                reverse("song-share", args=[song.share_token])
                if can_edit
                else reverse("song-page", args=[song.pk])
            ),
        },
    )


def song_share(request, share_token):
    try:
        song = selectors.song_get_by_share_token(share_token=share_token, user=request.user)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return render(
        request,
        "songs/share.html",
        {
            "song": song,
            "share_token": share_token,
            "can_edit": selectors.song_can_edit(song, request.user),
            "player": _player_config(request, song, share_token=share_token),
            "share_url": request.build_absolute_uri(),
        },
    )


def _player_config(request, song: Song, *, share_token: str | None) -> dict | None:
    """What the front end's player needs (rendered with json_script); None until ready, and
    for a song the moderators removed (its audio is served to nobody)."""
    if not song.is_ready or song.moderation == Song.Moderation.REMOVED:
        return None
    audio_url = reverse("api-song-download", args=[song.pk]) + "?format=opus&inline=1"
    if share_token:
        audio_url += f"&share_token={share_token}"
    return {
        "song_id": str(song.pk),
        "share_token": share_token,
        "audio_url": audio_url,
        "duration_s": song.audio_duration_s or song.duration_s,
        "peaks": [round(float(p), 3) for p in (song.peaks or [])],
    }
