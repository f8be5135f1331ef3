"""Writes on songs. Views, serializers and tasks call these; nothing else changes a Song.

Every change that clients hear about is announced on commit (`transaction.on_commit`), so nobody
hears of a change that rolled back.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from generation.interface import (
    MAX_SONG_SECONDS,
    MIN_SONG_SECONDS,
    SongRequest,
    get_song_generator,
)
from generation.steering import Controls
from webapp.errors import NotFound, ServiceError
from webapp.jobs import enqueue
from webapp.public_cache import public_content_changed
from webapp.ratelimit import ratelimit_enforce
from webapp.safety.checks import text_check_allowed, texts_check_allowed
from webapp.safety.quotas import quota_check, quota_consume
from webapp.songs import audio, uploads
from webapp.songs.models import (
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_STYLE_TAG_CHARS,
    MAX_STYLE_TAGS,
    MAX_TITLE_CHARS,
    MIN_GUIDANCE,
    PEAKS_PER_SONG,
    Song,
    SongLike,
    new_share_token,
)

logger = logging.getLogger(__name__)

MAX_SEED = 2**31 - 1
MAX_ATTEMPTS = 3
STALL_GENERATING_S = 120  # no progress for this long: the worker died (progress comes every 0.5 s)
STALL_QUEUED_S = 15 * 60  # queued this long: the broker lost the message (Redis restarted)
PROGRESS_MIN_STEP = 0.02  # write progress at most every 2 % ...
PROGRESS_MIN_INTERVAL_S = 0.5  # ... or every half second, whichever is rarer


# --- Checks (pure: they raise ServiceError and change nothing) -------------------------------


def song_clean_prompt(prompt: str) -> str:
    prompt = " ".join(prompt.split())
    if not prompt:
        raise ServiceError("Write a prompt: what should the song sound like?", field="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ServiceError(
            f"The prompt is too long ({len(prompt)} characters; at most {MAX_PROMPT_CHARS}).",
            field="prompt",
        )
    text_check_allowed(prompt, field="prompt")
    return prompt


def song_clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise ServiceError("A song needs a title.", field="title")
    if len(title) > MAX_TITLE_CHARS:
        raise ServiceError(f"Titles are at most {MAX_TITLE_CHARS} characters.", field="title")
    text_check_allowed(title, field="title")
    return title


def song_clean_style_tags(tags: list[str]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags:
        tag = " ".join(str(tag).split()).lower()
        if not tag:
            continue
        if len(tag) > MAX_STYLE_TAG_CHARS:
            raise ServiceError(
                f"Style tags are at most {MAX_STYLE_TAG_CHARS} characters ({tag[:40]!r}).",
                field="style_tags",
            )
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_STYLE_TAGS:
        raise ServiceError(f"At most {MAX_STYLE_TAGS} style tags.", field="style_tags")
    texts_check_allowed(cleaned, field="style_tags")
    return cleaned


def song_check_parameters(*, duration_s: float, guidance: float | None, seed: int | None) -> None:
    if not MIN_SONG_SECONDS <= duration_s <= MAX_SONG_SECONDS:
        raise ServiceError(
            f"Duration must be between {MIN_SONG_SECONDS:.0f} s and {MAX_SONG_SECONDS:.0f} s "
            f"(10 minutes); got {duration_s:g} s.",
            field="duration_s",
        )
    if guidance is not None and not MIN_GUIDANCE <= guidance <= MAX_GUIDANCE:
        raise ServiceError(
            f"Guidance must be between {MIN_GUIDANCE:g} and {MAX_GUIDANCE:g}.", field="guidance"
        )
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ServiceError(f"Seed must be between 0 and {MAX_SEED}.", field="seed")


MAX_CONTROL_INSTRUMENTS = 8


def song_clean_controls(controls: dict | None) -> dict:
    """Controls as generation.steering.Controls accepts them, or a ServiceError naming the
    problem. Unknown fields are refused (a typo must not silently do nothing)."""
    controls = dict(controls or {})
    known = {f.name for f in dataclasses.fields(Controls)}
    unknown = sorted(set(controls) - known)
    if unknown:
        raise ServiceError(
            f"Unknown control {unknown[0]!r}; known: {', '.join(sorted(known))}.", field="controls"
        )
    for name in ("instruments_in", "instruments_out"):
        value = controls.get(name, [])
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ServiceError(f"{name} must be a list of instrument names.", field="controls")
        if len(value) > MAX_CONTROL_INSTRUMENTS:
            raise ServiceError(
                f"At most {MAX_CONTROL_INSTRUMENTS} instruments in {name}.", field="controls"
            )
    for name in ("bpm", "energy", "brightness"):
        value = controls.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ServiceError(f"{name} must be a number.", field="controls")
    for name in ("key", "mode", "section"):
        value = controls.get(name)
        if value is not None and not isinstance(value, str):
            raise ServiceError(f"{name} must be a string.", field="controls")
    try:
        return Controls.from_dict(controls).as_dict()
    except (TypeError, ValueError) as exc:
        raise ServiceError(f"Bad controls: {exc}.", field="controls") from exc


def song_title_from_prompt(prompt: str) -> str:
    words = prompt.split()
    title = " ".join(words[:8])
    return (title[: MAX_TITLE_CHARS - 1] + "…") if len(title) > MAX_TITLE_CHARS else title


# --- Writes ---------------------------------------------------------------------------------


def song_create(
    *,
    owner,
    prompt: str,
    duration_s: float = 30.0,
    seed: int | None = None,
    guidance: float | None = None,
    style_tags: list[str] | None = None,
    controls: dict | None = None,
    expand_prompt: bool = True,
    title: str | None = None,
    visibility: str = Song.Visibility.PRIVATE,
    reference=None,
) -> Song:
    """Create a queued song and enqueue its generation on the `gpu` queue (after commit).

    `reference` is an uploaded clip ("Influence", webapp/songs/uploads.py), validated here and
    stored with the song. The song's seconds come out of the owner's daily quota
    (webapp/safety/quotas.py) in the same transaction that creates it."""
    from webapp.songs.tasks import song_generate
    from webapp.tuning.exposure import song_expose

    ratelimit_enforce(domain="song_create", key=f"user:{owner.pk}")
    prompt = song_clean_prompt(prompt)
    song_check_parameters(duration_s=duration_s, guidance=guidance, seed=seed)
    tags = song_clean_style_tags(style_tags or [])
    clean_controls = song_clean_controls(controls)
    title = song_clean_title(title) if title else song_title_from_prompt(prompt)
    if visibility not in Song.Visibility.values:
        raise ServiceError(f"Unknown visibility {visibility!r}.", field="visibility")
    quota_check(user=owner, seconds=float(duration_s))  # before the upload is decoded
    prepared = uploads.reference_prepare(reference) if reference is not None else None

    stored = None
    try:
        with transaction.atomic():
            quota_consume(user=owner, seconds=float(duration_s))
            song = Song.objects.create(
                owner=owner,
                title=title,
                prompt=prompt,
                duration_s=float(duration_s),
                seed=seed if seed is not None else secrets.randbelow(MAX_SEED + 1),
                guidance=None if guidance is None else float(guidance),
                style_tags=tags,
                controls=clean_controls,
                expand_prompt=bool(expand_prompt),
                visibility=visibility,
                model_version=settings.GENERATION_BACKEND,
            )
            if prepared is not None:
                stored = uploads.reference_store(song=song, prepared=prepared)
                song.save(update_fields=["reference", "reference_info"])
            # its model version, and for some requests a second candidate (webapp/tuning)
            candidates = song_expose(song=song)
    except BaseException:
        if stored:  # the row rolled back: so does its file
            song.reference.storage.delete(stored)
        raise
    finally:
        if prepared is not None:
            prepared.cleanup()
    for candidate in candidates:
        enqueue(song_generate, str(candidate.id))
    return song


def song_update(*, song: Song, title: str | None = None, visibility: str | None = None) -> Song:
    """Rename a song and/or change who can see it. The caller checks the owner may do this."""
    fields = []
    if title is not None:
        song.title = song_clean_title(title)
        fields.append("title")
    if visibility is not None:
        if visibility not in Song.Visibility.values:
            raise ServiceError(f"Unknown visibility {visibility!r}.", field="visibility")
        song.visibility = visibility
        fields.append("visibility")
    if fields:
        song.save(update_fields=[*fields, "updated_at"])
    return song


def song_rotate_share_token(*, song: Song) -> Song:
    """Issue a new share link; the old one stops working at once."""
    song.share_token = new_share_token()
    song.save(update_fields=["share_token", "updated_at"])
    return song


def song_delete(*, song: Song) -> None:
    """Delete the song and, once that commits, its audio files and reference clip."""
    folder = f"songs/{song.id}"
    storage = song.audio.storage
    reference = song.reference.name
    song.delete()

    def remove_files() -> None:
        if reference:
            song.reference.storage.delete(reference)
        if not storage.exists(folder):
            return
        for name in storage.listdir(folder)[1]:
            storage.delete(f"{folder}/{name}")

    transaction.on_commit(remove_files)


def song_thumb(*, song: Song, user, value: int) -> None:
    """Set a user's thumb (+1 or -1) on a song, keeping `like_count` equal to the thumbs up."""
    if value not in (1, -1):
        raise ServiceError("A thumb is up (+1) or down (-1).", field="value")
    with transaction.atomic():
        like, created = SongLike.objects.select_for_update().get_or_create(
            user=user, song=song, defaults={"value": value}
        )
        previous = 0 if created else like.value
        if not created and previous != value:
            like.value = value
            like.save(update_fields=["value", "updated_at"])
        delta = int(value == 1) - int(previous == 1)
        if delta:
            Song.objects.filter(pk=song.pk).update(like_count=F("like_count") + delta)
            transaction.on_commit(public_content_changed)


# --- Generation (called by the `song_generate` task) ---------------------------------------


def _announce(song_id: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(f"song-{song_id}", {"type": "song.progress", **payload})
    except Exception:  # a missed progress event is cosmetic; the row holds the truth
        logger.warning("could not announce progress of song %s", song_id, exc_info=True)


def song_claim_for_generation(*, song_id: str) -> Song | None:
    """Move a queued (or interrupted) song to `generating`; None if there is nothing to do.

    Idempotent: a redelivered task (acks_late after a worker died) picks the song up again, while
    a song that is already ready or failed is left alone.
    """
    with transaction.atomic():
        song = Song.objects.select_for_update().filter(pk=song_id).first()
        if song is None or song.status in (Song.Status.READY, Song.Status.FAILED):
            return None
        song.status = Song.Status.GENERATING
        song.progress = 0.0
        song.attempts += 1
        song.started_at = timezone.now()
        song.save(update_fields=["status", "progress", "attempts", "started_at", "updated_at"])
    _announce(song_id, {"status": song.status, "progress": 0.0})
    return song


def song_store_master(*, song: Song, pcm, sample_rate: int, master: bytes) -> None:
    """Put a FLAC master (encoded from pcm) in storage as the song's audio, with its length and
    waveform peaks. The caller saves the row, in its transaction. Song generation and "keep"
    from a room both store their audio this way."""
    if song.audio:
        song.audio.delete(save=False)
    song.audio.save("master.flac", ContentFile(master), save=False)
    song.sample_rate = sample_rate
    song.audio_duration_s = len(pcm) / sample_rate
    song.peaks = audio.compute_peaks(pcm, PEAKS_PER_SONG)


def song_render(*, song_id: str) -> None:
    """Generate a claimed song's audio, store it with its peaks, and mark it ready (or failed)."""
    song = song_claim_for_generation(song_id=song_id)
    if song is None:
        return
    from webapp.tuning.clips import song_codes_store
    from webapp.tuning.selectors import version_checkpoint

    # the registered model version the song was assigned, or the backend's default model
    generator = get_song_generator(
        settings.GENERATION_BACKEND, version_checkpoint(song.model_version)
    )
    last = {"progress": 0.0, "at": 0.0}

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if fraction < 1.0 and (
            fraction - last["progress"] < PROGRESS_MIN_STEP
            or now - last["at"] < PROGRESS_MIN_INTERVAL_S
        ):
            return
        last.update(progress=fraction, at=now)
        fraction = round(min(max(fraction, 0.0), 0.99), 4)  # 1.0 means stored, not just rendered
        Song.objects.filter(pk=song_id, status=Song.Status.GENERATING).update(
            progress=fraction, updated_at=timezone.now()
        )
        _announce(song_id, {"status": Song.Status.GENERATING, "progress": fraction})

    try:
        with uploads.reference_local_path(song) as reference_path:
            request = SongRequest(
                prompt=song.prompt,
                duration_s=song.duration_s,
                seed=song.seed,
                guidance=song.guidance,
                style_tags=tuple(song.style_tags),
                controls=tuple(sorted((song.controls or {}).items())),
                expand_prompt=song.expand_prompt,
                reference_path=reference_path,
                candidates=settings.SONG_BEST_OF,
                explore_share=settings.TUNING_RANDOM_PICK_SHARE,
            )
            rendered = generator.generate_song(request, progress)
        master = audio.encode(rendered.pcm, rendered.sample_rate, audio.FORMATS["flac"])
    except Exception as exc:
        logger.exception("generation of song %s failed", song_id)
        song_mark_failed(song_id=song_id, error=f"Generation failed: {type(exc).__name__}.")
        return

    with transaction.atomic():
        song = Song.objects.select_for_update().get(pk=song_id)
        song_store_master(
            song=song, pcm=rendered.pcm, sample_rate=rendered.sample_rate, master=master
        )
        if rendered.codes is not None:  # what the tuning loop's critic and DPO read
            song_codes_store(song=song, codes=rendered.codes)
        song.model_version = rendered.model_version
        song.is_placeholder = rendered.is_placeholder
        song.provenance = rendered.provenance
        song.status = Song.Status.READY
        song.progress = 1.0
        song.error = ""
        song.finished_at = timezone.now()
        song.save()
        transaction.on_commit(
            lambda: _announce(song_id, {"status": Song.Status.READY, "progress": 1.0})
        )


def song_mark_failed(*, song_id: str, error: str) -> None:
    Song.objects.filter(pk=song_id).exclude(status=Song.Status.READY).update(
        status=Song.Status.FAILED, error=error[:500], finished_at=timezone.now()
    )
    public_content_changed()
    _announce(song_id, {"status": Song.Status.FAILED, "progress": 0.0, "error": error[:500]})


def songs_requeue_stalled(*, now=None) -> dict[str, int]:
    """Re-enqueue songs whose worker died or whose queue message was lost; fail them after
    MAX_ATTEMPTS. Safe to run from several beats at once: claiming a song is idempotent."""
    from webapp.songs.tasks import song_generate

    now = now or timezone.now()
    stalled = Song.objects.filter(
        Q(status=Song.Status.GENERATING, updated_at__lt=now - timedelta(seconds=STALL_GENERATING_S))
        | Q(status=Song.Status.QUEUED, updated_at__lt=now - timedelta(seconds=STALL_QUEUED_S))
    )
    requeued = failed = 0
    for song_id, attempts in stalled.values_list("id", "attempts"):
        if attempts >= MAX_ATTEMPTS:
            song_mark_failed(song_id=str(song_id), error="Generation kept failing; try again.")
            failed += 1
            continue
        # Touch the row so the next sweep waits a full stall period before trying again.
        Song.objects.filter(pk=song_id).update(updated_at=now)
        enqueue(song_generate, str(song_id))
        requeued += 1
    return {"requeued": requeued, "failed": failed}


# --- Downloads ------------------------------------------------------------------------------


def audio_download_name(song: Song, fmt: audio.AudioFormat) -> str:
    return f"songs/{song.id}/download.{fmt.extension}"


def song_download_file(*, song: Song, format_name: str) -> tuple[str, audio.AudioFormat]:
    """The storage name of the song's audio in `format_name`, transcoding it on first request."""
    if format_name not in audio.FORMATS:
        known = ", ".join(audio.FORMATS)
        raise ServiceError(
            f"Unknown format {format_name!r}; choose one of {known}.", field="format"
        )
    if song.moderation == Song.Moderation.REMOVED:  # taken down: its audio is served to nobody
        raise NotFound("This song was removed by the moderators; its audio is not available.")
    if not song.is_ready or not song.audio:
        raise ServiceError("This song is not ready yet.", code="not_ready")
    fmt = audio.FORMATS[format_name]
    name = audio_download_name(song, fmt)
    storage = song.audio.storage
    if not storage.exists(name):
        with song.audio.open("rb") as master:
            pcm, sample_rate = audio.decode(master.read())
        # Two first requests may race; each gets the file it saved, both are valid.
        name = storage.save(name, ContentFile(audio.encode(pcm, sample_rate, fmt)))
    return name, fmt


def song_download_filename(song: Song, fmt: audio.AudioFormat) -> str:
    return f"{slugify(song.title) or 'song'}.{fmt.extension}"
