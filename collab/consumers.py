"""The room websocket, `ws/rooms/<id>/`: protocol version 1 (docs/protocol.md).

A thin consumer, as the house style wants: it parses a frame (collab.protocol), calls one
service (collab.services) and shapes the answer; votes go through the process's vote batcher
(collab.votes) and are answered once stored. What listeners hear of a change, services announce
on commit (collab.broadcast); each process receives a room's broadcasts once and hands them to
its listeners (_Relay), and closes every socket when Redis restarts (_RedisWatch) so that
clients start again from a snapshot.

Who may connect is the rooms' visibility rule (collab.selectors.room_get_for_viewer, with the
share token of an unlisted room as `?share=`); who may do what, the services' gates. A bad frame
gets an error frame and the connection stays open; only a client that floods far past its limit
(collab.protocol.FLOOD_CLOSE_AFTER refused frames in a row) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from urllib.parse import parse_qs

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import DatabaseSyncToAsync, database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.sessions import InstanceSessionWrapper
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from collab import broadcast, protocol, services, votes
from collab.models import Room
from collab.presence import presence_join, presence_leave
from collab.selectors import (
    participant_key,
    participant_kicked_until,
    participant_tag,
    proposal_get_in_room,
    room_can_host,
    room_can_view,
    room_get_for_viewer,
)
from webapp.errors import NotFound, ServiceError
from webapp.moderation.realtime import sanction_frame, user_group
from webapp.moderation.selectors import sanction_in_force, session_account_id
from webapp.ratelimit import RateLimited

logger = logging.getLogger(__name__)

TICK_S = 0.25  # how often a process looks for throttled frames due (collab.broadcast.THROTTLE_S)
# Messages whose work takes long (keeping reads and encodes up to ten minutes of audio) run in a
# thread of their own rather than the one every consumer of this process shares for the database.
SLOW_TYPES = frozenset({"keep"})


class RoomConsumer(AsyncWebsocketConsumer):
    """One listener's connection to one room."""

    joined = False
    held: list[dict] | None = None  # broadcasts that came while the snapshot was being made
    user_group: str | None = None  # webapp.moderation.realtime: a sanction closes the socket
    tag: str | None = None  # collab.selectors.participant_tag: a kick or mute finds the socket

    # --- Connection ---------------------------------------------------------------------------

    async def connect(self) -> None:
        self.room_id = str(self.scope["url_route"]["kwargs"]["room_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.share_token = (query.get("share") or [None])[0]
        self.user = self.scope.get("user")
        if self.user is not None and self.user.is_authenticated:
            # Before the sanction check in _load: a ban that lands in between still finds us.
            self.user_group = user_group(self.user.pk)
            await self.channel_layer.group_add(self.user_group, self.channel_name)
        try:
            self.room, self.anon_key, refusal = await database_sync_to_async(self._load)()
        except NotFound:
            await self._refuse(protocol.CLOSE_NOT_FOUND)
            return
        if refusal is not None:
            await self._refuse(*refusal)
            return
        key = participant_key(self.user, self.anon_key)
        self.tag = participant_tag(key) if key else None
        self.is_host = room_can_host(self.room, self.user)
        self.bucket = protocol.TokenBucket()
        self.refused_in_a_row = 0
        self.group = broadcast.room_group(self.room_id)
        broadcast.use_loop(asyncio.get_running_loop())
        self.held = []
        await _relays.join(self)
        await self.accept()
        self.joined = True
        await sync_to_async(_listener_joined, thread_sensitive=False)(self.room_id)
        _tickers.listen(self.room_id)
        _redis_watch.add(self)
        await self.send_frame(await self._snapshot())
        await self._release_held()

    def _load(self) -> tuple[Room, str | None, tuple[int, dict] | None]:
        """The room, the signed-out listener's session key, and why the connection is refused
        if it is: (close code, error frame) for a sanctioned account or a kicked participant."""
        room = room_get_for_viewer(
            user=self.user, room_id=self.room_id, share_token=self.share_token
        )
        signed_in = self.user is not None and self.user.is_authenticated
        session = self.scope.get("session")
        # The account behind the connection: the signed-in user, or the one a session still
        # names after authentication refused it (banned, suspended, deactivated).
        account_id = self.user.pk if signed_in else None
        if not signed_in:
            account_id = session_account_id(session)
        sanction = sanction_in_force(user_id=account_id) if account_id else None
        if sanction is not None:
            return room, None, (protocol.CLOSE_SANCTIONED, sanction_frame(sanction))
        # Signed-out listeners take part under their session, if it is a real one (a made-up
        # cookie must not mint a fresh voter) and not an account's that can no longer sign in.
        anon_key = None
        if session is not None and not signed_in and account_id is None:
            key = session.session_key
            if key and session.exists(key):
                anon_key = key
        now = time.time()
        kicked = participant_kicked_until(room, participant_key(self.user, anon_key), now=now)
        if kicked is not None:
            return room, None, (protocol.CLOSE_KICKED, protocol.kicked_frame(until=kicked, now=now))
        return room, anon_key, None

    async def _refuse(self, code: int, frame: dict | None = None) -> None:
        """Turn the connection away: during the handshake (4404: nothing to say), or after an
        error frame that says why (a sanction, a kick)."""
        await self._leave_user_group()
        if frame is not None:
            await self.accept()
            await self.send_frame(frame)
        await self.close(code=code)

    async def _leave_user_group(self) -> None:
        group, self.user_group = self.user_group, None
        if group is not None:
            with contextlib.suppress(Exception):  # Redis away: the subscription dies with it
                await self.channel_layer.group_discard(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        """Stop listening (idempotent): on disconnect, and at once when the server closes."""
        if not self.joined:
            return
        self.joined = False
        _redis_watch.discard(self)
        await self._leave_user_group()
        await _relays.leave(self)
        _tickers.leave(self.room_id)
        await sync_to_async(_listener_left, thread_sensitive=False)(self.room_id)

    async def _close(self, code: int) -> None:
        await self._leave()
        await self.close(code=code)

    async def resync(self) -> None:
        """Let the client go so that it reconnects and starts again from a snapshot (the
        shared state behind its seq and presence is gone: collab.consumers._RedisWatch).
        Leaving may fail while Redis is away; the socket closes all the same."""
        try:
            await self._leave()
        except Exception:
            logger.warning("room %s: leaving after a Redis restart failed", self.room_id)
        await self.close(code=protocol.CLOSE_RESYNC)

    async def __call__(self, scope, receive, send) -> None:
        """Frames go to the server past Channels' session wrapper: it looks into the session on
        every message sent (to save it with an HTTP response, never on a websocket), which in a
        room of thousands was a tenth of a web process's time. This consumer never changes the
        session."""
        wrapper = getattr(send, "__self__", None)
        if isinstance(wrapper, InstanceSessionWrapper):
            send = wrapper.real_send
        await super().__call__(scope, receive, send)

    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch without its hop to the database thread before every message (to
        close stale connections). This consumer reaches the database only through
        database_sync_to_async, which closes them itself, and through the vote batcher, which
        does so after each batch; but the hop runs for every frame and every broadcast, all on
        the one thread a process shares for the database, so that a chunk announced to a
        thousand listeners queued a thousand hops behind each other."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- Frames from the client ---------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if not self.joined:  # closed by the server; frames already on their way are dropped
            return
        received_at = time.time()
        if not self.bucket.take(time.monotonic()):
            await self._refuse_flood()
            return
        self.refused_in_a_row = 0
        try:
            message = protocol.parse_frame(text_data, bytes_data)
        except protocol.ProtocolError as exc:
            await self.send_frame(
                protocol.error_frame(exc.code, exc.message, id=exc.id, field=exc.field)
            )
            return
        if message.type in protocol.HOST_TYPES and not self.is_host:
            await self.send_frame(
                protocol.error_frame(
                    "forbidden", "Only the host can do that.", id=message.id, field="type"
                )
            )
            return
        try:
            if message.type == "ping":
                frame = protocol.pong_frame(t0=message.get("t0"), t1=received_at, t2=time.time())
            elif message.type == "vote":
                frame = await self._vote(message)
            else:
                thread_sensitive = message.type not in SLOW_TYPES
                act = DatabaseSyncToAsync(self._act, thread_sensitive=thread_sensitive)
                frame = await act(message)
        except RateLimited as exc:
            frame = protocol.error_frame(
                protocol.RATE_LIMITED, str(exc), id=message.id, retry_after_s=exc.retry_after_s
            )
        except ServiceError as exc:
            frame = protocol.error_frame(exc.code, exc.message, id=message.id, field=exc.field)
        except Exception:
            logger.exception("room %s: %s from %s failed", self.room_id, message.type, self.user)
            frame = protocol.error_frame(
                protocol.INTERNAL, "Something went wrong on our side; try again.", id=message.id
            )
        await self.send_frame(protocol.reply(frame, message.id))

    async def _refuse_flood(self) -> None:
        self.refused_in_a_row += 1
        if self.refused_in_a_row == 1:  # one error frame per streak: answering each would echo
            retry = self.bucket.retry_after(time.monotonic())
            await self.send_frame(
                protocol.error_frame(
                    protocol.RATE_LIMITED,
                    "Too many messages on this connection; slow down.",
                    retry_after_s=retry,
                )
            )
        elif self.refused_in_a_row >= protocol.FLOOD_CLOSE_AFTER:
            logger.warning("room %s: closing a flooding connection (%s)", self.room_id, self.user)
            await self._close(protocol.CLOSE_FLOODING)

    async def _vote(self, message: protocol.ClientMessage) -> dict:
        """A vote goes through this process's batcher (collab.votes): it is checked and
        written with the others that arrive within a few milliseconds, and acknowledged only
        once it is durable. Waiting for it holds no thread."""
        cast = await votes.vote_submit(
            votes.VoteRequest(
                room_id=self.room_id,
                proposal_id=message.get("proposal_id"),
                user=self.user,
                anon_key=self.anon_key,
                now=timezone.now(),
            )
        )
        return _ack("vote", proposal_id=cast.proposal_id)

    def _act(self, message: protocol.ClientMessage) -> dict:
        """Carry out one client message (in a worker thread: services touch the database) and
        return the frame that answers it."""
        kind = message.type
        user, anon_key, room = self.user, self.anon_key, self.room
        if kind in ("join", "snapshot"):
            return self._snapshot_now()
        if kind == "propose":
            proposal = services.proposal_create(
                room=room,
                user=user,
                anon_key=anon_key,
                text=message.get("text"),
                control=message.get("control"),
            )
            return _ack(kind, proposal=broadcast.proposal_view(proposal))
        if kind == "thumb":
            services.chunk_thumb(
                room=room,
                sequence=message.get("sequence"),
                up=message.get("value") == "up",
                user=user,
                anon_key=anon_key,
                client_event_id=message.get("event_id", ""),
            )
            return _ack(kind, sequence=message.get("sequence"), value=message.get("value"))
        if kind == "keep":
            song = services.room_keep(
                room=room,
                user=user,
                seconds=message.get("seconds"),
                title=message.get("title"),
                **({"visibility": message.get("visibility")} if message.get("visibility") else {}),
            )
            return {
                "type": "keep_done",
                "song_id": str(song.pk),
                "url": reverse("song-page", args=[song.pk]),
                "duration_s": round(song.audio_duration_s or song.duration_s, 3),
            }
        return self._host_act(message)

    def _host_act(self, message: protocol.ClientMessage) -> dict:
        kind, user, room = message.type, self.user, self.room
        if kind == "pause":
            services.room_pause(room=room, user=user)
        elif kind == "resume":
            services.room_resume(room=room, user=user)
        elif kind == "end":
            services.room_end(room=room, user=user)
        elif kind == "hard_cut":
            closed = services.room_hard_cut(room=room, user=user)
            return _ack(kind, round=closed.number)
        elif kind == "skip" and message.get("proposal_id") is None:
            closed = services.round_skip(room=room, user=user)
            return _ack(kind, round=closed.number)
        elif kind in ("skip", "veto", "approve", "reject"):
            proposal = proposal_get_in_room(room=room, proposal_id=message.get("proposal_id"))
            services.proposal_moderate(proposal=proposal, user=user, approve=kind == "approve")
            return _ack(kind, proposal_id=proposal.pk)
        elif kind == "slow_mode":
            services.room_update(room=room, user=user, slow_mode_s=message.get("seconds"))
            return _ack(kind, seconds=room.slow_mode_s)
        elif kind == "approval":
            mode = Room.Mode.AUDIENCE if message.get("on") else Room.Mode.FRIENDS
            services.room_update(room=room, user=user, mode=mode)
            return _ack(kind, on=room.mode == Room.Mode.AUDIENCE)
        elif kind in ("mute", "unmute", "kick"):
            return self._restrict(message)
        else:  # a type in protocol.HOST_MESSAGES without a branch here
            raise ServiceError(f"{kind} is not handled.", code=protocol.UNKNOWN_TYPE)
        return _ack(kind, status=room.status)

    def _restrict(self, message: protocol.ClientMessage) -> dict:
        """The host mutes, unmutes or kicks a participant (collab.services)."""
        kind, room, user = message.type, self.room, self.user
        key = services.participant_resolve(
            room=room, proposal_id=message.get("proposal_id"), username=message.get("username")
        )
        reason = message.get("reason") or ""
        if kind == "unmute":
            services.participant_unmute(room=room, user=user, key=key)
            return _ack(kind)
        minutes = message.get("minutes") or services.DEFAULT_RESTRICTION_MINUTES
        act = services.participant_mute if kind == "mute" else services.participant_kick
        until = act(room=room, user=user, key=key, minutes=minutes, reason=reason)
        return _ack(kind, until=round(until, 3), minutes=minutes)

    # --- Frames to the client -----------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=_dumps(frame))

    async def _snapshot(self) -> dict:
        return await database_sync_to_async(self._snapshot_now)()

    async def _release_held(self) -> None:
        """Forward, in order, the broadcasts held while the snapshot was made (those older
        than it the client ignores by their seq)."""
        held, self.held = self.held or [], None
        for event in held:
            await self.room_frame(event)

    def _snapshot_now(self) -> dict:
        return broadcast.snapshot(room_id=self.room_id, user=self.user, anon_key=self.anon_key)

    async def room_frame(self, event: dict) -> None:
        """A broadcast to the room's group (collab.broadcast.send), handed over by this
        process's relay of the room (_Relays): forwarded as it is. One that comes while the
        snapshot is being made follows the snapshot, as docs/protocol.md promises."""
        if self.held is not None:
            self.held.append(event)
            return
        if not self.joined:
            return
        if "to" in event:  # for one participant only (collab.broadcast.send_to_participant)
            if event["to"] == self.tag:
                await self.send(text_data=event["text"])
                if event.get("close_code"):
                    await self._close(event["close_code"])
            return
        if event.get("hosts_only") and not self.is_host:
            await self.send_frame(protocol.noop_frame(event["seq"]))
        else:
            await self.send(text_data=event["text"])
        changed = False
        for name in ("visibility", "moderation"):
            value = event.get(name)
            if value is not None and value != getattr(self.room, name):
                setattr(self.room, name, value)
                changed = True
        close_code = event.get("close_code")
        if (close_code or changed) and (
            event.get("close_everyone")
            or not room_can_view(self.room, self.user, share_token=self.share_token)
        ):
            await self._close(close_code or protocol.CLOSE_NOT_FOUND)

    async def user_sanctioned(self, event: dict) -> None:
        """The account was banned or suspended (webapp.moderation.realtime): say so, and go."""
        if self.joined:
            await self.send_frame(event["frame"])
            await self._close(protocol.CLOSE_SANCTIONED)


def _ack(of: str, **result) -> dict:
    return {"type": "ack", "of": of, **result}


def _dumps(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"))


def _listener_joined(room_id: str) -> None:
    presence_join(room_id=room_id)
    broadcast.presence_changed(room_id=room_id)


def _listener_left(room_id: str) -> None:
    presence_leave(room_id=room_id)
    broadcast.presence_changed(room_id=room_id)


# --- The relay: each broadcast reaches a process once ---------------------------------------------


class _Relay:
    """This process's listeners of one room, and the one channel through which the room's
    broadcasts reach them: a task receives each group message once and hands it to every
    listener in turn (RoomConsumer.room_frame, whose send only writes to the socket's buffer).

    A channel per listener would cost, for every broadcast and every listener, a queue, a task
    woken, the message decoded and a dispatch: with a thousand listeners a chunk reached the
    last of them half a second after the first."""

    def __init__(self, room_id: str) -> None:
        self.group = broadcast.room_group(room_id)
        self.listeners: set[RoomConsumer] = set()
        self.layer = get_channel_layer()
        self.loop = asyncio.get_running_loop()
        self.subscribed = self.loop.create_future()
        self.stopping = False
        self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        channel = await self.layer.new_channel("room-relay.")
        try:
            await self.layer.group_add(self.group, channel)
            self.subscribed.set_result(True)
            while not self.stopping:
                event = await self.layer.receive(channel)
                await self._hand_over(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # subscribing failed: the listeners waiting on it hear why
            if not self.subscribed.done():
                self.subscribed.set_exception(exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(self.group, channel)

    async def _hand_over(self, event: dict) -> None:
        for consumer in list(self.listeners):  # one may leave (closing) meanwhile
            try:
                await consumer.room_frame(event)
            except Exception:  # its socket went: the others still hear the room
                logger.debug("room %s: a listener missed a frame", self.group, exc_info=True)

    def usable(self) -> bool:
        return (
            not self.stopping and not self.task.done() and self.loop is asyncio.get_running_loop()
        )

    def stop(self) -> None:
        """Stop relaying. From within the relay's own task (a listener leaving as it is handed
        a frame: a room made private closes sockets) it stops once the hand-over is done, so
        that the listener's close is not cut short."""
        self.stopping = True
        if asyncio.current_task() is not self.task:
            self.task.cancel()


class _Relays:
    """The relays of this process, one per room it has listeners of."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Relay] = {}

    async def join(self, consumer: RoomConsumer) -> None:
        """Add a listener; returns once the room's broadcasts reach it."""
        relay = self._rooms.get(consumer.room_id)
        if relay is None or not relay.usable():
            relay = self._rooms[consumer.room_id] = _Relay(consumer.room_id)
        relay.listeners.add(consumer)
        try:
            await asyncio.shield(relay.subscribed)
        except BaseException:
            await self.leave(consumer)
            raise

    async def leave(self, consumer: RoomConsumer) -> None:
        relay = self._rooms.get(consumer.room_id)
        if relay is None:
            return
        relay.listeners.discard(consumer)
        if not relay.listeners:
            del self._rooms[consumer.room_id]
            relay.stop()


_relays = _Relays()


# --- The ticker: throttled frames ---------------------------------------------------------------


class _Tickers:
    """While this process has listeners of a room, one task per room looks every TICK_S for
    throttled frames due (tallies, presence) and sends them: collab.broadcast.claim_due makes
    sure only one process sends each. A room without local listeners costs nothing here."""

    def __init__(self) -> None:
        self._rooms: dict[str, tuple[asyncio.Task, int]] = {}

    def listen(self, room_id: str) -> None:
        task, count = self._rooms.get(room_id, (None, 0))
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task, count = asyncio.get_running_loop().create_task(_tick(room_id)), 0
        self._rooms[room_id] = (task, count + 1)

    def leave(self, room_id: str) -> None:
        task, count = self._rooms.get(room_id, (None, 0))
        if task is None:
            return
        if count <= 1:
            task.cancel()
            del self._rooms[room_id]
        else:
            self._rooms[room_id] = (task, count - 1)


_tickers = _Tickers()


async def _tick(room_id: str) -> None:
    claim = sync_to_async(broadcast.claim_due, thread_sensitive=False)
    flush = database_sync_to_async(broadcast.flush)
    while True:
        await asyncio.sleep(TICK_S)
        try:
            due = await claim(room_id=room_id)
            if due:
                await flush(room_id=room_id, kinds=due)
        except Exception:  # the next tick tries again; the rows hold the truth
            logger.warning("room %s: throttled frames failed", room_id, exc_info=True)


# --- The Redis watch: a restart of Redis makes every client start again ---------------------------


class _RedisWatch:
    """Service mode: while this process has room sockets, one task asks Redis for its run id
    every WATCH_S. Redis keeps the rooms' seq counters, presence counts and channel-layer
    subscriptions; a restart loses them all, and a client that went on would ignore every frame
    (its seq is ahead of the new counter) and be counted nowhere. So when the run id changes,
    each socket of this process is closed with CLOSE_RESYNC: clients reconnect (docs/protocol.md),
    are counted again, and start from a snapshot. While Redis is unreachable the sockets stay
    open (broadcasts are at most once anyway); the check resumes when it answers."""

    WATCH_S = 1.0

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[RoomConsumer] = weakref.WeakSet()
        self._task: asyncio.Task | None = None
        self._run_id: str | None = None

    def add(self, consumer: RoomConsumer) -> None:
        if not settings.REDIS_URL:
            return
        self._sockets.add(consumer)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._watch(settings.REDIS_URL))

    def discard(self, consumer: RoomConsumer) -> None:
        self._sockets.discard(consumer)

    async def _watch(self, url: str) -> None:
        client = aioredis.Redis.from_url(url, socket_timeout=self.WATCH_S)
        try:
            while self._sockets:
                await self._check(client)
                await asyncio.sleep(self.WATCH_S)
        finally:
            self._run_id = None  # a restart while nobody listens concerns nobody
            await client.aclose()

    async def _check(self, client) -> None:
        try:
            run_id = (await client.info("server"))["run_id"]
        except Exception:  # Redis is away: nothing to compare until it is back
            return
        if self._run_id is not None and run_id != self._run_id:
            logger.warning("Redis restarted: %d room sockets resync", len(self._sockets))
            for consumer in list(self._sockets):
                self._sockets.discard(consumer)
                asyncio.get_running_loop().create_task(consumer.resync())
        self._run_id = run_id


_redis_watch = _RedisWatch()
