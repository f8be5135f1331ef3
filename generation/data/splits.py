"""Train/valid/test assignment by source piece.

A piece's split is a pure function of its ``piece_id`` (not of the build seed, the clip or the
order of rendering), so every clip and every re-rendering of a piece lands in the same split, and
a piece held out for testing stays held out in every corpus ever built.
"""

from __future__ import annotations

import hashlib

SPLITS: tuple[tuple[str, float], ...] = (("train", 0.90), ("valid", 0.05), ("test", 0.05))
"""Split names with the share of pieces each receives."""


def split_for(piece_id: str) -> str:
    """The split of a piece: a SHA-256 of its id, read as a number in [0, 1)."""
    digest = hashlib.sha256(piece_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, share in SPLITS:
        edge += share
        if position < edge:
            return name
    return SPLITS[-1][0]
