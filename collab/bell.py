"""The conductor's doorbell: rung when something it should act on at once has happened.

The conductor ticks every quarter second, and between ticks it waits on this bell (a key in
the generation store: a Redis list in service mode, an event in one process). A worker that
has stored a batch of chunks rings it, and so does a change of a room's steering, so the
results are collected, and remakes asked for, within milliseconds instead of at the next tick:
the difference between a remade chunk arriving in time to be played and arriving too late.
"""

from __future__ import annotations

import logging

from generation import tasks as generation_tasks

logger = logging.getLogger(__name__)

CONDUCTOR = "bell:conductor"


def ring_conductor() -> None:
    """Wake the conductor's loop. Never fails the caller: without a ring, the next tick comes
    on the clock anyway."""
    try:
        generation_tasks.store().ring(CONDUCTOR)
    except Exception:
        logger.warning("ringing the conductor failed", exc_info=True)
