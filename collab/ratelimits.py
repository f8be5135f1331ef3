"""The rooms' rate-limit domains, registered into webapp.ratelimit.RULES when the app loads.

Rules are (window seconds, requests in that window), keyed by participant (``user:<id>`` or
``anon:<session>``). They bound abuse; the room's own gates (slow mode, who may propose) are the
host's tools and are checked separately.
"""

from __future__ import annotations

from webapp.ratelimit import RULES

ROOM_RULES: dict[str, tuple[tuple[int, int], ...]] = {
    "room_create": ((60, 5), (3600, 30)),
    "room_propose": ((10, 3), (60, 12), (3600, 240)),
    # A vote may be changed, but a client that sends several a second is a script.
    "room_vote": ((1, 4), (60, 120)),
    "room_keep": ((60, 5), (3600, 60)),
}


def register_rate_limits() -> None:
    """Add the rooms' domains; a domain webapp.ratelimit already defines keeps its own rules."""
    for domain, rules in ROOM_RULES.items():
        RULES.setdefault(domain, rules)
