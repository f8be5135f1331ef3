"""REST endpoints for songs: thin views that parse, call one service or selector, and answer."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api.pagination import CursorPage
from webapp.errors import NotFound
from webapp.public_cache import TTL_HEADER
from webapp.safety.quotas import QuotaExceeded
from webapp.songs import selectors, services, uploads
from webapp.songs.audio import FORMATS
from webapp.songs.models import Song
from webapp.songs.serializers import (
    SongCreateSerializer,
    SongDetailSerializer,
    SongListItemSerializer,
    SongUpdateSerializer,
)

PUBLIC_CACHE_TTL_HEADER = TTL_HEADER.decode()
SHARE_TOKEN_PARAM = OpenApiParameter(
    "share_token", str, description="The share token of an unlisted song.", required=False
)


def _share_token(request) -> str | None:
    token = request.query_params.get("share_token")
    return token if token and len(token) <= 64 else None


class SongListFilters(serializers.Serializer):
    status = serializers.ChoiceField(choices=Song.Status.choices, required=False)
    visibility = serializers.ChoiceField(choices=Song.Visibility.choices, required=False)


class SongListCreateApi(ListAPIView):
    """Your songs (newest first), and making a new one from a prompt."""

    permission_classes = [permissions.IsAuthenticated]
    serializer_class = SongListItemSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Song.Status.values, required=False),
            OpenApiParameter("visibility", str, enum=Song.Visibility.values, required=False),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = SongListFilters(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.song_list_for_owner(owner=self.request.user, **filters.validated_data)

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body: a reference clip streams to a temporary file, and
        # reading stops at the upload cap (webapp/songs/uploads.py).
        if request.method == "POST":
            uploads.reference_upload_install(request)
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(request=SongCreateSerializer, responses={202: SongDetailSerializer})
    def post(self, request):
        form = SongCreateSerializer(data=request.data)
        uploads.reference_upload_check(request)
        form.is_valid(raise_exception=True)
        song = services.song_create(owner=request.user, **form.validated_data)
        body = SongDetailSerializer(song, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if isinstance(exc, QuotaExceeded):  # 429: say when to try again, as rate limits do
            response["Retry-After"] = str(int(exc.retry_after_s))
        return response


class SongDetailApi(APIView):
    """One song. Owners may rename it, change its visibility, or delete it."""

    permission_classes = [permissions.AllowAny]

    def _song(self, request, song_id) -> Song:
        return selectors.song_get_for_viewer(
            song_id=song_id, user=request.user, share_token=_share_token(request)
        )

    def _editable(self, request, song_id) -> Song:
        if not request.user.is_authenticated:
            raise NotFound("No such song.")
        song = self._song(request, song_id)
        if not selectors.song_can_edit(song, request.user):
            raise NotFound("No such song.")
        return song

    @extend_schema(parameters=[SHARE_TOKEN_PARAM], responses=SongDetailSerializer)
    def get(self, request, song_id):
        song = self._song(request, song_id)
        context = {"request": request, "share_token": _share_token(request)}
        response = Response(SongDetailSerializer(song, context=context).data)
        if song.status in (Song.Status.QUEUED, Song.Status.GENERATING):
            # Progress changes without a version bump: keep cached copies short-lived.
            response[PUBLIC_CACHE_TTL_HEADER] = "1"
        return response

    @extend_schema(request=SongUpdateSerializer, responses=SongDetailSerializer)
    def patch(self, request, song_id):
        song = self._editable(request, song_id)
        form = SongUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        song = services.song_update(song=song, **form.validated_data)
        return Response(SongDetailSerializer(song, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request, song_id):
        services.song_delete(song=self._editable(request, song_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SongShareTokenApi(APIView):
    """Revoke the song's share link and issue a new one."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=SongDetailSerializer)
    def post(self, request, song_id):
        song = selectors.song_get_for_viewer(song_id=song_id, user=request.user)
        if not selectors.song_can_edit(song, request.user):
            raise NotFound("No such song.")
        song = services.song_rotate_share_token(song=song)
        return Response(SongDetailSerializer(song, context={"request": request}).data)


class SongDownloadApi(APIView):
    """The song's audio as WAV, FLAC or Ogg Opus."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(FORMATS), required=False),
            SHARE_TOKEN_PARAM,
        ],
        responses={
            (200, "audio/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The audio file."),
        },
    )
    def get(self, request, song_id):
        song = selectors.song_get_for_viewer(
            song_id=song_id, user=request.user, share_token=_share_token(request)
        )
        name, fmt = services.song_download_file(
            song=song, format_name=request.query_params.get("format", "flac")
        )
        response = FileResponse(
            song.audio.storage.open(name, "rb"),
            as_attachment=request.query_params.get("inline") != "1",
            filename=services.song_download_filename(song, fmt),
            content_type=fmt.content_type,
        )
        response["Cache-Control"] = "private, max-age=3600"
        return response


class SharedSongApi(APIView):
    """A song by its share link (unlisted or public)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=SongDetailSerializer)
    def get(self, request, share_token):
        song = selectors.song_get_by_share_token(share_token=share_token, user=request.user)
        context = {"request": request, "share_token": share_token}
        return Response(SongDetailSerializer(song, context=context).data)


class FeedPage(CursorPage):
    def get_ordering(self, request, queryset, view):
        if request.query_params.get("sort") == "liked":
            return ("-like_count", "-created_at", "-id")
        return ("-created_at", "-id")


class FeedApi(ListAPIView):
    """The public feed: public, ready songs, newest first or most liked first."""

    permission_classes = [permissions.AllowAny]
    serializer_class = SongListItemSerializer
    pagination_class = FeedPage

    @extend_schema(
        parameters=[OpenApiParameter("sort", str, enum=list(selectors.FEED_SORTS), required=False)]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        sort = self.request.query_params.get("sort", "newest")
        return selectors.song_feed(sort=sort if sort in selectors.FEED_SORTS else "newest")
