"""Browser pages for songs: feed, create, the song page, and the public share page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.errors import NotFound, ServiceError
from webapp.ratelimit import RateLimited
from webapp.songs import selectors, services
from webapp.songs.forms import SongCreateForm


def home(request):
    sort = request.GET.get("sort", "newest")
    sort = sort if sort in selectors.FEED_SORTS else "newest"
    songs = selectors.song_feed(sort=sort)[:30]
    return render(request, "songs/home.html", {"songs": songs, "sort": sort})


@login_required
@require_http_methods(["GET", "POST"])
def song_new(request):
    form = SongCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            song = services.song_create(owner=request.user, **form.cleaned_data)
        except RateLimited as exc:
            form.add_error(None, str(exc))
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return redirect("song-page", song_id=song.pk)
    status = 429 if any("Too many" in e for e in form.non_field_errors()) else 200
    if request.method == "POST" and form.errors and status == 200:
        status = 400
    return render(request, "songs/new.html", {"form": form}, status=status)


def song_page(request, song_id):
    try:
        song = selectors.song_get_for_viewer(song_id=song_id, user=request.user)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    can_edit = selectors.song_can_edit(song, request.user)
    if request.method == "POST" and can_edit:
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
    return render(request, "songs/song.html", {"song": song, "can_edit": can_edit})


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
        },
    )
