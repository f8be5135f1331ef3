"""Room chunks and proposal previews as targets of the feedback table (webapp.feedback): a
listener's thumb, play or skip on what the room played, with the provenance the server holds."""

from __future__ import annotations

from collections.abc import Callable

from collab.models import Audition, Chunk, Room
from collab.selectors import room_can_view
from webapp.feedback.models import FeedbackEvent
from webapp.feedback.services import Target, register_target


def _ids(values: list[str]) -> dict[str, int]:
    return {v: int(v) for v in values if v.isdigit() and len(v) <= 18}


def _seed(provenance: dict, room: Room) -> int | None:
    seed = (provenance or {}).get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else room.seed


def _resolver(model, describe: Callable[[Chunk | Audition], dict]):
    """Resolve ids of `model` rows (each with a room and a provenance) to feedback targets, for
    callers who may see their room; `describe` adds what identifies the row to the conditioning."""

    def resolve(ids: list[str], user, share_tokens: dict[str, str | None]) -> dict:
        wanted = _ids(ids)
        rows = model.objects.select_related("room").in_bulk(set(wanted.values()))
        found = {}
        for original, pk in wanted.items():
            row = rows.get(pk)
            if row is None or not room_can_view(
                row.room, user, share_token=share_tokens.get(original)
            ):
                continue
            provenance = row.provenance or {}
            found[original] = Target(
                model_version=str(provenance.get("model_version", "")),
                seed=_seed(provenance, row.room),
                conditioning={"room": str(row.room_id), **describe(row)},
            )
        return found

    return resolve


resolve_chunks = _resolver(
    Chunk, lambda c: {"sequence": c.sequence, "revision": c.revision, "steering": c.steering}
)
resolve_auditions = _resolver(
    Audition, lambda a: {"proposal": a.proposal_id, "steering": a.steering}
)


def register_feedback_targets() -> None:
    register_target(FeedbackEvent.TargetType.CHUNK, resolve_chunks)
    register_target(FeedbackEvent.TargetType.AUDITION, resolve_auditions)
