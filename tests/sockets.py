"""Websockets to the site for tests, through the real ASGI application: the one helper that the
room protocol, moderation and security tests share (channels.testing needs daphne, which this
project does not install)."""

from __future__ import annotations

import asyncio
import json
import time

from asgiref.testing import ApplicationCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client


class Socket(ApplicationCommunicator):
    """A browser's websocket to the site (a room, ws/rooms/<id>/, or a song, ws/songs/<id>/)."""

    def __init__(self, path: str, headers: list, query: str = "") -> None:
        from webapp.asgi import application

        scope = {
            "type": "websocket",
            "path": path,
            "query_string": query.encode(),
            "headers": headers,
            "subprotocols": [],
        }
        super().__init__(application, scope)
        self.closed_at: float | None = None  # when the server's close arrived (monotonic)
        self.close_code: int | None = None

    async def connect(self) -> tuple[bool, int | None]:
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(5)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, None

    async def send_json(self, frame: dict) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(frame)})

    async def send_text(self, text: str) -> None:
        await self.send_input({"type": "websocket.receive", "text": text})

    def _read(self, message: dict) -> dict:
        if message["type"] == "websocket.close":
            self.closed_at = time.monotonic()
            self.close_code = message.get("code", 1000)
            return {"closed": self.close_code}
        return json.loads(message["text"])

    async def frame(self, timeout: float = 3.0) -> dict:
        """The next frame, or {"closed": code} once the server closed (noting when). Polls
        rather than waiting on receive_output, whose timeout would cancel the application."""
        deadline = time.monotonic() + timeout
        while self.output_queue.empty():
            if self.future.done():
                self.future.result()
            assert time.monotonic() < deadline, "no frame arrived"
            await asyncio.sleep(0.002)
        return self._read(self.output_queue.get_nowait())

    async def frame_of(self, kind: str, timeout: float = 3.0) -> dict:
        """The next frame of this type (or the close), passing over others."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.frame(max(0.0, deadline - time.monotonic()))
            if frame.get("type") == kind or "closed" in frame:
                return frame

    async def frames_until_closed(self, timeout: float = 3.0) -> list[dict]:
        """Every frame up to and including the close."""
        frames = []
        deadline = time.monotonic() + timeout
        while not frames or "closed" not in frames[-1]:
            frames.append(await self.frame(max(0.0, deadline - time.monotonic())))
        return frames

    async def frames_for(self, seconds: float) -> list[dict]:
        """Every frame that arrives in the next `seconds` (a close among them, if it comes)."""
        frames = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.output_queue.empty():
                await asyncio.sleep(0.01)
                continue
            frames.append(self._read(self.output_queue.get_nowait()))
        return frames

    async def disconnect(self) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.wait(5)


def headers_of(user=None, session_key: str | None = None) -> list[tuple[bytes, bytes]]:
    """What a browser on the site sends: its origin and, if it has one, its session cookie."""
    headers = [(b"origin", b"http://testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        session_key = client.cookies["sessionid"].value
    if session_key is not None:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    return headers


def anonymous_session() -> str:
    """A signed-out visitor's session, as the room page makes one."""
    session = SessionStore()
    session.create()
    return session.session_key


async def in_room(sockets, room, user=None, **options):
    """A socket to the room (through a `sockets` fixture that takes a path), past its snapshot."""
    socket, connected, code = await sockets(f"/ws/rooms/{room.pk}/", user, **options)
    assert connected, code
    snapshot = await socket.frame()
    assert snapshot["type"] == "snapshot", snapshot
    return socket, snapshot
