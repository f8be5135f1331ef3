"""Websocket routes: song progress, and rooms (protocol in docs/protocol.md)."""

from django.urls import path

from collab.consumers import RoomConsumer
from webapp.songs.consumers import SongProgressConsumer

websocket_urlpatterns = [
    path("ws/songs/<uuid:song_id>/", SongProgressConsumer.as_asgi()),
    path("ws/rooms/<uuid:room_id>/", RoomConsumer.as_asgi()),
]
