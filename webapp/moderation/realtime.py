"""Reaching a person's open websockets, wherever they are: the per-account channel-layer group.

Every websocket of a signed-in account (a room, ws/rooms/<id>/, and a song's progress,
ws/songs/<id>/) joins the group `user.<id>` when it connects, in whatever web process it landed.
A sanction sends one event to that group on commit; each socket answers it with an error frame
(code `banned` or `suspended`) and closes with CLOSE_SANCTIONED. One PUBLISH in service mode
(Redis pub/sub), a queue put per socket in the embedded default.
"""

from __future__ import annotations

import logging

from collab.protocol import CLOSE_SANCTIONED
from webapp.moderation.models import Sanction

logger = logging.getLogger(__name__)

__all__ = ["CLOSE_SANCTIONED", "sanction_frame", "user_group", "user_sanctioned"]

SANCTIONED_EVENT = "user.sanctioned"  # handled by the consumers' `user_sanctioned`


def user_group(user_id) -> str:
    return f"user.{user_id}"


def sanction_frame(sanction: Sanction) -> dict:
    """The error frame a sanctioned account's sockets get before they close."""
    code = "banned" if sanction.kind == Sanction.Kind.BAN else "suspended"
    return {"type": "error", "code": code, "message": sanction.describe()}


def user_sanctioned(*, user_id, sanction: Sanction) -> None:
    """Close every open websocket of the account (call on commit). A failure is logged, not
    raised: the sanction stands, and every new connection and request is refused anyway."""
    from collab.broadcast import deliver

    event = {"type": SANCTIONED_EVENT, "frame": sanction_frame(sanction)}
    try:
        deliver(user_group(user_id), event)
    except Exception:
        logger.warning("could not close the websockets of account %s", user_id, exc_info=True)
