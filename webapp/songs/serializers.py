from __future__ import annotations

import json

from rest_framework import serializers
from rest_framework.utils import html

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


class ControlsField(serializers.DictField):
    """An object of controls: a JSON object in a JSON body, or the same object as text in a
    multipart form (a request that uploads a reference clip)."""

    def get_value(self, dictionary):
        if html.is_html_input(dictionary) and isinstance(dictionary.get(self.field_name), str):
            return dictionary[self.field_name]
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data) if data.strip() else {}
            except ValueError:
                self.fail("not_a_dict", input_type="text that is not JSON")
        return super().to_internal_value(data)


class SongCreateSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=MAX_PROMPT_CHARS, trim_whitespace=True)
    duration_s = serializers.FloatField(
        min_value=MIN_SONG_SECONDS, max_value=MAX_SONG_SECONDS, default=30.0
    )
    seed = serializers.IntegerField(
        min_value=0, max_value=MAX_SEED, required=False, allow_null=True
    )
    guidance = serializers.FloatField(
        min_value=MIN_GUIDANCE,
        max_value=MAX_GUIDANCE,
        required=False,
        allow_null=True,
        default=None,
        help_text="Classifier-free guidance; leave it out for the model's recommended scale.",
    )
    style_tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_STYLE_TAG_CHARS),
        max_length=MAX_STYLE_TAGS,
        default=list,
    )
    controls = ControlsField(
        required=False,
        default=dict,
        help_text=(
            "Structured controls: bpm (40-220), energy and brightness (0-1), key (C, C#/Db...), "
            "mode (major|minor), section (intro, build, drop, breakdown, outro...), "
            "instruments_in and instruments_out (lists of instrument names). In a multipart "
            "form, the same object as JSON text."
        ),
    )
    expand_prompt = serializers.BooleanField(
        default=True, help_text="Fill a short prompt out with attributes of the nearest style."
    )
    title = serializers.CharField(max_length=MAX_TITLE_CHARS, required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Song.Visibility.choices, default="private")
    reference = serializers.FileField(
        required=False,
        allow_empty_file=True,  # refused by the service, with the upload's other errors
        use_url=False,
        help_text=(
            "Influence: a 2-60 s audio clip (WAV, FLAC, Ogg, MP3 or AIFF; at most 10 MB, "
            "8-96 kHz, mono or stereo) whose style steers the song. Send the request as "
            "multipart/form-data."
        ),
    )


class SongUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=MAX_TITLE_CHARS, required=False)
    visibility = serializers.ChoiceField(choices=Song.Visibility.choices, required=False)


class OwnerSerializer(serializers.Serializer):
    username = serializers.CharField()


def _iso(value) -> str | None:
    # DRF's DateTimeField output for UTC datetimes, without its per-call settings lookups.
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class SongListItemSerializer(serializers.Serializer):
    """The compact shape used in lists and feeds.

    Fields are declared for validation-free output and for the OpenAPI schema; the representation
    is built directly because lists and feeds are the hottest read path (DRF's per-field machinery
    cost about 0.4 ms per song). tests/api/test_serializer_shapes.py keeps the two in step.
    """

    id = serializers.UUIDField()
    url = serializers.CharField()
    title = serializers.CharField()
    owner = OwnerSerializer()
    duration_s = serializers.FloatField()
    status = serializers.ChoiceField(choices=Song.Status.choices)
    progress = serializers.FloatField()
    visibility = serializers.ChoiceField(choices=Song.Visibility.choices)
    style_tags = serializers.ListField(child=serializers.CharField())
    like_count = serializers.IntegerField()
    model_version = serializers.CharField()
    is_placeholder = serializers.BooleanField()
    moderation = serializers.ChoiceField(
        choices=Song.Moderation.choices,
        help_text="visible; hidden or removed by the moderators (only its owner sees it then).",
    )
    created_at = serializers.DateTimeField()

    def to_representation(self, song: Song) -> dict:
        return {
            "id": str(song.pk),
            "url": song_api_url(song),
            "title": song.title,
            "owner": {"username": song.owner.username},
            "duration_s": song.duration_s,
            "status": song.status,
            "progress": song.progress,
            "visibility": song.visibility,
            "style_tags": song.style_tags,
            "like_count": song.like_count,
            "model_version": song.model_version,
            "is_placeholder": song.is_placeholder,
            "moderation": song.moderation,
            "created_at": _iso(song.created_at),
        }


class SongDetailSerializer(SongListItemSerializer):
    """Everything about one song; the share link only for those who may edit the song."""

    prompt = serializers.CharField()
    seed = serializers.IntegerField()
    guidance = serializers.FloatField(allow_null=True)
    controls = serializers.DictField()
    expand_prompt = serializers.BooleanField()
    expansion = serializers.DictField(
        help_text="What prompt expansion added (nearest style and the controls it filled in)."
    )
    error = serializers.CharField()
    sample_rate = serializers.IntegerField(allow_null=True)
    audio_duration_s = serializers.FloatField(allow_null=True)
    peaks = serializers.ListField(child=serializers.FloatField())
    downloads = serializers.DictField(child=serializers.CharField())
    share_url = serializers.CharField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    exposure = serializers.DictField(
        help_text=(
            "Empty, or when the request was answered with two candidates to compare: "
            "choice_set, this song's slot, its propensity and the candidates' ids in slot order."
        )
    )
    reference = serializers.DictField(
        allow_null=True,
        help_text="The Influence clip the song was made with, if any: format, subtype, "
        "sample_rate, channels, duration_s, bytes (the clip itself is not served).",
    )

    def to_representation(self, song: Song) -> dict:
        request = self.context.get("request")
        can_edit = request is not None and song_can_edit(song, request.user)
        return {
            **super().to_representation(song),
            "prompt": song.prompt,
            "seed": song.seed,
            "guidance": song.guidance,
            "controls": song.controls,
            "expand_prompt": song.expand_prompt,
            "expansion": (song.provenance or {}).get("expansion") or {},
            "error": song.error,
            "sample_rate": song.sample_rate,
            "audio_duration_s": song.audio_duration_s,
            "peaks": song.peaks,
            "downloads": song_download_urls(song, self.context.get("share_token")),
            "share_url": f"/s/{song.share_token}/" if can_edit else None,
            "finished_at": _iso(song.finished_at),
            "exposure": song.exposure or {},
            "reference": song.reference_info or None,
        }


def song_api_url(song: Song) -> str:
    return f"{API_SONGS_PREFIX}{song.pk}/"


def song_download_urls(song: Song, share_token: str | None) -> dict[str, str]:
    if not song.is_ready or song.moderation == Song.Moderation.REMOVED:
        return {}
    suffix = f"&share_token={share_token}" if share_token else ""
    base = f"{API_SONGS_PREFIX}{song.pk}/download/?format="
    return {name: f"{base}{name}{suffix}" for name in FORMATS}


API_SONGS_PREFIX = "/api/v1/songs/"
