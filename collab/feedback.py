"""Room chunks and proposal previews as targets of the feedback table (webapp.feedback): a
listener's thumb, play or skip on what the room played, with the provenance the server holds."""

from __future__ import annotations

from collab.models import Audition, Chunk, Room
from collab.selectors import room_can_view
from webapp.feedback.models import FeedbackEvent
from webapp.feedback.services import Target, register_target


def _ids(values: list[str]) -> dict[str, int]:
    return {v: int(v) for v in values if v.isdigit() and len(v) <= 18}


def _seed(provenance: dict, room: Room) -> int | None:
    seed = (provenance or {}).get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else room.seed


def resolve_chunks(ids: list[str], user, share_tokens: dict[str, str | None]) -> dict:
    wanted = _ids(ids)
    chunks = Chunk.objects.select_related("room").in_bulk(set(wanted.values()))
    found = {}
    for original, pk in wanted.items():
        chunk = chunks.get(pk)
        if chunk is None or not room_can_view(
            chunk.room, user, share_token=share_tokens.get(original)
        ):
            continue
        found[original] = Target(
            model_version=str((chunk.provenance or {}).get("model_version", "")),
            seed=_seed(chunk.provenance, chunk.room),
            conditioning={
                "room": str(chunk.room_id),
                "sequence": chunk.sequence,
                "revision": chunk.revision,
                "steering": chunk.steering,
            },
        )
    return found


def resolve_auditions(ids: list[str], user, share_tokens: dict[str, str | None]) -> dict:
    wanted = _ids(ids)
    auditions = Audition.objects.select_related("room").in_bulk(set(wanted.values()))
    found = {}
    for original, pk in wanted.items():
        audition = auditions.get(pk)
        if audition is None or not room_can_view(
            audition.room, user, share_token=share_tokens.get(original)
        ):
            continue
        found[original] = Target(
            model_version=str((audition.provenance or {}).get("model_version", "")),
            seed=_seed(audition.provenance, audition.room),
            conditioning={
                "room": str(audition.room_id),
                "proposal": audition.proposal_id,
                "steering": audition.steering,
            },
        )
    return found


def register_feedback_targets() -> None:
    register_target(FeedbackEvent.TargetType.CHUNK, resolve_chunks)
    register_target(FeedbackEvent.TargetType.AUDITION, resolve_auditions)
