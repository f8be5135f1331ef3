"""Progress of one song's generation, pushed to the browser while it generates."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.errors import NotFound
from webapp.songs.selectors import song_get_for_viewer


class SongProgressConsumer(AsyncJsonWebsocketConsumer):
    """`ws/songs/<id>/`: a snapshot on connect, then {"type": "progress", status, progress}."""

    async def connect(self) -> None:
        self.song_id = str(self.scope["url_route"]["kwargs"]["song_id"])
        try:
            song = await database_sync_to_async(song_get_for_viewer)(
                song_id=self.song_id, user=self.scope.get("user")
            )
        except NotFound:
            await self.close(code=4404)
            return
        self.group = f"song-{self.song_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "progress", "status": song.status, "progress": song.progress})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        # Read-only channel: anything that arrives (even bad JSON) gets an error frame, no crash.
        await self.send_json(
            {"type": "error", "code": "read_only", "message": "Nothing to send here."}
        )

    async def song_progress(self, event: dict) -> None:
        await self.send_json(
            {"type": "progress", **{k: v for k, v in event.items() if k != "type"}}
        )
