"""Progress of one song's generation, pushed to the browser while it generates."""

from __future__ import annotations

import asyncio
import contextlib

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from collab import broadcast
from webapp.errors import NotFound
from webapp.moderation.realtime import CLOSE_SANCTIONED, sanction_frame, user_group
from webapp.moderation.selectors import sanction_in_force
from webapp.songs.selectors import song_get_for_viewer


class SongProgressConsumer(AsyncJsonWebsocketConsumer):
    """`ws/songs/<id>/`: a snapshot on connect, then {"type": "progress", status, progress}.

    A signed-in listener's socket is in its account's group (webapp.moderation.realtime): a ban
    or suspension sends an `error` frame (`banned`, `suspended`) and closes it with 4403."""

    user_group: str | None = None

    async def connect(self) -> None:
        self.song_id = str(self.scope["url_route"]["kwargs"]["song_id"])
        user = self.scope.get("user")
        # Sanctions reach sockets through the server's loop (collab.broadcast.deliver).
        broadcast.use_loop(asyncio.get_running_loop())
        if user is not None and user.is_authenticated:
            # Joined before the sanction check below, so that a ban in between still finds it.
            self.user_group = user_group(user.pk)
            await self.channel_layer.group_add(self.user_group, self.channel_name)
        try:
            song, sanction = await database_sync_to_async(self._load)(user)
        except NotFound:
            await self._leave_user_group()
            await self.close(code=4404)
            return
        if sanction is not None:
            await self._leave_user_group()
            await self.accept()
            await self.send_json(sanction_frame(sanction))
            await self.close(code=CLOSE_SANCTIONED)
            return
        self.group = f"song-{self.song_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "progress", "status": song.status, "progress": song.progress})

    def _load(self, user):
        song = song_get_for_viewer(song_id=self.song_id, user=user)
        signed_in = user is not None and user.is_authenticated
        return song, sanction_in_force(user_id=user.pk) if signed_in else None

    async def _leave_user_group(self) -> None:
        group, self.user_group = self.user_group, None
        if group is not None:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await self._leave_user_group()

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        # Read-only channel: anything that arrives (even bad JSON) gets an error frame, no crash.
        await self.send_json(
            {"type": "error", "code": "read_only", "message": "Nothing to send here."}
        )

    async def song_progress(self, event: dict) -> None:
        await self.send_json(
            {"type": "progress", **{k: v for k, v in event.items() if k != "type"}}
        )

    async def user_sanctioned(self, event: dict) -> None:
        """The account was banned or suspended (webapp.moderation.realtime): say so, and go."""
        await self.send_json(event["frame"])
        await self._leave_user_group()
        await self.close(code=CLOSE_SANCTIONED)
