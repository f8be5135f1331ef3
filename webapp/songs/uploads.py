"""Reference-audio uploads ("Influence"): a user's clip that steers a song's style.

An upload is untrusted bytes. It travels this way, and on any error the user gets a clear 4xx
and nothing is left behind:

1. **Received** by :class:`ReferenceUploadHandler`, installed on the request before its body is
   read: the file streams into a temporary file (never memory, never MEDIA_ROOT), and reading
   stops as soon as it passes :data:`MAX_BYTES` (a request that says it is larger is refused
   before a byte of it is read).
2. **Validated** by :func:`reference_prepare`, which decodes it with soundfile: the type is
   what libsndfile recognises in the bytes (never the file name or Content-Type), the sample
   rate and channels are bounded before decoding, and the duration is the number of frames that
   actually decoded (never the header's claim), decoding no more than :data:`MAX_SECONDS`.
   While decoding, the audio is re-encoded into a temporary FLAC file: what is stored is audio
   we wrote ourselves, not the upload's bytes.
3. **Stored** by :func:`reference_store` as the song's `reference` (songs/<id>/reference/), with
   `reference_info` (format, sample rate, channels, duration, bytes), inside the transaction
   that creates the song; songs.services.song_create deletes it again if that rolls back.

Generation reads it through :func:`reference_local_path` (a local copy when storage is remote).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import soundfile
from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers, StopUpload
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from webapp.errors import ServiceError

FIELD = "reference"
MAX_BYTES = 10 * 1024 * 1024  # 10 MB: a minute of 16-bit stereo WAV at 44.1 kHz fits
FORM_OVERHEAD_BYTES = 64 * 1024  # the other fields of the form, around the file
MIN_SECONDS, MAX_SECONDS = 2.0, 60.0
MIN_RATE, MAX_RATE = 8_000, 96_000
MAX_CHANNELS = 2
# What libsndfile may recognise an upload as (it knows more; these are what people have).
FORMATS = {
    "WAV": "WAV",
    "WAVEX": "WAV",
    "RF64": "WAV",
    "FLAC": "FLAC",
    "OGG": "Ogg",
    "MP3": "MP3",
    "AIFF": "AIFF",
}
BLOCK_FRAMES = 65_536
STORED_NAME = "reference.flac"


class UploadTooLarge(ServiceError):
    status_code = 413

    def __init__(self) -> None:
        super().__init__(
            f"The reference clip is larger than {MAX_BYTES // (1024 * 1024)} MB; "
            f"upload at most {MAX_SECONDS:.0f} s of audio.",
            code="too_large",
            field=FIELD,
        )


class UnsupportedAudio(ServiceError):
    status_code = 415

    def __init__(self) -> None:
        super().__init__(
            "That file is not audio we can read. Upload a WAV, FLAC, Ogg, MP3 or AIFF clip.",
            code="unsupported_audio",
            field=FIELD,
        )


def _bad_audio(message: str) -> ServiceError:
    return ServiceError(message, code="bad_audio", field=FIELD)


# --- 1. Receiving ------------------------------------------------------------------------------


class ReferenceUploadHandler(FileUploadHandler):
    """Streams each uploaded file of a request to a temporary file and stops reading the request
    once a file (or the whole body, by its Content-Length) passes the cap.

    Install it with :func:`reference_upload_install` before anything reads the request's body;
    afterwards :func:`reference_upload_check` raises UploadTooLarge if it had to stop."""

    def __init__(self, request=None, max_bytes: int = MAX_BYTES) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.too_large = False
        self.received = 0  # bytes of file data read so far (all files)

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > self.max_bytes + FORM_OVERHEAD_BYTES:
            self.too_large = True  # refused unread: an empty form, and the check says why
            return QueryDict(encoding=encoding), MultiValueDict()
        return None

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.file = TemporaryUploadedFile(
            self.file_name, self.content_type, 0, self.charset, self.content_type_extra
        )
        raise StopFutureHandlers()  # this handler alone receives files

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.too_large = True
            self.file.close()  # a temporary file is deleted when closed
            raise StopUpload(connection_reset=True)  # stop reading the body here
        self.file.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> UploadedFile:
        self.file.seek(0)
        self.file.size = file_size
        return self.file

    def upload_interrupted(self) -> None:
        if hasattr(self, "file"):
            self.file.close()


def reference_upload_install(request) -> ReferenceUploadHandler:
    """Make `request` (a Django HttpRequest whose body nobody has read yet) receive files
    through a capped handler, and return it."""
    handler = ReferenceUploadHandler(request)
    request.upload_handlers = [handler]
    request.reference_upload = handler
    return handler


def reference_upload_check(request) -> None:
    """Refuse the request if its upload had to be cut off at the cap."""
    handler = getattr(request, "reference_upload", None)
    if handler is not None and handler.too_large:
        raise UploadTooLarge()


# --- 2. Validating -----------------------------------------------------------------------------


@dataclass
class PreparedReference:
    """A validated clip, re-encoded as FLAC in a temporary file until it is stored."""

    path: str
    info: dict = field(default_factory=dict)

    def cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


def _temporary_path(suffix: str) -> str:
    handle, path = tempfile.mkstemp(suffix=suffix, dir=settings.FILE_UPLOAD_TEMP_DIR)
    os.close(handle)
    return path


@contextlib.contextmanager
def _local_file(upload: UploadedFile) -> Iterator[str]:
    """A path to the upload's bytes: its own temporary file, or a copy if it is in memory."""
    path = getattr(upload, "temporary_file_path", None)
    if path is not None:
        yield path()
        return
    copy = _temporary_path(".upload")
    try:
        upload.seek(0)
        with open(copy, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        yield copy
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(copy)


def reference_prepare(upload: UploadedFile) -> PreparedReference:
    """Validate an uploaded clip by decoding it, and re-encode it as FLAC; a ServiceError
    (413, 415 or 400, field `reference`) says what is wrong. The caller stores the result
    (reference_store) and calls its cleanup()."""
    size = upload.size or 0
    if size <= 0:
        raise _bad_audio("The reference file is empty.")
    if size > MAX_BYTES:
        raise UploadTooLarge()
    with _local_file(upload) as path:
        return _decode_to_flac(path, size)


def _decode_to_flac(path: str, size: int) -> PreparedReference:
    try:
        info = soundfile.info(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError, TypeError):
        raise UnsupportedAudio() from None
    if info.format not in FORMATS:
        raise UnsupportedAudio()
    rate, channels = int(info.samplerate), int(info.channels)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise _bad_audio(
            f"The clip's sample rate is {rate} Hz; it must be between {MIN_RATE // 1000} kHz "
            f"and {MAX_RATE // 1000} kHz."
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise _bad_audio(f"The clip has {channels} channels; upload mono or stereo.")

    out = PreparedReference(path=_temporary_path(".flac"))
    try:
        frames = _transcode(path, out.path, rate, channels)
    except ServiceError:
        out.cleanup()
        raise
    except Exception:  # libsndfile's errors on a damaged file take many shapes
        out.cleanup()
        raise _bad_audio("The clip is damaged: it could not be decoded to the end.") from None
    seconds = frames / rate
    if seconds < MIN_SECONDS:
        out.cleanup()
        raise _bad_audio(
            f"The clip is {seconds:.1f} s long; a reference needs at least {MIN_SECONDS:.0f} s."
        )
    out.info = {
        "format": FORMATS[info.format],
        "subtype": str(info.subtype),
        "sample_rate": rate,
        "channels": channels,
        "duration_s": round(seconds, 3),
        "bytes": size,
    }
    return out


def _transcode(source: str, target: str, rate: int, channels: int) -> int:
    """Decode `source` block by block into a FLAC at `target`; the frames decoded. Stops with
    a 400 once more than MAX_SECONDS has decoded, and on samples that are not numbers."""
    limit = int(MAX_SECONDS * rate)
    frames = 0
    with (
        soundfile.SoundFile(source) as clip,
        soundfile.SoundFile(
            target, "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16"
        ) as flac,
    ):
        while True:
            block = clip.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            if not len(block):
                return frames
            frames += len(block)
            if frames > limit:
                raise _bad_audio(
                    f"The clip is longer than {MAX_SECONDS:.0f} s; trim it to the part that "
                    "should steer the song."
                )
            if not np.isfinite(block).all():
                raise _bad_audio("The clip holds samples that are not numbers.")
            flac.write(np.clip(block, -1.0, 1.0))


# --- 3. Storing and reading back ---------------------------------------------------------------


def reference_store(*, song, prepared: PreparedReference) -> str:
    """Save the prepared clip as the song's reference (the caller saves the row); returns the
    storage name, for the caller to delete if its transaction rolls back."""
    with open(prepared.path, "rb") as flac:
        song.reference.save(STORED_NAME, File(flac), save=False)
    song.reference_info = prepared.info
    return song.reference.name


@contextlib.contextmanager
def reference_local_path(song) -> Iterator[str | None]:
    """A local file path of the song's reference for the generator (None without one): the
    stored file itself on local storage, else a temporary copy removed afterwards."""
    if not song.reference:
        yield None
        return
    try:
        local = song.reference.path
    except NotImplementedError:  # remote storage (S3): no local path
        local = None
    if local is not None:
        yield local
        return
    copy = _temporary_path(".flac")
    try:
        with song.reference.open("rb") as stored, open(copy, "wb") as out:
            shutil.copyfileobj(stored, out)
        yield copy
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(copy)
