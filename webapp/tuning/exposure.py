"""Exposure by design: what a new song request is served, chosen so that feedback can teach.

* **Model version.** Each request is assigned a registered version (webapp/tuning/selectors.py:
  the canary for its share of requests by a fixed hash of the request's id, else the promoted
  one). Songs record it in ``Song.model_version``; every feedback event on them carries it.
* **Two candidates.** A share of requests (``TUNING_AB_SHARE``, by a hash of the id) is answered
  with two songs: the same prompt and parameters from the same version, two seeds. They share
  the choice set ``request:<id of the first>``, and which one takes slot 0 is a coin toss: each
  slot's propensity is 0.5, so a listener's bias for the first slot cancels over requests. A
  listener who hears both gives the label builder a pair from one choice set and one version:
  exactly what DPO may train on. The second song is the service's choice: it is not counted in
  the owner's quota. Requests with a reference clip (Influence) get one song.

The feedback service copies the choice set and slot from the song into every event on it (the
server's record, never the client's word), and the propensity into the event's conditioning.
"""

from __future__ import annotations

import secrets

from django.conf import settings

from generation.tuning.canary import assigned
from webapp.songs.models import Song
from webapp.tuning.selectors import version_for_unit

PROPENSITY = 0.5  # two slots, a fair coin

COPIED_FIELDS = (
    "owner",
    "title",
    "prompt",
    "duration_s",
    "guidance",
    "style_tags",
    "controls",
    "expand_prompt",
    "visibility",
    "model_version",
)


def request_gets_two(request_id: str) -> bool:
    """Whether a song request is answered with two candidates (a fixed hash of its id)."""
    return assigned(request_id, settings.TUNING_AB_SHARE, "two-candidates")


def song_expose(*, song: Song) -> list[Song]:
    """Assign a new song request its model version and, for a share of requests, a second
    candidate. The caller holds the request's transaction; returns the songs to generate,
    the request's own song first."""
    version = version_for_unit(unit_id=str(song.pk))
    if version is not None:
        song.model_version = version.name
    songs = [song]
    # A request with a reference clip gets one song: the clip is the owner's, kept with one song.
    if request_gets_two(str(song.pk)) and not song.reference:
        max_seed = 2**31 - 1
        other = Song.objects.create(
            **{name: getattr(song, name) for name in COPIED_FIELDS},
            seed=(song.seed + 1 + secrets.randbelow(max_seed)) % (max_seed + 1),
        )
        order = [song, other] if secrets.randbelow(2) == 0 else [other, song]
        candidates = [str(s.pk) for s in order]
        for slot, candidate in enumerate(order):
            candidate.exposure = {
                "choice_set": f"request:{song.pk}",
                "slot": slot,
                "propensity": PROPENSITY,
                "candidates": candidates,
            }
        other.save(update_fields=["exposure", "updated_at"])
        songs.append(other)
    if version is not None or song.exposure:
        song.save(update_fields=["model_version", "exposure", "updated_at"])
    return songs
