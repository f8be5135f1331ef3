"""Rooms over plain HTTP: the audio of a room's chunks and of its proposals' previews.

Audio never travels over the websocket: a `chunk` frame carries the URL of this view, and
listeners fetch the file here. A chunk never changes once it is recorded, so the answer is
cacheable for a year: by anyone (a CDN included) for public rooms, by the listener's browser
only for the others.
"""

from __future__ import annotations

import hashlib
import mimetypes

from django.contrib.auth.models import AnonymousUser
from django.http import FileResponse, HttpResponse, HttpResponseNotFound
from django.utils.http import parse_etags
from django.views.decorators.http import require_safe

from collab import selectors
from collab.models import Room
from webapp.errors import NotFound

MAX_SHARE_TOKEN_CHARS = 64
PUBLIC_CACHE = "public, max-age=31536000, immutable"
PRIVATE_CACHE = "private, max-age=31536000, immutable"


def _not_found() -> HttpResponse:
    # One answer for "no such room", "not yours to see" and "no such chunk": existence is never
    # revealed.
    return HttpResponseNotFound("No such chunk.", content_type="text/plain")


def _viewable_room(request, room_id) -> Room:
    """The room if the caller may listen to it. A public room is settled without reading the
    caller's session, so that its answers stay free of `Vary: Cookie` and a CDN can keep them."""
    try:
        return selectors.room_get_for_viewer(user=AnonymousUser(), room_id=room_id)
    except NotFound:
        pass
    token = request.GET.get("share") or None
    if token is not None and len(token) > MAX_SHARE_TOKEN_CHARS:
        token = None
    return selectors.room_get_for_viewer(user=request.user, room_id=room_id, share_token=token)


def _audio_response(request, field, *, public: bool, tag: str) -> HttpResponse:
    """A stored file that never changes under its URL: ETag, cacheable for a year."""
    etag = f'"{hashlib.sha256(tag.encode()).hexdigest()[:20]}"'
    if etag in parse_etags(request.headers.get("If-None-Match", "")):
        response = HttpResponse(status=304)
    else:
        try:
            file = field.open("rb")
        except OSError:  # recorded, but the file is gone (cleaned up, or a worker's disk)
            return _not_found()
        content_type = mimetypes.guess_type(field.name)[0] or "application/octet-stream"
        if field.name.endswith(".ogg"):
            content_type = "audio/ogg"  # Opus in Ogg, as the workers write it
        response = FileResponse(file, content_type=content_type)
    response["ETag"] = etag
    response["Cache-Control"] = PUBLIC_CACHE if public else PRIVATE_CACHE
    return response


def _revision(request) -> int | None:
    value = request.GET.get("r", "0")
    return int(value) if value.isdigit() and len(value) <= 5 else None


@require_safe
def chunk_audio(request, room_id, sequence: int):
    """`GET /rooms/<room id>/chunks/<sequence>.ogg[?r=<revision>]`: the chunk's audio, for
    whoever may see the room (the rule of collab.selectors.room_can_view); 404 otherwise, for a
    chunk that was never recorded or whose file is gone, and for a revision it no longer has (a
    chunk remade before anyone heard it has a URL per revision, so a cached answer is never
    stale)."""
    try:
        room = _viewable_room(request, room_id)
    except NotFound:
        return _not_found()
    chunk = selectors.chunk_get(room=room, sequence=sequence)
    if chunk is None or not chunk.audio.name or _revision(request) != chunk.revision:
        return _not_found()
    return _audio_response(
        request,
        chunk.audio,
        public=room.visibility == Room.Visibility.PUBLIC,
        tag=f"{chunk.pk}:{chunk.revision}:{chunk.audio.name}",
    )


@require_safe
def audition_audio(request, room_id, proposal_id: int):
    """`GET /rooms/<room id>/auditions/<proposal id>.ogg`: a proposal's preview, under the same
    rule as the room's chunks."""
    try:
        room = _viewable_room(request, room_id)
    except NotFound:
        return _not_found()
    audition = selectors.audition_get(room=room, proposal_id=proposal_id)
    if audition is None or not audition.audio.name:
        return _not_found()
    return _audio_response(
        request,
        audition.audio,
        public=room.visibility == Room.Visibility.PUBLIC,
        tag=f"audition:{audition.pk}:{audition.audio.name}",
    )
