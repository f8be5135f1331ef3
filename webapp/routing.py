"""Websocket routes. Song progress now; rooms join here when collab lands."""

from django.urls import path

from webapp.songs.consumers import SongProgressConsumer

websocket_urlpatterns = [
    path("ws/songs/<uuid:song_id>/", SongProgressConsumer.as_asgi()),
]
