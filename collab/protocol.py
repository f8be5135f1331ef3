"""The room websocket protocol, version 1, as pure functions over plain data (docs/protocol.md).

No Django, Redis or asyncio here: the consumer (collab.consumers) hands a frame's text to
:func:`parse_frame` and gets back a :class:`ClientMessage` with its fields checked for type and
shape, or a :class:`ProtocolError` to answer with :func:`error_frame`. Whether an action is
allowed (gates, limits, who is the host) is the services' business, not the protocol's: this
module only says what a well-formed frame looks like.

Also here, because they are plain arithmetic: the per-connection token bucket, and the builders
of the few frames that are not about room state (error, pong, noop).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

VERSION = "1"
MAX_FRAME_BYTES = 4096  # a larger frame is answered with an error, not a disconnect
MAX_ID_CHARS = 64
MAX_TEXT_CHARS = 1000  # services hold the real limits (a proposal is 200); this bounds the work

# Per connection: a bucket of 20 messages, refilled at 2 a second (20 per 10 s sustained).
BUCKET_CAPACITY = 20
BUCKET_REFILL_PER_S = 2.0
# A connection that keeps sending past its limit is closed after this many refused frames in a
# row: ten times the bucket, which no client that reads its error frames gets near.
FLOOD_CLOSE_AFTER = 200

# Close codes (4000-4999 are the application's).
CLOSE_NOT_FOUND = 4404  # no such room, or not one this connection may see
CLOSE_FLOODING = 4429
# The account is banned or suspended (an `error` frame `banned` / `suspended` comes first). The
# song progress socket (ws/songs/<id>/) closes with it too.
CLOSE_SANCTIONED = 4403
CLOSE_KICKED = 4410  # the host kicked this participant (`error` `kicked` first, with `until`)
CLOSE_MODERATED = 4451  # moderators closed or hid the room (a `moderated` frame says why)
# The standard "service restart": the server lost its shared state (Redis restarted), so the
# connection's seq and presence mean nothing any more. Reconnect and start from the snapshot.
CLOSE_RESYNC = 1012

# Error codes of the protocol itself; services add their own (ServiceError.code: "paused",
# "slow_mode", "duplicate", "round_closed", "login_required", "forbidden", "not_found", ...).
BAD_JSON = "bad_json"
BAD_FRAME = "bad_frame"
TOO_LARGE = "too_large"
UNKNOWN_TYPE = "unknown_type"
INVALID = "invalid"
RATE_LIMITED = "rate_limited"
INTERNAL = "internal"
# The prompt filter (webapp/safety) refused a text: a slur, a real artist's name, too much
# swearing. Raised by the services (proposals, room titles); named here for clients.
PROMPT_REFUSED = "prompt_refused"

THUMB_VALUES = ("up", "down")


class ProtocolError(ValueError):
    """A frame the protocol cannot take; answered with an error frame carrying `code`."""

    def __init__(
        self, code: str, message: str, *, id: str | int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id
        self.field = field


@dataclass(frozen=True)
class ClientMessage:
    """A client frame, checked: its type, the client's id (echoed in the reply) and fields."""

    type: str
    id: str | int | None = None
    fields: Mapping = field(default_factory=dict)

    def get(self, name: str, default=None):
        return self.fields.get(name, default)


# --- Field checks: each returns the clean value or raises ValueError with a message -------------


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a finite number")
    try:
        number = float(value)  # an integer of hundreds of digits overflows here
    except OverflowError:
        raise ValueError("must be a finite number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _whole(value) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise ValueError("must be a whole number from 0")
    return value


def _positive_whole(value) -> int:
    number = _whole(value)
    if number < 1:
        raise ValueError("must be a whole number from 1")
    return number


def _text(value) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"must be at most {MAX_TEXT_CHARS} characters")
    return value


def _short_text(value) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise ValueError(f"must be a string of 1 to {MAX_ID_CHARS} characters")
    return value


def _object(value) -> dict:
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    return value


def _thumb(value) -> str:
    if value not in THUMB_VALUES:
        raise ValueError('must be "up" or "down"')
    return value


def _boolean(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


Check = Callable[[object], object]
REQUIRED, OPTIONAL = True, False

# type -> {field: (check, required)}. Fields not listed are ignored, so that a newer client can
# talk to an older server of the same version.
PARTICIPANT_MESSAGES: dict[str, dict[str, tuple[Check, bool]]] = {
    "join": {},
    "snapshot": {},
    "ping": {"t0": (_number, REQUIRED)},
    # A prompt (text) or a control nudge (control); the services say which is missing or why.
    "propose": {"text": (_text, OPTIONAL), "control": (_object, OPTIONAL)},
    "vote": {"proposal_id": (_positive_whole, REQUIRED)},
    "thumb": {
        "sequence": (_whole, REQUIRED),
        "value": (_thumb, REQUIRED),
        "event_id": (_short_text, OPTIONAL),  # makes a retried thumb count once
    },
    "keep": {
        "seconds": (_number, REQUIRED),
        "title": (_text, OPTIONAL),
        "visibility": (_short_text, OPTIONAL),
    },
}
HOST_MESSAGES: dict[str, dict[str, tuple[Check, bool]]] = {
    "pause": {},
    "resume": {},
    "end": {},
    "hard_cut": {},
    # Without a proposal: close the round now. With one: the same as veto.
    "skip": {"proposal_id": (_positive_whole, OPTIONAL)},
    "veto": {"proposal_id": (_positive_whole, REQUIRED)},
    "approve": {"proposal_id": (_positive_whole, REQUIRED)},
    "reject": {"proposal_id": (_positive_whole, REQUIRED)},
    "slow_mode": {"seconds": (_whole, REQUIRED)},
    # Audience mode (true): proposals wait for the host's approval; friends mode (false): not.
    "approval": {"on": (_boolean, REQUIRED)},
    # Whom: the author of one of the room's proposals (`proposal_id`: how a host points at a
    # signed-out participant) or an account (`username`). Exactly one of the two.
    "mute": {
        "proposal_id": (_positive_whole, OPTIONAL),
        "username": (_short_text, OPTIONAL),
        "minutes": (_positive_whole, OPTIONAL),  # services: at most a day
        "reason": (_text, OPTIONAL),
    },
    "unmute": {"proposal_id": (_positive_whole, OPTIONAL), "username": (_short_text, OPTIONAL)},
    "kick": {
        "proposal_id": (_positive_whole, OPTIONAL),
        "username": (_short_text, OPTIONAL),
        "minutes": (_positive_whole, OPTIONAL),  # services: at most a day
        "reason": (_text, OPTIONAL),
    },
}
MESSAGES = {**PARTICIPANT_MESSAGES, **HOST_MESSAGES}
HOST_TYPES = frozenset(HOST_MESSAGES)

SERVER_TYPES = (
    "snapshot",
    "ack",
    "pong",
    "error",
    "keep_done",
    # Broadcasts: each carries the room's next `seq`.
    "proposal",
    "tally",
    "round_result",
    "steering",
    "chunk",
    "presence",
    "state",
    "noop",
    "moderated",  # moderators closed, removed or hid the room: the socket closes next
    # To one participant only, no seq: the host muted or unmuted them.
    "notice",
)


def _message_id(frame: dict):
    """The client's id for its frame (a string or a whole number), or None."""
    value = frame.get("id")
    if value is None:
        return None
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return value
    raise ProtocolError(
        INVALID,
        f"id must be a string of 1 to {MAX_ID_CHARS} characters or a whole number.",
        field="id",
    )


def parse_frame(text: str | None, data: bytes | None = None) -> ClientMessage:
    """A client frame (the websocket message's text, or its bytes) as a checked message."""
    if text is None:
        raise ProtocolError(BAD_FRAME, "Send text frames of JSON; binary frames are not used.")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(
            TOO_LARGE, f"Frames are at most {MAX_FRAME_BYTES} bytes (this one has {size})."
        )
    try:
        frame = json.loads(text)
    except ValueError:
        raise ProtocolError(BAD_JSON, "That frame is not valid JSON.") from None
    except RecursionError:  # "[[[[...", a thousand deep, fits under the size cap
        raise ProtocolError(BAD_JSON, "That frame is nested too deeply.") from None
    if not isinstance(frame, dict):
        raise ProtocolError(BAD_FRAME, 'A frame is a JSON object with a "type".')
    message_id = _message_id(frame)
    kind = frame.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError(BAD_FRAME, 'A frame needs a "type".', id=message_id, field="type")
    spec = MESSAGES.get(kind)
    if spec is None:
        raise ProtocolError(
            UNKNOWN_TYPE, f"Unknown message type {kind[:40]!r}.", id=message_id, field="type"
        )
    fields = {}
    for name, (check, required) in spec.items():
        value = frame.get(name)
        if value is None:
            if required:
                raise ProtocolError(INVALID, f"{kind} needs {name}.", id=message_id, field=name)
            continue
        try:
            fields[name] = check(value)
        except ValueError as exc:
            raise ProtocolError(
                INVALID, f"{kind}: {name} {exc}.", id=message_id, field=name
            ) from None
    return ClientMessage(type=kind, id=message_id, fields=MappingProxyType(fields))


# --- Frames that are not about the room's state -----------------------------------------------


def reply(frame: dict, message_id: str | int | None) -> dict:
    """`frame` as the answer to a client frame: with the client's id, when it sent one."""
    return frame if message_id is None else {**frame, "id": message_id}


def error_frame(
    code: str,
    message: str,
    *,
    id: str | int | None = None,
    field: str | None = None,
    retry_after_s: float | None = None,
) -> dict:
    frame: dict = {"type": "error", "code": code, "message": message}
    if field is not None:
        frame["field"] = field
    if retry_after_s is not None:
        frame["retry_after_s"] = round(retry_after_s, 3)
    return reply(frame, id)


def pong_frame(*, t0: float, t1: float, t2: float, id: str | int | None = None) -> dict:
    """The answer to ping: the client's t0, the server's receive time t1 and send time t2 (unix
    seconds). The client's clock offset is ((t1 - t0) + (t2 - t3)) / 2 with t3 its own receive
    time; the sample with the smallest round trip (t3 - t0) - (t2 - t1) is the best."""
    return reply({"type": "pong", "t0": t0, "t1": t1, "t2": t2}, id)


def kicked_frame(*, until: float, now: float) -> dict:
    """What a participant the host removed gets before the socket closes (CLOSE_KICKED), and
    again if they come back before `until` (unix seconds)."""
    minutes = max(1, math.ceil((until - now) / 60))
    return {
        **error_frame(
            "kicked", f"The host removed you from this room; you may come back in {minutes} min."
        ),
        "until": round(until, 3),
    }


def noop_frame(seq: int) -> dict:
    """What a listener gets in place of a broadcast meant for the host (a proposal waiting for
    approval), so that its seq numbers stay contiguous."""
    return {"type": "noop", "seq": seq}


# --- Rate limit -------------------------------------------------------------------------------


@dataclass
class TokenBucket:
    """A per-connection limit: `capacity` frames at once, refilled at `refill_per_s`.

    Time is passed in (monotonic seconds), so the arithmetic is testable without a clock."""

    capacity: float = BUCKET_CAPACITY
    refill_per_s: float = BUCKET_REFILL_PER_S
    tokens: float | None = None
    updated: float | None = None

    def _refill(self, now: float) -> None:
        if self.tokens is None or self.updated is None:
            self.tokens, self.updated = float(self.capacity), now
            return
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.capacity), self.tokens + elapsed * self.refill_per_s)
        self.updated = now

    def take(self, now: float) -> bool:
        """Spend a token for one frame if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self, now: float) -> float:
        """Seconds until the next token."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.refill_per_s)
