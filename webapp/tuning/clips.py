"""Items' clips for the critic and DPO, read from where the service keeps them.

Songs: the codes kept at generation (``songs/<id>/codes.npy`` beside the master, written by
song_render through :func:`song_codes_store`), else the master encoded again. Room chunks and
previews: their audio encoded (the room generator does not keep codes yet). Conditions come from
what the item was made under (generation/tuning/clips.py).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from collab.models import Audition, Chunk
from generation.steering import Controls, Steering
from generation.tuning.clips import ClipMaker
from generation.tuning.dpo import Clip
from generation.tuning.labels import Item
from webapp.songs import audio
from webapp.songs.models import Song
from webapp.tuning.selectors import is_uuid

logger = logging.getLogger(__name__)


def song_codes_name(song_id) -> str:
    return f"songs/{song_id}/codes.npy"


def song_codes_store(*, song: Song, codes: np.ndarray) -> None:
    """Keep the codes a song was generated from, beside its master (removed with the song)."""
    name = song_codes_name(song.pk)
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(codes, dtype=np.int16))
    if default_storage.exists(name):
        default_storage.delete(name)
    default_storage.save(name, ContentFile(buffer.getvalue()))


def song_codes_load(song: Song) -> np.ndarray | None:
    name = song_codes_name(song.pk)
    if not default_storage.exists(name):
        return None
    with default_storage.open(name, "rb") as file:
        return np.load(io.BytesIO(file.read()))


def song_steering(song: Song) -> Steering:
    """What a song was made under: its prompt (with style tags) and the controls used."""
    provenance = song.provenance or {}
    prompt = provenance.get("prompt") or ", ".join([song.prompt, *song.style_tags]).strip(", ")
    controls = Controls.from_dict(provenance.get("controls") or song.controls or {})
    return Steering(((prompt, 1.0),) if prompt else (), controls)


def _audio_codes(field, maker: ClipMaker) -> np.ndarray:
    with field.open("rb") as file:
        pcm, sample_rate = audio.decode(file.read())
    return maker.codes_of_audio(pcm, sample_rate).numpy()


def item_clips(items: Iterable[Item], maker: ClipMaker) -> dict[Item, Clip]:
    """Clips of the items that can still be had (deleted ones, and ones without audio, are
    left out and logged)."""
    wanted: dict[str, list[str]] = {}
    for item in items:
        wanted.setdefault(item.target_type, []).append(item.target_id)
    out: dict[Item, Clip] = {}
    song_ids = [i for i in wanted.get("song", []) if is_uuid(i)]
    songs = Song.objects.filter(pk__in=song_ids, status=Song.Status.READY)
    for song in songs:
        try:
            codes = song_codes_load(song)
            if codes is None:
                codes = _audio_codes(song.audio, maker)
            out[Item("song", str(song.pk))] = maker.clip(codes, song_steering(song))
        except Exception:  # a missing file costs that item only
            logger.warning("no clip for song %s", song.pk, exc_info=True)
    for target_type, model in (("chunk", Chunk), ("audition", Audition)):
        pks = [int(i) for i in wanted.get(target_type, []) if i.isdigit()]
        for row in model.objects.filter(pk__in=pks).exclude(audio=""):
            try:
                codes = _audio_codes(row.audio, maker)
                steering = Steering.from_dict(row.steering or {})
                out[Item(target_type, str(row.pk))] = maker.clip(codes, steering)
            except Exception:
                logger.warning("no clip for %s %s", target_type, row.pk, exc_info=True)
    return out
