"""The read serializers build their output by hand for speed; their declared fields (which the
OpenAPI schema is made from) must stay exactly the keys they produce, and the URLs must resolve."""

from django.urls import resolve, reverse

from webapp.songs.serializers import SongDetailSerializer, SongListItemSerializer


def test_list_item_output_has_exactly_the_declared_fields(a_public_song):
    data = SongListItemSerializer(a_public_song).data
    assert set(data) == set(SongListItemSerializer().fields)


def test_detail_output_has_exactly_the_declared_fields(a_public_song):
    data = SongDetailSerializer(a_public_song).data
    assert set(data) == set(SongDetailSerializer().fields)


def test_the_hand_built_urls_are_the_routed_ones(a_public_song):
    data = SongDetailSerializer(a_public_song).data
    assert data["url"] == reverse("api-song-detail", args=[a_public_song.pk])
    for name, url in data["downloads"].items():
        path, query = url.split("?")
        assert resolve(path).url_name == "api-song-download"
        assert query == f"format={name}"


def test_timestamps_match_drf_formatting(a_public_song):
    from rest_framework.fields import DateTimeField

    data = SongListItemSerializer(a_public_song).data
    assert data["created_at"] == DateTimeField().to_representation(a_public_song.created_at)
