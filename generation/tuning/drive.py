"""The simulated audience through the real service: HTTP for songs and feedback, websockets for
rooms. No Django here: this is a client, like a browser or the mobile app would be.

    service = Service("http://127.0.0.1:8123")
    account = service.signup("sim-0", "a long password")          # POST /api/v1/auth/signup/
    made = account.request_song("night drive", 10.0)             # POST /api/v1/songs/
    song = account.wait_ready(made["id"])                         # GET  /api/v1/songs/<id>/
    pcm, rate = account.song_audio(song["id"])                    # GET  .../download/?format=flac
    account.send_feedback([a.as_api() for a in actions])          # POST /api/v1/feedback/

Rooms: :meth:`Account.browser_login` signs in through the login form (a session cookie, as a
browser has), :meth:`Account.create_room` posts the new-room form, and :class:`RoomSocket`
speaks the room protocol (docs/protocol.md) over a websocket with that session: propose,
vote, skip, and the frames that say a preview is ready.

Listeners' behaviour lives in generation/tuning/audience.py; the benchmark
(tests/bench/bench_tuning.py) puts the two together.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import numpy as np
import soundfile

FEEDBACK_BATCH = 100  # the API's limit per call


class ServiceError(RuntimeError):
    def __init__(self, status: int, body: str, url: str):
        super().__init__(f"{status} from {url}: {body[:300]}")
        self.status, self.body = status, body


class Service:
    """The service at ``base_url`` (http://host:port)."""

    def __init__(self, base_url: str, timeout_s: float = 60.0):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the service is reached over http(s), not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def signup(self, username: str, password: str) -> Account:
        body = Account(self, "", username, password).call(
            "POST", "/api/v1/auth/signup/", {"username": username, "password": password}
        )
        return Account(self, body["token"], username, password)


class Account:
    """One simulated listener's account: API calls with its token, pages with its cookies."""

    def __init__(self, service: Service, token: str, username: str, password: str):
        self.service, self.token = service, token
        self.username, self.password = username, password
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    # -- HTTP -----------------------------------------------------------------------------------

    def raw(self, method: str, path: str, data: bytes | None = None, headers=None) -> bytes:
        return self.open(method, path, data, headers)[0]

    def open(self, method: str, path: str, data: bytes | None = None, headers=None):
        """(body, the URL it finally came from: redirects are followed)."""
        url = self.service.base_url + path
        # http(s) only: Service checks its base URL
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
        try:
            with self.opener.open(request, timeout=self.service.timeout_s) as response:
                return response.read(), response.geturl()
        except urllib.error.HTTPError as exc:
            raise ServiceError(exc.code, exc.read().decode(errors="replace"), url) from None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """A JSON API call, authenticated by the account's token."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        answer = self.raw(method, path, data, headers)
        return json.loads(answer) if answer else {}

    # -- songs ----------------------------------------------------------------------------------

    def request_song(self, prompt: str, duration_s: float, **params) -> dict:
        body = {"prompt": prompt, "duration_s": duration_s, "visibility": "public", **params}
        return self.call("POST", "/api/v1/songs/", body)

    def song(self, song_id: str) -> dict:
        return self.call("GET", f"/api/v1/songs/{song_id}/")

    def wait_ready(self, song_id: str, timeout_s: float = 600.0, poll_s: float = 0.5) -> dict:
        """The song once it is ready (or failed: then an error)."""
        deadline = time.monotonic() + timeout_s
        while True:
            song = self.song(song_id)
            if song["status"] == "ready":
                return song
            if song["status"] == "failed":
                raise RuntimeError(f"song {song_id} failed: {song.get('error')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"song {song_id} not ready after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def song_audio(self, song_id: str, fmt: str = "flac") -> tuple[np.ndarray, int]:
        data = self.raw("GET", f"/api/v1/songs/{song_id}/download/?format={fmt}")
        pcm, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
        return (pcm.mean(axis=1) if pcm.ndim == 2 else pcm), rate

    def audio_at(self, path: str) -> tuple[np.ndarray, int]:
        """Audio the service serves at a path (a room chunk, a preview), with this session."""
        data = self.raw("GET", path)
        pcm, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
        return (pcm.mean(axis=1) if pcm.ndim == 2 else pcm), rate

    # -- feedback -------------------------------------------------------------------------------

    def send_feedback(self, events: list[dict]) -> int:
        """Post events in batches of the API's size; returns how many were recorded."""
        recorded = 0
        for i in range(0, len(events), FEEDBACK_BATCH):
            answer = self.call(
                "POST", "/api/v1/feedback/", {"events": events[i : i + FEEDBACK_BATCH]}
            )
            recorded += answer["recorded"]
        return recorded

    # -- pages and rooms ------------------------------------------------------------------------

    def _csrf_form(self, path: str) -> str:
        page = self.raw("GET", path).decode()
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if not found:
            raise RuntimeError(f"no CSRF token on {path}")
        return found.group(1)

    def _post_form(self, path: str, fields: dict) -> str:
        """Fill and post a form as a browser does; returns the URL the answer came from."""
        token = self._csrf_form(path)
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": self.service.base_url + path,
            "Origin": self.service.base_url,
        }
        return self.open("POST", path, data, headers)[1]

    def browser_login(self) -> str:
        """Sign in through the login form, as a browser does; returns the session id."""
        self._post_form("/accounts/login/", {"username": self.username, "password": self.password})
        return self.session_id()

    def session_id(self) -> str:
        for cookie in self.cookies:
            if cookie.name == "sessionid":
                return cookie.value
        raise RuntimeError(f"{self.username} has no session")

    def create_room(self, title: str, anchor_prompt: str, round_length_s: int = 60) -> str:
        """A public friends room through the new-room form; returns its id."""
        landed = self._post_form(
            "/rooms/new/",
            {
                "title": title,
                "anchor_prompt": anchor_prompt,
                "visibility": "public",
                "mode": "friends",
                "round_length_s": round_length_s,
                "who_may_propose": "everyone",
            },
        )
        found = re.search(r"/rooms/([0-9a-f-]{36})/", landed)  # redirected to the room's page
        if not found:
            raise RuntimeError(f"the room was not made (landed on {landed})")
        return found.group(1)


class RoomSocket:
    """One listener's websocket in a room (docs/protocol.md), with their session cookie."""

    def __init__(self, account: Account, room_id: str):
        self.account, self.room_id = account, room_id
        self.ws = None
        self.frames: asyncio.Queue = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self._next_id = 0

    async def __aenter__(self) -> RoomSocket:
        from websockets.asyncio.client import connect

        base = self.account.service.base_url
        url = base.replace("http", "ws", 1) + f"/ws/rooms/{self.room_id}/"
        self.ws = await connect(
            url,
            origin=base,
            additional_headers={"Cookie": f"sessionid={self.account.session_id()}"},
            open_timeout=30,
            proxy=None,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()

    async def _read(self) -> None:
        async for raw in self.ws:
            await self.frames.put(json.loads(raw))

    async def send(self, frame: dict) -> str:
        self._next_id += 1
        frame_id = f"{self.account.username}-{self._next_id}"
        await self.ws.send(json.dumps({**frame, "id": frame_id}))
        return frame_id

    async def expect(self, kinds: set[str], timeout_s: float, answering: str | None = None) -> dict:
        """The next frame of one of these types (others pass by); with ``answering``, only the
        answer to that frame."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {sorted(kinds)} frame within {timeout_s:.0f} s")
            frame = await asyncio.wait_for(self.frames.get(), left)
            if frame.get("type") in kinds and (answering is None or frame.get("id") == answering):
                return frame

    async def request(self, frame: dict, timeout_s: float = 30.0) -> dict:
        """Send a frame and wait for its answer (``ack`` or ``error``)."""
        frame_id = await self.send(frame)
        return await self.expect({"ack", "error"}, timeout_s, answering=frame_id)
