"""Fuzzing the room websocket: at least 10,000 malformed and edge-case frames, and nobody else
notices (docs/security.md).

Two fuzzing clients (carol, signed in, and an anonymous visitor with a session) send frames that
Hypothesis makes: garbage text, binary frames, any JSON value, frames of every message type with
fields of every wrong type, huge and non-finite numbers, deep nesting, unicode edge cases (lone
surrogates, NUL, right-to-left marks), oversized frames, unknown types, missing fields, and
valid-but-wrong actions: votes for other rooms' proposals and for closed rounds, host controls
from a non-host, thumbs for chunks that do not exist.

What must hold, after every batch:
- every frame is answered, with an ack or an error frame that has a code and a message, and
  never with the "internal" error; no socket is closed and no consumer dies;
- nothing is logged at ERROR (the consumer logs every exception it catches there);
- bob, a well-behaved listener in the same room, gets correct answers (pong, his thumb's ack,
  his snapshot), hears the host's changes, and the seq numbers of everything he hears stay
  contiguous: he missed nothing.

The per-connection token bucket is lifted for this test: with it, all but twenty frames a burst
would be answered "rate_limited" and the code behind it never reached (the bucket and the flood
close have their own tests in tests/collab/test_protocol.py). The services' own rate limits stay.

Runs in embedded mode and in service mode (the real consumer through the ASGI application, on
SQLite with the in-memory layer, or PostgreSQL with Redis), on one event loop of its own:
Hypothesis calls the test body once per batch, synchronously, and each batch is played on that
loop. Examples come from a fixed seed (derandomize), so a failure replays the same frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from collab import protocol, services
from tests.sockets import Socket, anonymous_session, headers_of

FRAMES_WANTED = 10_000
FRAMES_PER_BATCH = (40, 60)
BATCHES = math.ceil(FRAMES_WANTED / FRAMES_PER_BATCH[0])  # enough even if every batch is short
REPLY_TYPES = {"ack", "pong", "error", "snapshot", "keep_done"}  # one per frame sent
ANSWER_TIMEOUT_S = 30.0  # per batch: generous for a loaded CI machine; a hang fails, not waits

# --- Frames -------------------------------------------------------------------------------------

EDGE_NUMBERS = st.sampled_from(
    [0, -1, 1, 2**31, 2**53 - 1, 2**53, 2**63, -(2**63), 10**30, 1e308, -1e308, 5e-324, 0.5, -0.0]
)
UNICODE_EDGES = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\u200b",  # zero-width space
        "\u202e evil",  # right-to-left override
        "\ufeff",  # byte-order mark
        "e\u0301" * 50,  # combining accents
        "🎵" * 100,
        "\U0010ffff",
        "\t\n\r",
        "x" * 1001,  # past the protocol's text bound
        "<script>alert(1)</script>",
        "'; DROP TABLE collab_vote; --",
    ]
)
TEXTS = st.one_of(UNICODE_EDGES, st.text(max_size=300))
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    EDGE_NUMBERS,
    st.floats(allow_nan=True, allow_infinity=True),
    TEXTS,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGE_TYPES = sorted(protocol.MESSAGES)
FIELD_NAMES = sorted({name for spec in protocol.MESSAGES.values() for name in spec})
CONTROLS = st.dictionaries(
    st.sampled_from(["bpm", "energy", "brightness", "key", "mode", "section", "instruments_in",
                     "instruments_out", "volume"]),
    st.one_of(JSON_SCALARS, st.sampled_from(["+", "-", "+8", "-400", "C", "minor", "drop"]),
              st.lists(TEXTS, max_size=10)),
    max_size=4,
)  # fmt: skip


def structured_frames(targets: dict) -> st.SearchStrategy[dict]:
    """A frame of a known (or unknown) type, each field right, wrong, missing or extra."""
    ids = st.one_of(st.none(), st.text(max_size=70), st.integers(), EDGE_NUMBERS, JSON_VALUES)
    proposal_ids = st.one_of(st.sampled_from(targets["proposal_ids"]), st.integers(), EDGE_NUMBERS)
    sequences = st.one_of(st.sampled_from(targets["sequences"]), st.integers(), EDGE_NUMBERS)
    right_values = {
        "proposal_id": proposal_ids,
        "sequence": sequences,
        "value": st.sampled_from(["up", "down", "UP", "", "sideways"]),
        "text": TEXTS,
        "control": CONTROLS,
        "t0": st.one_of(st.floats(), EDGE_NUMBERS),
        "seconds": st.one_of(st.integers(-5, 700), EDGE_NUMBERS, st.floats()),
        "title": TEXTS,
        "visibility": st.sampled_from(["public", "unlisted", "private", "secret", ""]),
        "event_id": st.one_of(st.text(max_size=70), st.integers()),
        "username": st.sampled_from(["alice", "bob", "carol", "nobody", ""]),
        "minutes": st.one_of(st.integers(-5, 2000), EDGE_NUMBERS),
        "on": st.booleans(),
        "reason": TEXTS,
    }

    @st.composite
    def frame(draw) -> dict:
        kind = draw(st.one_of(st.sampled_from(MESSAGE_TYPES), JSON_VALUES))
        fields = draw(st.lists(st.sampled_from(FIELD_NAMES), unique=True, max_size=4))
        body: dict = {} if draw(st.integers(0, 9)) == 0 else {"type": kind}
        if draw(st.booleans()):
            body["id"] = draw(ids)
        for name in fields:  # a field new to the protocol is fuzzed with any JSON value
            body[name] = draw(st.one_of(right_values.get(name, JSON_VALUES), JSON_VALUES))
        return body

    return frame()


RAW_TEXTS = st.one_of(
    st.sampled_from(
        [
            "",
            "null",
            "[]",
            "{}",
            '"type"',
            "\ufeff{}",
            '{"type": "ping", "t0": NaN}',
            '{"type": "ping", "t0": Infinity}',
            '{"type": "ping", "t0": -Infinity}',
            '{"type": "vote", "type": "ping", "t0": 1}',  # a repeated key
            '{"type": "propose", "text": "\\ud800"}',  # a lone surrogate, escaped
            '{"type": "propose", "text": "\\udfff\\ud800"}',
            '{"type": "join"} trailing',
            '{"type": "join"',
        ]
    ),
    # A number with thousands of digits: valid JSON, under the size cap.
    st.builds(
        lambda kind, field, digits, sign: f'{{"type": "{kind}", "{field}": {sign}{"9" * digits}}}',
        st.sampled_from(MESSAGE_TYPES),
        st.sampled_from(FIELD_NAMES),
        st.integers(300, 4000),
        st.sampled_from(["", "-"]),
    ),
    st.builds(
        lambda kind, digits: f'{{"type": "propose", "control": {{"{kind}": {"9" * digits}}}}}',
        st.sampled_from(["bpm", "energy", "brightness"]),
        st.integers(300, 4000),
    ),
    # Deep nesting, under the size cap.
    st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(500, 2000)),
    st.builds(lambda depth: '{"a":' * depth + "1" + "}" * depth, st.integers(500, 800)),
    st.builds(
        lambda depth: '{"type": "propose", "control": ' + "[" * depth + "]" * depth + "}",
        st.integers(500, 1900),
    ),
    # Oversized.
    st.builds(
        lambda n: json.dumps({"type": "propose", "text": "x" * n}), st.integers(4100, 70_000)
    ),
    st.text(max_size=200),  # garbage
)


def frames(targets: dict) -> st.SearchStrategy[tuple[str, str | bytes]]:
    """("text", str) or ("bytes", bytes): what one websocket message carries."""
    as_text = st.one_of(
        structured_frames(targets).map(json.dumps),
        structured_frames(targets).map(lambda f: json.dumps(f, ensure_ascii=False)),
        JSON_VALUES.map(json.dumps),
        RAW_TEXTS,
    ).map(lambda text: ("text", text))
    as_bytes = st.one_of(
        st.binary(max_size=200), structured_frames(targets).map(lambda f: json.dumps(f).encode())
    ).map(lambda data: ("bytes", data))
    return st.one_of(as_text, as_text, as_text, as_bytes)


# --- The room, its listeners, and the loop they live on -----------------------------------------


class Listener:
    """A socket to the room and everything it has heard, replies and broadcasts apart."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.replies: list[dict] = []
        self.broadcasts: list[dict] = []
        self.closed: int | None = None

    def drain(self) -> None:
        while not self.socket.output_queue.empty():
            message = self.socket.output_queue.get_nowait()
            if message["type"] == "websocket.close":
                self.closed = message.get("code", 1000)
                continue
            frame = json.loads(message["text"])
            (self.replies if frame.get("type") in REPLY_TYPES else self.broadcasts).append(frame)

    async def until(self, predicate, what: str, timeout: float = ANSWER_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            found = predicate()
            if found:
                return found
            if self.socket.future.done():
                self.socket.future.result()  # a dead consumer raises its exception here
                raise AssertionError(f"the consumer ended while waiting for {what}")
            assert self.closed is None, f"closed with {self.closed} while waiting for {what}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            await asyncio.sleep(0.005)

    async def reply_to(self, frame_id: str) -> dict:
        def found():
            return next((r for r in self.replies if r.get("id") == frame_id), None)

        return await self.until(found, f"an answer to {frame_id}")


class FuzzedRoom:
    """alice hosts a public room; bob listens politely; carol and a visitor fuzz it."""

    def __init__(self, loop, room, people, targets) -> None:
        self.loop, self.room, self.people, self.targets = loop, room, people, targets
        self.listeners: dict[str, Listener] = {}
        self.frames_sent = 0
        self.checks = 0

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    async def open(self, who: str) -> Listener:
        user = self.people.get(who)
        session_key = None
        if who == "visitor":
            session_key = await database_sync_to_async(anonymous_session)()
        headers = await database_sync_to_async(headers_of)(user, session_key)
        socket = Socket(f"/ws/rooms/{self.room.pk}/", headers)
        connected, code = await socket.connect()
        assert connected, code
        listener = Listener(socket)
        await listener.until(lambda: any(r["type"] == "snapshot" for r in listener.replies),
                             "the snapshot")  # fmt: skip
        listener.replies.clear()
        self.listeners[who] = listener
        return listener

    async def play(self, who: str, batch: list[tuple[str, str | bytes]]) -> None:
        fuzzer = self.listeners[who]
        fuzzer.replies.clear()
        for kind, payload in batch:
            await fuzzer.socket.send_input({"type": "websocket.receive", kind: payload})
        self.frames_sent += len(batch)
        await fuzzer.until(lambda: len(fuzzer.replies) >= len(batch), f"{len(batch)} answers")
        await asyncio.sleep(0.02)
        fuzzer.drain()
        assert len(fuzzer.replies) == len(batch), "a frame got more than one answer"
        for reply in fuzzer.replies:
            if reply["type"] == "error":
                assert reply["code"] != protocol.INTERNAL, reply
                assert isinstance(reply["code"], str) and reply["code"], reply
                assert isinstance(reply["message"], str) and reply["message"], reply

    async def check_bystanders(self) -> None:
        """bob's answers are right, and he hears the host."""
        self.checks += 1
        n = self.checks
        bob, host = self.listeners["bob"], self.listeners["alice"]
        await bob.socket.send_json({"type": "ping", "id": f"ping-{n}", "t0": float(n)})
        assert (await bob.reply_to(f"ping-{n}"))["t0"] == float(n)
        value = "up" if n % 2 else "down"
        await bob.socket.send_json(
            {
                "type": "thumb",
                "id": f"thumb-{n}",
                "sequence": 0,
                "value": value,
                "event_id": f"e{n}",
            }
        )
        assert await bob.reply_to(f"thumb-{n}") == {
            "type": "ack", "of": "thumb", "sequence": 0, "value": value, "id": f"thumb-{n}"
        }  # fmt: skip
        if n % 5 == 0:  # the host changes something; bob hears it
            seconds = (n // 5) % 2
            await host.socket.send_json(
                {"type": "slow_mode", "id": f"slow-{n}", "seconds": seconds}
            )
            assert (await host.reply_to(f"slow-{n}"))["type"] == "ack"
            await bob.until(
                lambda: any(
                    b["type"] == "state" and b["room"]["slow_mode_s"] == seconds
                    for b in bob.broadcasts[-20:]
                ),
                "the host's change",
            )
            await bob.socket.send_json({"type": "snapshot", "id": f"snap-{n}"})
            snapshot = await bob.reply_to(f"snap-{n}")
            assert snapshot["room"]["id"] == str(self.room.pk)
            assert snapshot["room"]["slow_mode_s"] == seconds
            assert snapshot["you"]["role"] == "participant"

    def bobs_seq_numbers(self) -> list[int]:
        bob = self.listeners["bob"]
        bob.drain()
        return [b["seq"] for b in bob.broadcasts if "seq" in b]


@pytest.fixture
def fuzz_targets(make_room, alice, bob, write_chunk):
    """What valid-but-wrong frames aim at: a proposal on the open ballot, one of a closed
    round, one of another room, one waiting for approval elsewhere; chunks 0 to 11."""
    room = make_room(alice, visibility="public", round_length_s=120, now=timezone.now())
    closed = services.proposal_create(room=room, user=alice, text="old idea")
    services.vote_cast(proposal=closed, user=alice)
    services.round_close(room=room)
    open_one = services.proposal_create(room=room, user=alice, text="add strings")
    elsewhere = make_room(bob, title="Elsewhere", visibility="private", now=timezone.now())
    strangers = services.proposal_create(room=elsewhere, user=bob, text="add flute")
    audience = make_room(
        bob, title="Stream", mode="audience", visibility="public", now=timezone.now()
    )
    waiting = services.proposal_create(room=audience, user=alice, text="add choir")
    for sequence in range(12):  # enough for a keep (10 s at least) to succeed
        services.chunk_record(
            room=room,
            sequence=sequence,
            start_s=float(sequence),
            duration_s=1.0,
            audio=write_chunk(room, sequence, seconds=1.0),
        )
    ids = [closed.pk, open_one.pk, strangers.pk, waiting.pk]
    return room, {"proposal_ids": ids, "sequences": [0, 1, 11, 12]}


@pytest.fixture
def fuzzed_room(transactional_db, fuzz_targets, alice, bob, carol, monkeypatch):
    bucket = protocol.TokenBucket

    def unlimited_bucket():
        return bucket(capacity=10**9, refill_per_s=10**9)

    monkeypatch.setattr(protocol, "TokenBucket", unlimited_bucket)
    room, targets = fuzz_targets
    loop = asyncio.new_event_loop()
    loop_errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    fuzzed = FuzzedRoom(loop, room, {"alice": alice, "bob": bob, "carol": carol}, targets)
    fuzzed.loop_errors = loop_errors
    try:
        for who in ("alice", "bob", "carol", "visitor"):
            fuzzed.run(fuzzed.open(who))
        yield fuzzed
    finally:
        for listener in fuzzed.listeners.values():
            if not listener.socket.future.done():
                with contextlib.suppress(Exception):
                    fuzzed.run(listener.socket.disconnect())
        fuzzed.run(database_sync_to_async(connections.close_all)())
        loop.close()


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # a batch is 50 frames
def test_ten_thousand_bad_frames_answer_with_errors_and_bother_nobody(fuzzed_room, caplog):
    caplog.set_level(logging.ERROR)
    room = fuzzed_room
    started = time.monotonic()

    @settings(
        max_examples=BATCHES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the room's state moves on
        suppress_health_check=list(HealthCheck),
    )
    @given(
        who=st.sampled_from(["carol", "visitor"]),
        batch=st.lists(frames(room.targets), min_size=FRAMES_PER_BATCH[0],
                       max_size=FRAMES_PER_BATCH[1]),
    )  # fmt: skip
    def a_batch_of_bad_frames(who, batch):
        room.run(room.play(who, batch))
        room.run(room.check_bystanders())
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
        assert not room.loop_errors, room.loop_errors

    a_batch_of_bad_frames()

    elapsed = time.monotonic() - started
    print(
        f"\nws fuzz: {room.frames_sent} frames in {BATCHES} batches, {room.checks} bystander "
        f"checks, {elapsed:.1f} s ({room.frames_sent / elapsed:.0f} frames/s)"
    )
    assert room.frames_sent >= FRAMES_WANTED
    seqs = room.bobs_seq_numbers()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "bob missed a broadcast"
    # The fuzzers are still connected: nothing they sent was worth a disconnect.
    for who in ("carol", "visitor"):
        room.listeners[who].drain()
        assert room.listeners[who].closed is None
