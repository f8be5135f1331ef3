"""Reads of songs, and the one visibility rule every path (API, pages, share links) goes through."""

from __future__ import annotations

from django.db.models import QuerySet

from webapp.errors import NotFound
from webapp.songs.models import Song

FEED_SORTS = ("newest", "liked")
# Columns that lists never show; peaks alone is an 800-value JSON array per row.
LIST_DEFERRED = ("peaks", "provenance", "prompt", "error", "controls")


def _one(songs: QuerySet) -> Song | None:
    # get(), not first(): first() orders by the default ordering, which costs query compile time
    # on the hottest read path for a lookup by a unique key.
    try:
        return songs.get()
    except Song.DoesNotExist:
        return None


def _is_owner(song: Song, user) -> bool:
    return user is not None and user.is_authenticated and user.pk == song.owner_id


def _is_staff(user) -> bool:
    return user is not None and user.is_authenticated and (user.is_staff or user.is_superuser)


def song_can_view(song: Song, user, *, share_token: str | None = None) -> bool:
    """Owners and staff (moderators included) see everything; public songs anyone; unlisted ones
    by share token only. A song the moderators hid or removed: its owner (who sees it marked)
    and staff only."""
    if _is_owner(song, user) or _is_staff(user):
        return True
    if song.moderation != Song.Moderation.VISIBLE:
        return False
    if song.visibility == Song.Visibility.PUBLIC:
        return True
    if song.visibility == Song.Visibility.UNLISTED:
        return share_token is not None and share_token == song.share_token
    return False


def song_can_edit(song: Song, user) -> bool:
    """Its owner, and superusers. Not staff: moderators act on other people's songs only through
    the moderation actions (webapp.moderation.services), which write the audit log; a plain edit
    or delete through the API or the page would bypass it."""
    return _is_owner(song, user) or (
        user is not None and user.is_authenticated and user.is_superuser
    )


def song_get_for_viewer(*, song_id, user, share_token: str | None = None) -> Song:
    """The song if `user` may see it; NotFound otherwise (existence is not revealed)."""
    song = _one(Song.objects.select_related("owner").filter(pk=song_id))
    if song is None or not song_can_view(song, user, share_token=share_token):
        raise NotFound("No such song.")
    return song


def song_get_by_share_token(*, share_token: str, user) -> Song:
    """A song by its share link: works for unlisted and public songs (private: owner only)."""
    song = _one(Song.objects.select_related("owner").filter(share_token=share_token))
    if song is None or not song_can_view(song, user, share_token=share_token):
        raise NotFound("This share link does not lead anywhere (it may have been revoked).")
    return song


def song_list_for_owner(
    *, owner, status: str | None = None, visibility: str | None = None
) -> QuerySet:
    songs = Song.objects.filter(owner=owner).select_related("owner").defer(*LIST_DEFERRED)
    if status:
        songs = songs.filter(status=status)
    if visibility:
        songs = songs.filter(visibility=visibility)
    return songs


def song_list_public_of(*, owner) -> QuerySet:
    return (
        Song.objects.filter(
            owner=owner,
            visibility=Song.Visibility.PUBLIC,
            status=Song.Status.READY,
            moderation=Song.Moderation.VISIBLE,
        )
        .select_related("owner")
        .defer(*LIST_DEFERRED)
    )


def song_feed(*, sort: str = "newest") -> QuerySet:
    """Public, ready songs: newest first, or most liked first (none the moderators hid)."""
    songs = (
        Song.objects.filter(
            visibility=Song.Visibility.PUBLIC,
            status=Song.Status.READY,
            moderation=Song.Moderation.VISIBLE,
        )
        .select_related("owner")
        .defer(*LIST_DEFERRED)
    )
    if sort == "liked":
        return songs.order_by("-like_count", "-created_at", "-id")
    return songs.order_by("-created_at", "-id")
