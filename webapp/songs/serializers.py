from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from generation.interface import MAX_SONG_SECONDS, MIN_SONG_SECONDS
from webapp.songs.audio import FORMATS
from webapp.songs.models import (
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_STYLE_TAG_CHARS,
    MAX_STYLE_TAGS,
    MAX_TITLE_CHARS,
    MIN_GUIDANCE,
    Song,
)
from webapp.songs.selectors import song_can_edit
from webapp.songs.services import MAX_SEED


class SongCreateSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=MAX_PROMPT_CHARS, trim_whitespace=True)
    duration_s = serializers.FloatField(
        min_value=MIN_SONG_SECONDS, max_value=MAX_SONG_SECONDS, default=30.0
    )
    seed = serializers.IntegerField(
        min_value=0, max_value=MAX_SEED, required=False, allow_null=True
    )
    guidance = serializers.FloatField(min_value=MIN_GUIDANCE, max_value=MAX_GUIDANCE, default=3.0)
    style_tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_STYLE_TAG_CHARS),
        max_length=MAX_STYLE_TAGS,
        default=list,
    )
    title = serializers.CharField(max_length=MAX_TITLE_CHARS, required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Song.Visibility.choices, default="private")


class SongUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=MAX_TITLE_CHARS, required=False)
    visibility = serializers.ChoiceField(choices=Song.Visibility.choices, required=False)


class OwnerSerializer(serializers.Serializer):
    username = serializers.CharField()


class SongListItemSerializer(serializers.ModelSerializer):
    """The compact shape used in lists and feeds."""

    owner = OwnerSerializer(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Song
        fields = (
            "id",
            "url",
            "title",
            "owner",
            "duration_s",
            "status",
            "progress",
            "visibility",
            "style_tags",
            "like_count",
            "model_version",
            "is_placeholder",
            "created_at",
        )

    def get_url(self, song: Song) -> str:
        return reverse("api-song-detail", args=[song.pk])


class SongDetailSerializer(SongListItemSerializer):
    """Everything about one song; the share link only for those who may edit the song."""

    downloads = serializers.SerializerMethodField()
    share_url = serializers.SerializerMethodField()

    class Meta(SongListItemSerializer.Meta):
        fields = (
            *SongListItemSerializer.Meta.fields,
            "prompt",
            "seed",
            "guidance",
            "error",
            "sample_rate",
            "audio_duration_s",
            "peaks",
            "downloads",
            "share_url",
            "finished_at",
        )

    def get_downloads(self, song: Song) -> dict[str, str]:
        if not song.is_ready:
            return {}
        base = reverse("api-song-download", args=[song.pk])
        token = self.context.get("share_token")
        suffix = f"&share_token={token}" if token else ""
        return {name: f"{base}?format={name}{suffix}" for name in FORMATS}

    def get_share_url(self, song: Song) -> str | None:
        request = self.context.get("request")
        if request is None or not song_can_edit(song, request.user):
            return None
        return reverse("song-share", args=[song.share_token])
